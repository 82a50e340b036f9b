/* PE/COFF structures (Microsoft PE format specification): optional header
 * magic 0x10b/0x20b, data directories 0 (export), 1 (import), 12 (IAT). */
#include "pe.h"

#include <string.h>

#include "bytes.h"
#include "ctx.h"

#define MAX_EXPORT_NAMES 65536u
/* Larger than any kernel image (the biggest drivers are ~100 MiB): a header
 * that says more is corrupt, and every read derived from it is bounded. */
#define MAX_IMAGE_SIZE (1u << 30)
#define MAX_IMPORT_DESCRIPTORS 256u
#define MAX_IAT_SLOTS 65536u

dl_status dl_pe_parse(dl_ctx *ctx, dl_pe_read_fn rd, void *arg, uint64_t base, dl_image *img)
{
    memset(img, 0, sizeof *img);
    img->base = base;
    uint8_t h[0x40];
    if (rd(arg, 0, h, sizeof h))
        return dl_fail(ctx, DL_PARTIAL, "the image header at 0x%llx is not readable", (unsigned long long)base);
    if (h[0] != 'M' || h[1] != 'Z')
        return dl_fail(ctx, DL_PARTIAL, "no MZ header at 0x%llx", (unsigned long long)base);
    uint32_t lfanew = dl_le32(h + 0x3C);
    if (lfanew < 0x40 || lfanew > 0x1000 - 0x108)
        return dl_fail(ctx, DL_PARTIAL, "bad e_lfanew 0x%x in the image at 0x%llx", lfanew, (unsigned long long)base);
    uint8_t nt[0x108];
    if (rd(arg, lfanew, nt, sizeof nt))
        return dl_fail(ctx, DL_PARTIAL, "the PE header at 0x%llx is not readable", (unsigned long long)base);
    if (memcmp(nt, "PE\0\0", 4))
        return dl_fail(ctx, DL_PARTIAL, "no PE signature in the image at 0x%llx", (unsigned long long)base);
    uint16_t nsec = dl_le16(nt + 6), optsize = dl_le16(nt + 0x14), magic = dl_le16(nt + 0x18);
    if (magic != 0x10B && magic != 0x20B)
        return dl_fail(ctx, DL_PARTIAL, "unknown optional-header magic 0x%x at 0x%llx", magic,
                       (unsigned long long)base);
    img->pe32plus = magic == 0x20B;
    img->size = dl_le32(nt + 0x18 + 56); /* SizeOfImage */
    if (img->size > MAX_IMAGE_SIZE)
        img->size = MAX_IMAGE_SIZE;
    const uint8_t *dirs = nt + 0x18 + (img->pe32plus ? 112 : 96);
    uint32_t ndirs = dl_le32(dirs - 4);
    if (ndirs > 0)
        img->export_rva = dl_le32(dirs), img->export_size = dl_le32(dirs + 4);
    if (ndirs > 1)
        img->import_rva = dl_le32(dirs + 8), img->import_size = dl_le32(dirs + 12);
    if (ndirs > 12)
        img->iat_rva = dl_le32(dirs + 96), img->iat_size = dl_le32(dirs + 100);
    if (nsec > DL_MAX_SECTIONS)
        return dl_fail(ctx, DL_PARTIAL, "%u sections in the image at 0x%llx", nsec, (unsigned long long)base);
    uint64_t table = lfanew + 0x18ull + optsize;
    for (int i = 0; i < nsec; i++) {
        uint8_t s[40];
        if (rd(arg, table + 40ull * (uint64_t)i, s, sizeof s))
            return dl_fail(ctx, DL_PARTIAL, "the section table at 0x%llx is not readable", (unsigned long long)base);
        dl_section *x = &img->sec[img->nsec];
        memcpy(x->name, s, 8);
        x->name[8] = 0;
        uint32_t rva = dl_le32(s + 12), vsize = dl_le32(s + 8);
        /* A section ends where the image does. */
        x->size = rva >= img->size ? 0 : vsize < img->size - rva ? vsize : (uint32_t)(img->size - rva);
        x->va = base + rva;
        x->characteristics = dl_le32(s + 36);
        img->raw_size[img->nsec] = dl_le32(s + 16);
        img->raw_off[img->nsec] = dl_le32(s + 20);
        img->nsec++;
    }
    return DL_OK;
}

typedef struct mem_reader {
    dl_dump *d;
    uint64_t base;
} mem_reader;

static int read_mem(void *arg, uint64_t off, void *buf, size_t len)
{
    mem_reader *m = arg;
    return dl_vmem_read(&m->d->vm, m->d->ctx, m->base + off, buf, len) != DL_OK;
}

dl_status dl_image_load(dl_dump *d, uint64_t base, uint64_t size, dl_image *img)
{
    mem_reader m = {d, base};
    dl_status st = dl_pe_parse(d->ctx, read_mem, &m, base, img);
    /* The loader's SizeOfImage is what the module list says. */
    if (size)
        img->size = size < MAX_IMAGE_SIZE ? size : MAX_IMAGE_SIZE;
    return st;
}

const dl_section *dl_image_section_at_raw(const dl_image *img, uint64_t off)
{
    for (int i = 0; i < img->nsec; i++)
        if (off >= img->raw_off[i] && off - img->raw_off[i] < img->raw_size[i])
            return &img->sec[i];
    return NULL;
}

dl_status dl_pe_sections(dl_dump *d, uint64_t base, dl_section *out, int *n)
{
    dl_image img;
    dl_status st = dl_image_load(d, base, 0, &img);
    *n = img.nsec;
    memcpy(out, img.sec, sizeof img.sec[0] * (size_t)img.nsec);
    return st;
}

