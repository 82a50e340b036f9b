/* Fuzz target: the address translator over fuzzed page tables, checked
 * against a small independent walker of hardware-valid entries.
 *
 * The dump is a type-1 (run list) dump built around the header of a tiny
 * forged dump (the template: x64, or x86 with PaeEnabled set or cleared).
 * Input: 16 control bytes, then up to MAX_PAGES physical pages.
 *   [0] mode (x64 / PAE / x86)   [1] bit 0: last page at PFN pfn2; bits 4-7: root page
 *   [2..3] CR3 low bits (PCID, PAE 32-byte alignment)   [4..7] pfn2
 *   [8..15] KdDebuggerDataBlock (dl_open reads the KDBG through the tables)
 * Pages 0..n-1 sit at PFN 0..n-1; with flag bit 0 the last one sits at pfn2. */
#include "fuzz_common.h"

#define MAX_PAGES 16
#define MAX_VAS 1024
#define MAX_VISITS 20000
#define PA_MASK_52 0x000FFFFFFFFFF000ull

#ifndef FUZZ_SEED_DIR
#define FUZZ_SEED_DIR "build-fuzz/seeds"
#endif

enum { M_X64, M_PAE, M_X86 };

static fz_file file;
static uint8_t tmpl64[0x2000], tmpl32[0x1000];

/* The physical memory of one input, as the reference walker sees it. */
typedef struct phys {
    const uint8_t *page[MAX_PAGES];
    unsigned n1; /* pages at PFN 0..n1-1 */
    int has2;    /* one more page at pfn2 */
    uint64_t pfn2;
    const uint8_t *page2;
} phys;

typedef struct walk_ctx {
    dl_dump *d;
    const phys *pm;
    int mode, levels;
    unsigned nvas, visits;
} walk_ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load_template(const char *name, uint8_t *buf, size_t n)
{
    const char *dir = getenv("DUMPLEAK_FUZZ_SEEDS") ? getenv("DUMPLEAK_FUZZ_SEEDS") : FUZZ_SEED_DIR;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "fuzz_xlat: cannot read template %s (make fuzz-seeds)\n", path);
        exit(1);
    }
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    load_template("xlat-x64.dmp", tmpl64, sizeof tmpl64);
    load_template("xlat-x86.dmp", tmpl32, sizeof tmpl32);
    fz_file_open(&file, "fuzz_xlat");
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint64_t get(const uint8_t *p, int size)
{
    uint64_t v = 0;
    memcpy(&v, p, (size_t)size); /* little-endian host */
    return v;
}

static const uint8_t *phys_page(const phys *pm, uint64_t pfn)
{
    if (pfn < pm->n1)
        return pm->page[pfn];
    if (pm->has2 && pfn == pm->pfn2)
        return pm->page2;
    return NULL;
}

typedef enum { CLAIM_NONE, CLAIM_VALID, CLAIM_ABSENT } claim;

/* Translate va with the library and hold it to what the reference walker
 * claims; whatever it says, a successful translation must read the same
 * bytes virtually and physically. */
static void check_va(walk_ctx *w, uint64_t va, claim c, uint64_t pa)
{
    dl_xlat x;
    dl_status st = dl_translate(w->d, va, &x);
    FZ_ASSERT((st == DL_OK) ==
              (x.kind == DL_XLAT_VALID || x.kind == DL_XLAT_TRANSITION || x.kind == DL_XLAT_PROTOTYPE));
    FZ_ASSERT(fz_strlen(dl_xlat_kind_name(x.kind)) > 0);
    if (c == CLAIM_VALID) {
        if (st != DL_OK || x.kind != DL_XLAT_VALID || x.pa != pa)
            fprintf(stderr, "va 0x%llx: expected valid pa 0x%llx, got %s pa 0x%llx level %d entry 0x%llx\n",
                    (unsigned long long)va, (unsigned long long)pa, dl_xlat_kind_name(x.kind), (unsigned long long)x.pa,
                    x.level, (unsigned long long)x.entry);
        FZ_ASSERT(st == DL_OK && x.kind == DL_XLAT_VALID && x.pa == pa);
    } else if (c == CLAIM_ABSENT) {
        if (x.kind != DL_XLAT_TABLE_ABSENT)
            fprintf(stderr, "va 0x%llx: expected table-absent, got %s pa 0x%llx\n", (unsigned long long)va,
                    dl_xlat_kind_name(x.kind), (unsigned long long)x.pa);
        FZ_ASSERT(st != DL_OK && x.kind == DL_XLAT_TABLE_ABSENT);
    }
    uint8_t v[8], p[8];
    uint64_t at = va & ~7ull;
    dl_status sv = dl_read_virt(w->d, at, v, 8);
    if (st == DL_OK) {
        uint64_t pa8 = x.pa & ~7ull;
        dl_status sp = dl_read_phys(w->d, pa8, p, 8);
        FZ_ASSERT(sv == sp);
        if (sv == DL_OK)
            FZ_ASSERT(!memcmp(v, p, 8));
        if (c == CLAIM_VALID) { /* and the dump holds what the input put there */
            const uint8_t *pg = phys_page(w->pm, pa8 >> 12);
            FZ_ASSERT((sp == DL_OK) == (pg != NULL));
            if (pg)
                FZ_ASSERT(!memcmp(p, pg + (pa8 & 0xFFF), 8));
        }
    } else {
        FZ_ASSERT(sv != DL_OK);
    }
    /* A read straddling two pages: must not overrun, whatever it returns. */
    uint8_t two[16];
    dl_read_virt(w->d, (va | 0xFFF) - 7, two, sizeof two);
}

