/* KDDEBUGGER_DATA64 ('KDBG'): located from the header, validated by tag and
 * Size, read only below Size (pool-internals.md §1.1-§1.3: vol3 kdbg.json,
 * ReactOS wdbgexts.h, QEMU win_dump.c check_kdbg).  When the header pointer
 * does not lead to a plain block: decode an encoded block (§1.5), then scan
 * nt's data sections for the tag (MemProcFS-style acceptance rule). */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "kdbg.h"
#include "kernel.h"
#include "pe.h"

#define KDBG_TAG 0x4742444Bu
#define KDBG_MIN_SIZE 0x200u
#define KDBG_MAX_SIZE 0x1000u
#define KDBG_NTBUILDLAB 0x208u

static int size_plausible(uint32_t size)
{
    return size >= KDBG_MIN_SIZE && size <= KDBG_MAX_SIZE && size % 8 == 0;
}

/* Read the build-lab string (ASCII, NUL-terminated, printable). */
static void load_build_lab(dl_dump *d)
{
    uint64_t va;
    if (!dl_kdbg_member(d, KDBG_NTBUILDLAB, &va) || !va)
        return;
    char s[sizeof d->build_lab];
    size_t n = 0;
    while (n < sizeof s - 1) {
        uint8_t c;
        if (dl_vmem_read(&d->vm, d->ctx, va + n, &c, 1) != DL_OK)
            return;
        if (!c)
            break;
        if (c < 0x20 || c > 0x7E)
            return;
        s[n++] = (char)c;
    }
    if (n == 0 || n == sizeof s - 1)
        return;
    s[n] = 0;
    memcpy(d->build_lab, s, n + 1);
    d->info.build_lab = d->build_lab;
}

/* Copy size bytes of the block at va, page by page, decoding with keys. */
static int take_block(dl_dump *d, uint64_t va, uint32_t size, const dl_kdbg_keys *keys)
{
    dl_kdbg *k = &d->kdbg;
    k->data = calloc(1, size);
    if (!k->data)
        return 0;
    uint32_t got = 0;
    /* Members on a page the dump lacks stay unknown: keep what is readable. */
    while (got < size) {
        uint32_t chunk = (uint32_t)(DL_PAGE_SIZE - ((va + got) & (DL_PAGE_SIZE - 1)));
        if (chunk > size - got)
            chunk = size - got;
        if (dl_vmem_read(&d->vm, d->ctx, va + got, k->data + got, chunk) != DL_OK)
            break;
        got += chunk;
    }
    got &= ~7u;
    if (keys)
        for (uint32_t off = 0; off < got; off += 8) {
            uint64_t plain = dl_kdbg_decode_word(keys, dl_le64(k->data + off));
            for (int b = 0; b < 8; b++)
                k->data[off + (uint32_t)b] = (uint8_t)(plain >> (8 * b));
        }
    k->va = va;
    k->size = got;
    k->valid = 1;
    if (got < size)
        dl_warn(d->ctx, "kdbg-partial", "only 0x%x of the KDBG's 0x%x bytes are in the dump", got, size);
    return 1;
}

/* Plain block at va: tag and a plausible Size. */
static int plain_at(dl_dump *d, uint64_t va, uint32_t *size)
{
    uint8_t h[0x18];
    if (dl_vmem_read(&d->vm, d->ctx, va, h, sizeof h) != DL_OK)
        return 0;
    *size = dl_le32(h + 0x14);
    return dl_le32(h + 0x10) == KDBG_TAG && size_plausible(*size);
}

/* Scan nt's writable sections for a plain block whose KernBase is nt and
 * whose PsLoadedModuleList lies inside nt (pool-internals §1.1). */
static int scan_for_block(dl_dump *d, uint64_t *va_out, uint32_t *size_out)
{
    uint64_t nt;
    dl_image img;
    if (!dl_nt_base(d, &nt) || dl_image_load(d, nt, 0, &img) != DL_OK)
        return 0;
    for (int s = 0; s < img.nsec; s++) {
        if (!(img.sec[s].characteristics & DL_SCN_MEM_WRITE))
            continue;
        dl_window w;
        if (dl_window_read(d, img.sec[s].va, img.sec[s].size, &w) != DL_OK)
            continue;
        for (size_t off = 0x10; off + 0x50 <= w.len; off += 4) {
            if (dl_le32(w.data + off) != KDBG_TAG || !w.page_present[off >> DL_PAGE_SHIFT])
                continue;
            uint64_t va = w.va + off - 0x10;
            uint32_t size;
            uint8_t m[0x50];
            if (!plain_at(d, va, &size) || dl_vmem_read(&d->vm, d->ctx, va, m, sizeof m) != DL_OK)
                continue;
            uint64_t kernbase = dl_leptr(m + 0x18, d->info.bits);
            uint64_t list = dl_leptr(m + 0x48, d->info.bits);
            if (kernbase == nt && list > nt && list - nt < img.size) {
                *va_out = va;
                *size_out = size;
                dl_window_free(&w);
                return 1;
            }
        }
        dl_window_free(&w);
    }
    return 0;
}

dl_status dl_kdbg_load(dl_dump *d)
{
    dl_kdbg *k = &d->kdbg;
    if (k->tried)
        return k->valid ? DL_OK : DL_PARTIAL;
    k->tried = 1;
    uint64_t va = d->info.kdbg_address;
    uint32_t size;
    if (plain_at(d, va, &size)) {
        if (!take_block(d, va, size, NULL))
            return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
        k->from = "header";
    } else {
        dl_kdbg_keys keys;
        /* Encoded blocks exist on x64 from Windows 8 (9200) on; a capture's
         * build is unknown until the block is read. */
        if (d->info.arch == DL_ARCH_X64 && (d->info.minor_version >= 9200 || !d->info.minor_version) &&
            dl_kdbg_find_keys(d, &va, &keys, &size)) {
            if (!take_block(d, va, size, &keys))
                return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
            /* A capture has no header: its block was found through nt's code. */
            k->from = d->info.kdbg_address && va == d->info.kdbg_address ? "header" : "scan";
            k->encoded = 1;
            dl_warn(d->ctx, "kdbg-encoded", "the KDBG at 0x%llx is encoded; decoded with keys found in nt's code",
                    (unsigned long long)va);
        } else if (scan_for_block(d, &va, &size)) {
            if (!take_block(d, va, size, NULL))
                return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
            k->from = "scan";
            if (d->info.kdbg_address)
                dl_warn(d->ctx, "kdbg-scan",
                        "the header's KDBG pointer 0x%llx is bad; found the block at 0x%llx in "
                        "nt's data",
                        (unsigned long long)d->info.kdbg_address, (unsigned long long)va);
        } else {
            dl_warn(d->ctx, "kdbg-invalid",
                    "no valid KDBG at 0x%llx (not plain, not decodable) and none found in nt's data",
                    (unsigned long long)d->info.kdbg_address);
            dl_ctx_clear_error(d->ctx);
            return DL_PARTIAL;
        }
    }
    dl_ctx_clear_error(d->ctx);
    load_build_lab(d);
    return DL_OK;
}

int dl_kdbg_member(dl_dump *d, uint32_t off, uint64_t *out)
{
    dl_kdbg *k = &d->kdbg;
    if (!k->valid || off + 8u > k->size)
        return 0;
    /* Fields are 64-bit in both layouts; x86 kernels use the low half. */
    uint64_t v = dl_le64(k->data + off);
    *out = dl_is64(d) ? v : (v & 0xFFFFFFFFull);
    return 1;
}
