/* VMware .vmem/.vmss (vm-captures §4.1): state files written here from the
 * spec's tag layout around the physical memory of a forged x64 dump, laid
 * out as VMware does (regions packed in the .vmem), then hostile variants.
 * The analysis of the capture must match the MEMORY.DMP's. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "matrix.h"

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t len)
{
    if (b->n + len > b->cap) {
        b->cap = (b->n + len) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        cr_assert(b->p);
    }
    memcpy(b->p + b->n, src, len);
    b->n += len;
}

static void put_le(buf *b, uint64_t v, int bytes)
{
    uint8_t x[8];
    for (int i = 0; i < bytes; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, (size_t)bytes);
}

/* u16 head: value size | indices << 6, name length; name; u32 indices. */
static void tag_head(buf *b, const char *name, int size, int nidx, const uint32_t *idx)
{
    put_le(b, (uint64_t)(size | nidx << 6) | (uint64_t)strlen(name) << 8, 2);
    put(b, name, strlen(name));
    for (int i = 0; i < nidx; i++)
        put_le(b, idx[i], 4);
}

static void tag_value(buf *b, const char *name, int nidx, const uint32_t *idx, uint64_t v, int size)
{
    tag_head(b, name, size, nidx, idx);
    put_le(b, v, size);
}

static void tag_block(buf *b, const char *name, int nidx, const uint32_t *idx, const void *data, uint64_t len, int pad,
                      int compressed)
{
    tag_head(b, name, compressed ? 62 : 63, nidx, idx);
    put_le(b, len, 8);
    put_le(b, len, 8);
    put_le(b, (uint64_t)pad, 2);
    for (int i = 0; i < pad; i++)
        put_le(b, 0xCC, 1);
    put(b, data, (size_t)len);
}

typedef struct region {
    uint64_t ppn, page, pages;
} region;

typedef struct scene {
    char dir[256], vmem[300], vmss[300];
    const forged *src;
    uint64_t dtb;
    region r[64];
    int nr;
    uint64_t vmem_pages;
} scene;

static const forged *x64_source(void)
{
    const forged *best = NULL;
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        if (!strcmp(f->arch, "x64") && f->type == 1 && !f->defect && f->build >= 9200 &&
            (!f->scenario || !strcmp(f->scenario, "default")) && (!best || f->build > best->build))
            best = f;
    }
    cr_assert(best, "no x64 full dump in the matrix");
    return best;
}

/* The .vmem: the dump's runs packed one after the other, one region each. */
static void make_vmem(scene *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/dl-vmware-XXXXXX");
    cr_assert(mkdtemp(s->dir));
    snprintf(s->vmem, sizeof s->vmem, "%s/guest.vmem", s->dir);
    snprintf(s->vmss, sizeof s->vmss, "%s/guest.vmss", s->dir);
    s->src = x64_source();
    dl_ctx *ctx = dl_ctx_new();
    dl_dump *d = open_forged(s->src, ctx);
    s->dtb = dl_get_info(d)->directory_table_base;
    FILE *f = fopen(s->vmem, "wb");
    cr_assert(f);
    uint8_t page[4096];
    for (size_t i = 0; i < dl_extent_count(d) && s->nr < 64; i++) {
        dl_extent e;
        cr_assert_eq(dl_extent_get(d, i, &e), DL_OK);
        s->r[s->nr++] = (region){e.pfn, s->vmem_pages, e.pages};
        for (uint64_t p = 0; p < e.pages; p++) {
            cr_assert_eq(dl_read_phys(d, (e.pfn + p) << 12, page, sizeof page), DL_OK);
            fwrite(page, 1, sizeof page, f);
        }
        s->vmem_pages += e.pages;
    }
    fclose(f);
    dl_close(d);
    dl_ctx_free(ctx);
    cr_assert_gt(s->nr, 1, "the source dump needs a gap between runs");
}

typedef struct options {
    int regions, cpu, cr64_inline, bad_name, region_outside, compressed, inline_memory, kernel_cs;
} options;