static uint64_t canonical(const walk_ctx *w, uint64_t va)
{
    if (w->mode != M_X64)
        return va;
    int bits = w->levels == 5 ? 57 : 48;
    return (uint64_t)((int64_t)(va << (64 - bits)) >> (64 - bits));
}

/* Hardware walk of valid entries from one table, mirroring the paging
 * modes (Intel SDM vol. 3 ch. 4), every non-zero entry visited. */
static void walk(walk_ctx *w, int level, uint64_t table, uint64_t va_prefix)
{
    int esize = w->mode == M_X86 ? 4 : 8;
    int top = level == w->levels;
    unsigned entries = w->mode == M_X86 ? 1024 : (w->mode == M_PAE && top) ? 4 : 512;
    unsigned shift = w->mode == M_X86 ? 12 + 10 * (unsigned)(level - 1) : 12 + 9 * (unsigned)(level - 1);
    const uint8_t *pg = phys_page(w->pm, table >> 12);
    for (unsigned i = 0; i < entries; i++) {
        if (w->nvas >= MAX_VAS || ++w->visits > MAX_VISITS)
            return;
        uint64_t va = canonical(w, va_prefix | ((uint64_t)i << shift));
        uint64_t ea = (table & 0xFFF) + (uint64_t)i * (uint64_t)esize;
        if (!pg || ea + (uint64_t)esize > 4096) { /* table page absent (or PAE table past its page) */
            w->nvas++;
            check_va(w, va, pg ? CLAIM_NONE : CLAIM_ABSENT, 0);
            return;
        }
        uint64_t e = get(pg + ea, esize);
        if (!e)
            continue;
        w->nvas++;
        if (!(e & 1)) { /* software PTE: the library decodes, the reference doesn't */
            check_va(w, va + 0x10, CLAIM_NONE, 0);
            continue;
        }
        int pdpte = w->mode == M_PAE && top;
        if ((e & 0x80) && !pdpte && (level == 2 || (level == 3 && w->levels >= 4))) {
            uint64_t span = w->mode == M_X86 ? 1ull << 22 : level == 3 ? 1ull << 30 : 1ull << 21;
            uint64_t base =
                w->mode == M_X86 ? (e & 0xFFC00000ull) | (((e >> 13) & 0xFF) << 32) : e & PA_MASK_52 & ~(span - 1);
            uint64_t off = ((uint64_t)i * 0x9E3779B1ull) & (span - 1) & ~7ull;
            check_va(w, va + off, CLAIM_VALID, base + off);
            continue;
        }
        uint64_t next = w->mode == M_X86 ? e & 0xFFFFF000ull : e & PA_MASK_52;
        if (level == 1) {
            check_va(w, va + 0x18, CLAIM_VALID, next + 0x18);
            continue;
        }
        w->nvas--; /* only leaves count */
        walk(w, level - 1, next, va);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 16)
        return 0;
    int mode = data[0] % 3;
    size_t npages = (size - 16 + 4095) / 4096;
    if (npages == 0)
        npages = 1;
    if (npages > MAX_PAGES)
        npages = MAX_PAGES;
    /* The input's pages, zero-padded. */
    static uint8_t pages[MAX_PAGES][4096];
    memset(pages, 0, npages * 4096);
    size_t body = size - 16 < npages * 4096 ? size - 16 : npages * 4096;
    memcpy(pages, data + 16, body);

    phys pm = {.n1 = (unsigned)npages};
    for (size_t i = 0; i < npages; i++)
        pm.page[i] = pages[i];
    uint32_t pfn2;
    memcpy(&pfn2, data + 4, 4);
    if ((data[1] & 1) && npages > 1) {
        pm.has2 = 1;
        pm.n1 = (unsigned)npages - 1;
        pm.pfn2 = pfn2 < pm.n1 ? pm.n1 : pfn2; /* never overlapping run 1 */
        pm.page2 = pages[npages - 1];
    }
    uint16_t cr3_lo;
    memcpy(&cr3_lo, data + 2, 2);
    uint64_t cr3 = (uint64_t)((data[1] >> 4) % pm.n1) << 12 | (cr3_lo & 0xFFF);
    uint64_t kdbg;
    memcpy(&kdbg, data + 8, 8);

    /* Header: the template with our run list, DTB, KDBG and DumpType 1. */
    int is64 = mode == M_X64;
    static uint8_t hdr[0x2000];
    size_t hsize = is64 ? 0x2000 : 0x1000;
    memcpy(hdr, is64 ? tmpl64 : tmpl32, hsize);
    unsigned nruns = pm.has2 ? 2 : 1;
    if (is64) {
        put64(hdr + 0x10, cr3);
        put64(hdr + 0x80, kdbg);
        put32(hdr + 0xF98, 1);
        put32(hdr + 0x88, nruns);
        put64(hdr + 0x90, npages);
        put64(hdr + 0x98, 0);
        put64(hdr + 0xA0, pm.n1);
        put64(hdr + 0xA8, pm.pfn2);
        put64(hdr + 0xB0, 1);
    } else {
        put32(hdr + 0x10, (uint32_t)cr3);
        put32(hdr + 0x60, (uint32_t)kdbg);
        put32(hdr + 0xF88, 1);
        hdr[0x5C] = mode == M_PAE;
        put32(hdr + 0x64, nruns);
        put32(hdr + 0x68, (uint32_t)npages);
        put32(hdr + 0x6C, 0);
        put32(hdr + 0x70, pm.n1);
        put32(hdr + 0x74, (uint32_t)pm.pfn2);
        put32(hdr + 0x78, 1);
    }
    if (ftruncate(file.fd, 0) != 0 || ftruncate(file.fd, (off_t)(hsize + npages * 4096)) != 0)
        abort();
    fz_pwrite(&file, hdr, hsize, 0);
    fz_pwrite(&file, pages, npages * 4096, hsize);
    fz_maybe_save(&file);

    dl_ctx *ctx = dl_ctx_new();
    dl_open_options opts = {.no_cache = 1};
    dl_dump *d = NULL;
    dl_status st = dl_open(ctx, file.path, &opts, &d);
    FZ_ASSERT(st == DL_OK); /* the container is always well formed here */
    fz_check_info(d, hsize + npages * 4096);
    FZ_ASSERT(dl_get_info(d)->arch == (mode == M_X64 ? DL_ARCH_X64 : mode == M_PAE ? DL_ARCH_X86_PAE : DL_ARCH_X86));

    walk_ctx w = {.d = d, .pm = &pm, .mode = mode};
    w.levels = mode == M_X64 ? (fz_has_warning(ctx, "la57") ? 5 : 4) : mode == M_PAE ? 3 : 2;
    uint64_t root = mode == M_X86 ? cr3 & 0xFFFFF000ull : mode == M_PAE ? cr3 & 0xFFFFFFE0ull : cr3 & PA_MASK_52;
    walk(&w, w.levels, root, 0);
    /* Odd addresses: the KDBG's, non-canonical, above 4 GiB on 32-bit. */
    check_va(&w, kdbg, CLAIM_NONE, 0);
    check_va(&w, 0x0000800000000000ull, CLAIM_NONE, 0);
    check_va(&w, 0x100000000ull, CLAIM_NONE, 0);
    check_va(&w, ~0ull, CLAIM_NONE, 0);

    dl_close(d);
    fz_touch_ctx(ctx);
    dl_ctx_free(ctx);
    return 0;
}
