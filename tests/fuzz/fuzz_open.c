/* Fuzz target: the container stage of every dump type and wrapper -- magic,
 * DUMP_HEADER32/64, run list, SDMP/FDMP bitmap, RDMP ranges, triage header,
 * gzip/ZIP/CAB, VMware state files -- and physical reads through the map it
 * builds; then the same bytes as a raw capture (the kernel search).
 * Input: the file itself.  Seeds: forged dumps cut to -max_len. */
#include "fuzz_common.h"

static fz_file file;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_file_open(&file, "fuzz_open");
    return 0;
}

static void read_some(dl_dump *d, const uint8_t *data, size_t size)
{
    static uint8_t buf[3 * 4096];
    size_t n = dl_extent_count(d);
    /* Extents are clamped at EOF: their pages are readable, except behind a
     * wrapper, where a corrupt compressed stream fails late (cleanly). */
    int direct = dl_get_info(d)->wrapper == NULL;
    /* First and last page of each of the first extents, and across the
     * boundary of an extent (must fail cleanly or read both sides). */
    for (size_t i = 0; i < n && i < 8; i++) {
        dl_extent e;
        dl_extent_get(d, i, &e);
        uint64_t pa = e.pfn * 4096;
        dl_status s1 = dl_read_phys(d, pa, buf, 4096);
        dl_status s2 = dl_read_phys(d, pa + (e.pages - 1) * 4096, buf, 4096);
        FZ_ASSERT(!direct || (s1 == DL_OK && s2 == DL_OK));
        dl_read_phys(d, pa + e.pages * 4096 - 100, buf, 200);
        dl_read_phys(d, pa - 8, buf, 16);
    }
    /* Addresses from the input's tail: anywhere, any length up to 3 pages. */
    for (size_t k = 0; k < 4 && size >= 16 * (k + 1); k++) {
        uint64_t pa;
        memcpy(&pa, data + size - 16 * (k + 1), 8);
        dl_read_phys(d, pa, buf, (size_t)(data[size - 16 * (k + 1) + 8] * 48u) % sizeof buf + 1);
    }
    dl_read_phys(d, UINT64_MAX - 4, buf, 16);
}

static void open_and_read(const uint8_t *data, size_t size, int raw)
{
    dl_ctx *ctx = dl_ctx_new();
    /* no_cache: an input must never write an index or a rebuilt file. */
    dl_open_options opts = {.no_cache = 1, .cache_dir = "/nonexistent/dumpleak-fuzz", .raw_input = raw};
    dl_dump *d = NULL;
    dl_status st = dl_open(ctx, file.path, &opts, &d);
    FZ_ASSERT(st >= DL_OK && st <= DL_EUNSUPPORTED);
    FZ_ASSERT((st == DL_OK) == (d != NULL));
    if (st != DL_OK)
        FZ_ASSERT(dl_ctx_error(ctx)[0] != 0); /* a failure always says why */
    if (d) {
        fz_check_info(d, size);
        read_some(d, data, size);
        dl_close(d);
    }
    fz_touch_ctx(ctx);
    dl_ctx_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_file_set(&file, data, size);
    fz_maybe_save(&file);
    open_and_read(data, size, 0);
    /* The same bytes as a raw capture (`--input raw`): page tables, self-
     * maps and nt's header searched for in memory no container describes. */
    if (size >= 4096)
        open_and_read(data, size, 1);
    return 0;
}