static void memory_group(const scene *s, const options *o, buf *g)
{
    if (o->regions) {
        tag_value(g, "regionsCount", 0, NULL, (uint64_t)s->nr, 4);
        for (int i = 0; i < s->nr; i++) {
            uint32_t idx = (uint32_t)i;
            uint64_t page = s->r[i].page + (o->region_outside && i == s->nr - 1 ? s->vmem_pages : 0);
            tag_value(g, "regionPPN", 1, &idx, s->r[i].ppn, 4);
            tag_value(g, "regionPageNum", 1, &idx, page, 4);
            tag_value(g, "regionSize", 1, &idx, s->r[i].pages, 8);
        }
    }
    tag_value(g, "align_mask", 0, NULL, 0xFFFF, 4);
    if (o->bad_name) /* a name length running past the group's end */
        put_le(g, 4 | 250u << 8, 2);
    if (o->inline_memory) {
        uint32_t idx[2] = {0, 0};
        FILE *f = fopen(s->vmem, "rb");
        cr_assert(f);
        uint8_t *mem = malloc(s->vmem_pages * 4096);
        cr_assert(fread(mem, 4096, s->vmem_pages, f) == s->vmem_pages);
        fclose(f);
        tag_block(g, "Memory", 2, idx, mem, s->vmem_pages * 4096, 5, o->compressed);
        free(mem);
    }
    put_le(g, 0, 2);
}

static void cpu_group(const scene *s, const options *o, buf *g)
{
    tag_value(g, "cpu:numVCPUs", 0, NULL, 2, 4);
    for (uint32_t cpu = 0; cpu < 2; cpu++) {
        /* vCPU 0 caught in user mode with a CR3 that maps nothing. */
        int kernel = cpu == 1 && o->kernel_cs;
        uint64_t cr[9] = {0x80050033, 0, 0, kernel ? s->dtb : 0x1000, 0x1506F8, 0, 0, 0, 0};
        uint32_t idx[2] = {cpu, 0};
        if (o->cr64_inline) {
            for (uint32_t n = 0; n < 5; n++) {
                idx[1] = n;
                tag_value(g, "CR64", 2, idx, cr[n], 8);
            }
        } else {
            uint8_t raw[72];
            for (int i = 0; i < 9; i++)
                for (int k = 0; k < 8; k++)
                    raw[i * 8 + k] = (uint8_t)(cr[i] >> (8 * k));
            tag_block(g, "CR64", 1, idx, raw, sizeof raw, 0, 0);
        }
        idx[1] = 1;
        tag_value(g, "S", 2, idx, kernel ? 0x10 : 0x33, 4);
    }
    put_le(g, 0, 2);
}

/* Header, group table (decoys first), groups. */
static void write_state(const scene *s, const char *path, const options *o)
{
    buf groups[4] = {{0}};
    static const char *names[4] = {"Checkpoint", "MKSVMX", "memory", "cpu"};
    put_le(&groups[0], 0, 2);
    tag_value(&groups[1], "imageSize", 0, NULL, 0, 4);
    put_le(&groups[1], 0, 2);
    memory_group(s, o, &groups[2]);
    int n = o->cpu ? 4 : 3;
    if (o->cpu)
        cpu_group(s, o, &groups[3]);
    buf file = {0};
    put_le(&file, 0xBED2BED2u, 4);
    put_le(&file, 8, 4);
    put_le(&file, (uint64_t)n, 4);
    uint64_t at = 12 + 80ull * (uint64_t)n;
    for (int i = 0; i < n; i++) {
        char name[64] = {0};
        strcpy(name, names[i]);
        put(&file, name, 64);
        put_le(&file, at, 8);
        put_le(&file, groups[i].n, 8);
        at += groups[i].n;
    }
    for (int i = 0; i < n; i++) {
        put(&file, groups[i].p, groups[i].n);
        free(groups[i].p);
    }
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fwrite(file.p, 1, file.n, f);
    fclose(f);
    free(file.p);
}