const dl_section *dl_image_section(const dl_image *img, uint64_t va)
{
    for (int i = 0; i < img->nsec; i++)
        if (va >= img->sec[i].va && va - img->sec[i].va < img->sec[i].size)
            return &img->sec[i];
    return NULL;
}

int dl_section_is_code(const dl_section *s)
{
    return s && (s->characteristics & (DL_SCN_MEM_EXECUTE | 0x20u)) != 0;
}

static int read_cstr(dl_dump *d, uint64_t va, char *buf, size_t cap)
{
    for (size_t i = 0; i < cap - 1; i++) {
        uint8_t c;
        if (dl_vmem_read(&d->vm, d->ctx, va + i, &c, 1) != DL_OK)
            return 0;
        buf[i] = (char)c;
        if (!c)
            return 1;
    }
    buf[cap - 1] = 0;
    return 0;
}

uint64_t dl_image_export(dl_dump *d, const dl_image *img, const char *name)
{
    if (!img->export_rva || img->export_size < 40)
        return 0;
    uint8_t e[40];
    if (dl_vmem_read(&d->vm, d->ctx, img->base + img->export_rva, e, sizeof e) != DL_OK)
        return 0;
    uint32_t nfuncs = dl_le32(e + 20), nnames = dl_le32(e + 24);
    uint32_t funcs = dl_le32(e + 28), names = dl_le32(e + 32), ords = dl_le32(e + 36);
    if (nnames > MAX_EXPORT_NAMES || nfuncs > MAX_EXPORT_NAMES)
        return 0;
    for (uint32_t i = 0; i < nnames; i++) {
        uint32_t name_rva;
        uint8_t ob[2];
        char s[64];
        if (dl_vmem_read_u32(&d->vm, d->ctx, img->base + names + 4ull * i, &name_rva) != DL_OK ||
            !read_cstr(d, img->base + name_rva, s, sizeof s) || strcmp(s, name))
            continue;
        if (dl_vmem_read(&d->vm, d->ctx, img->base + ords + 2ull * i, ob, 2) != DL_OK)
            return 0;
        uint16_t ord = dl_le16(ob);
        uint32_t rva;
        if (ord >= nfuncs || dl_vmem_read_u32(&d->vm, d->ctx, img->base + funcs + 4ull * ord, &rva) != DL_OK)
            return 0;
        /* A forwarder points back into the export directory: not code. */
        if (rva >= img->export_rva && rva < img->export_rva + img->export_size)
            return 0;
        return img->base + rva;
    }
    return 0;
}

static void walk_slots(dl_dump *d, const dl_image *img, uint64_t at, uint64_t max_slots, dl_iat_fn fn, void *arg,
                       int *count)
{
    int step = img->pe32plus ? 8 : 4;
    for (uint64_t k = 0; k < max_slots; k++) {
        uint64_t v;
        if (dl_vmem_read_ptr(&d->vm, d->ctx, step * 8, at + k * (uint64_t)step, &v) != DL_OK || !v)
            return;
        fn(arg, at + k * (uint64_t)step, v);
        (*count)++;
    }
}

int dl_image_iat(dl_dump *d, const dl_image *img, dl_iat_fn fn, void *arg)
{
    int count = 0;
    /* Import descriptors: {OriginalFirstThunk, TimeDateStamp, ForwarderChain, Name, FirstThunk}. */
    if (img->import_rva) {
        for (uint32_t i = 0; i < MAX_IMPORT_DESCRIPTORS; i++) {
            uint8_t desc[20];
            if (dl_vmem_read(&d->vm, d->ctx, img->base + img->import_rva + 20ull * i, desc, sizeof desc) != DL_OK)
                break;
            uint32_t first_thunk = dl_le32(desc + 16);
            if (!first_thunk && !dl_le32(desc + 12))
                break;
            if (first_thunk < img->size)
                walk_slots(d, img, img->base + first_thunk, MAX_IAT_SLOTS, fn, arg, &count);
        }
    }
    /* Descriptors discarded with INIT: the IAT directory stays resident. */
    if (!count && img->iat_rva && img->iat_size && img->iat_rva < img->size) {
        int step = img->pe32plus ? 8 : 4;
        uint64_t n = img->iat_size / (uint32_t)step;
        for (uint64_t k = 0; k < n && k < MAX_IAT_SLOTS; k++) {
            uint64_t v;
            if (dl_vmem_read_ptr(&d->vm, d->ctx, step * 8, img->base + img->iat_rva + k * (uint64_t)step, &v) ==
                    DL_OK &&
                v) {
                fn(arg, img->base + img->iat_rva + k * (uint64_t)step, v);
                count++;
            }
        }
    }
    dl_ctx_clear_error(d->ctx);
    return count;
}

int dl_image_imports_dll(dl_dump *d, const dl_image *img, const char *dll)
{
    if (!img->import_rva)
        return -1;
    for (uint32_t i = 0; i < MAX_IMPORT_DESCRIPTORS; i++) {
        uint8_t desc[20];
        if (dl_vmem_read(&d->vm, d->ctx, img->base + img->import_rva + 20ull * i, desc, sizeof desc) != DL_OK)
            return -1;
        uint32_t name = dl_le32(desc + 12);
        if (!name)
            return 0;
        char s[64];
        if (read_cstr(d, img->base + name, s, sizeof s) && dl_ascii_caseeq(s, dll))
            return 1;
    }
    return 0;
}