static void cleanup(scene *s)
{
    if (getenv("DUMPLEAK_KEEP_TMP"))
        return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    cr_assert_eq(system(cmd), 0);
}

static int has_warning(dl_ctx *ctx, const char *code)
{
    for (size_t i = 0; i < dl_ctx_warning_count(ctx); i++)
        if (!strcmp(dl_ctx_warning(ctx, i)->code, code))
            return 1;
    return 0;
}

/* Same kernel, modules and pool totals as the MEMORY.DMP. */
static void same_as_dump(const scene *s, dl_dump *d)
{
    dl_ctx *ctx = dl_ctx_new();
    dl_dump *ref = open_forged(s->src, ctx);
    const dl_info *a = dl_get_info(d), *b = dl_get_info(ref);
    cr_assert_str_eq(a->input, "vmem");
    cr_assert_eq(a->arch, DL_ARCH_X64);
    cr_assert_eq(a->minor_version, b->minor_version);
    cr_assert_eq(a->kdbg_valid, 1);
    const dl_modules *ma, *mb;
    cr_assert_eq(dl_get_modules(d, &ma), DL_OK);
    cr_assert_eq(dl_get_modules(ref, &mb), DL_OK);
    cr_assert_eq(ma->nloaded, mb->nloaded);
    for (size_t i = 0; i < ma->nloaded; i++)
        cr_assert_eq(ma->loaded[i].base, mb->loaded[i].base);
    const dl_pool *pa, *pb;
    cr_assert_eq(dl_get_pool(d, &pa), DL_OK);
    cr_assert_eq(dl_get_pool(ref, &pb), DL_OK);
    cr_assert_eq(pa->ntags, pb->ntags);
    cr_assert_eq(pa->total_nonpaged.bytes, pb->total_nonpaged.bytes);
    cr_assert_eq(pa->total_paged.bytes, pb->total_paged.bytes);
    dl_close(ref);
    dl_ctx_free(ctx);
}

static dl_dump *open_ok(const char *path, dl_ctx *ctx)
{
    dl_dump *d = NULL;
    cr_assert_eq(dl_open(ctx, path, NULL, &d), DL_OK, "%s: %s", path, dl_ctx_error(ctx));
    return d;
}

/* Open path; CR3 from where expected; the same answers as the dump. */
static void analyses_like_dump(const scene *s, const char *path, const char *cr3_from)
{
    dl_ctx *ctx = dl_ctx_new();
    dl_dump *d = open_ok(path, ctx);
    cr_assert_str_eq(dl_get_info(d)->cr3_from, cr3_from, "%s", path);
    if (!strcmp(cr3_from, "vmware-state"))
        cr_assert_eq(dl_get_info(d)->directory_table_base, s->dtb);
    cr_assert_not(has_warning(ctx, "vmem-flat"));
    same_as_dump(s, d);
    dl_close(d);
    dl_ctx_free(ctx);
}

/* Opening path fails with status and a message that names what. */
static void refused(const char *path, dl_status status, const char *what)
{
    dl_ctx *ctx = dl_ctx_new();
    dl_dump *d = NULL;
    cr_assert_eq(dl_open(ctx, path, NULL, &d), status, "%s: %s", path, dl_ctx_error(ctx));
    cr_assert(strstr(dl_ctx_error(ctx), what), "%s", dl_ctx_error(ctx));
    dl_ctx_free(ctx);
}

Test(vmware, vmem_with_regions_and_cpu_state)
{
    scene s = {0};
    make_vmem(&s);
    options o = {.regions = 1, .cpu = 1, .kernel_cs = 1};
    write_state(&s, s.vmss, &o);
    analyses_like_dump(&s, s.vmem, "vmware-state");
    /* The state file itself names the same memory. */
    analyses_like_dump(&s, s.vmss, "vmware-state");
    cleanup(&s);
}

Test(vmware, vmsn_inline_cr64_and_no_cpu_group)
{
    scene s = {0};
    make_vmem(&s);
    char vmsn[300];
    snprintf(vmsn, sizeof vmsn, "%s/guest.vmsn", s.dir);
    options o = {.regions = 1, .cpu = 1, .cr64_inline = 1, .kernel_cs = 1};
    write_state(&s, vmsn, &o);
    analyses_like_dump(&s, s.vmem, "vmware-state");
    /* Only user-mode vCPUs (their CR3 maps nothing), or no cpu group: the scans find the kernel. */
    for (int cpu = 0; cpu < 2; cpu++) {
        o = (options){.regions = 1, .cpu = cpu};
        write_state(&s, vmsn, &o);
        analyses_like_dump(&s, s.vmem, "self-map-scan");
    }
    cleanup(&s);
}

Test(vmware, memory_inline_in_the_state_file)
{
    scene s = {0};
    make_vmem(&s);
    options o = {.regions = 1, .cpu = 1, .kernel_cs = 1, .inline_memory = 1};
    char vmsn[300];
    snprintf(vmsn, sizeof vmsn, "%s/snap.vmsn", s.dir);
    write_state(&s, vmsn, &o);
    analyses_like_dump(&s, vmsn, "vmware-state");
    /* A compressed Memory block: a compression we lack. */
    o.compressed = 1;
    write_state(&s, vmsn, &o);
    refused(vmsn, DL_EUNSUPPORTED, "compressed");
    cleanup(&s);
}

Test(vmware, bad_state_files)
{
    scene s = {0};
    make_vmem(&s);
    dl_ctx *ctx;
    dl_dump *d;
    /* A tag name past the group: the state file alone is refused, the
     * .vmem is read flat with a warning. */
    options o = {.regions = 1, .cpu = 1, .kernel_cs = 1, .bad_name = 1};
    write_state(&s, s.vmss, &o);
    refused(s.vmss, DL_ECORRUPT, "group 'memory'");
    ctx = dl_ctx_new();
    d = NULL;
    dl_status st = dl_open(ctx, s.vmem, NULL, &d);
    cr_assert(st == DL_OK || st == DL_ECORRUPT);
    if (st == DL_OK) {
        cr_assert(has_warning(ctx, "vmem-flat"));
        dl_close(d);
    }
    dl_ctx_free(ctx);
    /* A region past the end of the .vmem. */
    o = (options){.regions = 1, .cpu = 1, .kernel_cs = 1, .region_outside = 1};
    write_state(&s, s.vmss, &o);
    ctx = dl_ctx_new();
    st = dl_open(ctx, s.vmem, NULL, &d);
    cr_assert(st == DL_OK || st == DL_ECORRUPT);
    if (st == DL_OK)
        dl_close(d);
    cr_assert(has_warning(ctx, "vmem-flat"));
    dl_ctx_free(ctx);
    /* No .vmem beside a state file that holds no memory. */
    o = (options){.regions = 1, .cpu = 1, .kernel_cs = 1};
    write_state(&s, s.vmss, &o);
    cr_assert_eq(unlink(s.vmem), 0);
    refused(s.vmss, DL_ECORRUPT, "guest.vmem");
    cleanup(&s);
}

/* Every truncation of a state file: an error or a result, never a crash. */
Test(vmware, truncated_state_file)
{
    scene s = {0};
    make_vmem(&s);
    options o = {.regions = 1, .cpu = 1, .kernel_cs = 1};
    write_state(&s, s.vmss, &o);
    FILE *f = fopen(s.vmss, "rb");
    cr_assert(f);
    uint8_t whole[65536];
    size_t n = fread(whole, 1, sizeof whole, f);
    fclose(f);
    char cut[300];
    snprintf(cut, sizeof cut, "%s/cut.vmss", s.dir);
    for (size_t len = 0; len < n; len += 7) {
        f = fopen(cut, "wb");
        fwrite(whole, 1, len, f);
        fclose(f);
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = NULL;
        dl_status st = dl_open(ctx, cut, NULL, &d);
        cr_assert(st == DL_ECORRUPT || st == DL_OK, "length %zu: status %d", len, st);
        dl_close(d);
        dl_ctx_free(ctx);
    }
    cleanup(&s);
}
