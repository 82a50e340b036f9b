/* Fuzz target: the whole analysis -- KDBG, modules, vm, pool tracker, big
 * pages, suspect drivers and the CLI's text and JSON formatters -- on forged dumps whose
 * pages are patched, so mutations land in real kernel structures.
 *
 * Seeds: every analysis-*.dmp in the seed directory (make fuzz-seeds).  Each
 * is copied once into a sparse memfd; its non-zero pages (header, bitmap,
 * page tables, KDBG, module list, pool tables, images: everything the forge
 * wrote) are the patchable "hot" pages.  Input:
 *   [0] bits 0-2: seed, bits 3-7: order of the analyses, suspects or not
 *   then records {u16 hot page, u16 offset (12 bits), u8 len-1 (6 bits), bytes}
 * Patched bytes are restored after each run. */
#define _GNU_SOURCE /* memfd_create, before any system header */
#include <dirent.h>
#include <fcntl.h>

#include "../../cmd/cli.h"
#include "fuzz_common.h"

#ifndef FUZZ_SEED_DIR
#define FUZZ_SEED_DIR "build-fuzz/seeds"
#endif
#define MAX_SEEDS 8
#define MAX_PATCHES 128

typedef struct seed {
    char name[256];
    fz_file file;
    uint64_t size;
    size_t nhot;
    uint64_t *hot_off; /* file offset of each hot page */
    uint8_t *hot;      /* its original content */
} seed;

static seed seeds[MAX_SEEDS];
static size_t nseeds;
static FILE *devnull;
static dl_tagdb *tagdb; /* the built-in tags */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const seed *)a)->name, ((const seed *)b)->name);
}

static void load_seed(seed *s, const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    fz_file_open(&s->file, "fuzz_analysis");
    off_t size = lseek(fd, 0, SEEK_END);
    s->size = (uint64_t)size;
    if (ftruncate(s->file.fd, size) != 0)
        abort();
    uint8_t page[4096];
    for (off_t off = 0; off < size; off += 4096) {
        ssize_t n = pread(fd, page, sizeof page, off);
        if (n <= 0)
            break;
        static const uint8_t zeros[4096];
        if (!memcmp(page, zeros, (size_t)n))
            continue;
        memset(page + n, 0, sizeof page - (size_t)n);
        fz_pwrite(&s->file, page, (size_t)n, (uint64_t)off);
        s->hot_off = realloc(s->hot_off, (s->nhot + 1) * sizeof *s->hot_off);
        s->hot = realloc(s->hot, (s->nhot + 1) * 4096);
        if (!s->hot_off || !s->hot)
            abort();
        s->hot_off[s->nhot] = (uint64_t)off;
        memcpy(s->hot + s->nhot * 4096, page, 4096);
        s->nhot++;
    }
    close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = getenv("DUMPLEAK_FUZZ_SEEDS") ? getenv("DUMPLEAK_FUZZ_SEEDS") : FUZZ_SEED_DIR;
    DIR *dd = opendir(dir);
    struct dirent *e;
    while (dd && (e = readdir(dd)) && nseeds < MAX_SEEDS) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "analysis-", 9) || n < 4 || strcmp(e->d_name + n - 4, ".dmp"))
            continue;
        snprintf(seeds[nseeds++].name, sizeof seeds[0].name, "%s", e->d_name);
    }
    if (dd)
        closedir(dd);
    if (!nseeds) {
        fprintf(stderr, "fuzz_analysis: no analysis-*.dmp in %s (make fuzz-seeds)\n", dir);
        exit(1);
    }
    /* Sorted: an input's seed byte means the same seed on every machine. */
    qsort(seeds, nseeds, sizeof seeds[0], cmp_name);
    for (size_t i = 0; i < nseeds; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, seeds[i].name);
        load_seed(&seeds[i], path);
    }
    devnull = fopen("/dev/null", "w");
    dl_ctx *ctx = dl_ctx_new();
    if (!devnull || !ctx || dl_tagdb_load(ctx, NULL, &tagdb) != DL_OK)
        abort();
    dl_ctx_free(ctx);
    return 0;
}

typedef struct patch {
    uint64_t off;
    size_t len;
    const uint8_t *orig;
} patch;

static void check_modules(const dl_modules *m)
{
    FZ_ASSERT(m->nloaded <= 4096 && m->nunloaded <= 50);
    for (size_t i = 0; i < m->nloaded; i++)
        FZ_ASSERT(fz_utf8_ok(m->loaded[i].name) && fz_utf8_ok(m->loaded[i].path));
    for (size_t i = 0; i < m->nunloaded; i++)
        FZ_ASSERT(fz_utf8_ok(m->unloaded[i].name));
}

static void check_pool(const dl_pool *p)
{
    FZ_ASSERT(p->ntags <= (size_t)p->table_entries + p->expansion_entries);
    char tag[17];
    for (size_t i = 0; i < p->ntags; i++) {
        dl_format_tag(p->tags[i].key, tag);
        FZ_ASSERT(strlen(tag) <= 16);
    }
}

static void check_suspects(const dl_suspects *sus)
{
    for (size_t i = 0; i < sus->n; i++) {
        const dl_suspect *x = &sus->items[i];
        for (size_t c = 0; c < x->ncandidates; c++) {
            const dl_candidate *k = &x->candidates[c];
            FZ_ASSERT(fz_utf8_ok(k->module) && k->confidence);
            for (size_t e = 0; e < k->nevidence; e++)
                FZ_ASSERT(k->evidence[e].kind && memchr(k->evidence[e].detail, 0, sizeof k->evidence[e].detail));
        }
    }
}

/* Suspects as the CLI asks for them: the top tags of each pool, or (odd
 * order) the tags of the pool table that match a pattern. */
static dl_status suspects(result *r, unsigned order)
{
    dl_suspect_options so = {.tagdb = tagdb, .top_per_pool = 3};
    uint32_t keys[8];
    if (order & 1) {
        const dl_pool *pool;
        dl_get_pool(r->dump, &pool);
        for (size_t i = 0; pool && i < pool->ntags && so.nkeys < 8; i++)
            if (!pool->tags[i].overflow)
                keys[so.nkeys++] = pool->tags[i].key;
        so.keys = keys;
    }
    dl_status st = dl_find_suspects(r->dump, &so, &r->suspects);
    FZ_ASSERT(st == DL_OK || st == DL_PARTIAL);
    if (r->suspects)
        check_suspects(r->suspects);
    return st;
}

static void run(seed *s, unsigned order)
{
    dl_ctx *ctx = dl_ctx_new();
    dl_open_options opts = {.no_cache = 1};
    result r = {.path = s->file.path, .ctx = ctx};
    r.status = dl_open(ctx, s->file.path, &opts, &r.dump);
    FZ_ASSERT(r.status >= DL_OK && r.status <= DL_EUNSUPPORTED);
    if (r.dump) {
        fz_check_info(r.dump, s->size);
        /* The analyses call each other (vm falls back on pool, pool on
         * modules): run them in every order, each twice (cached result). */
        static const char perms[24][4] = {"mvpb", "mvbp", "mpvb", "mpbv", "mbvp", "mbpv", "vmpb", "vmbp",
                                          "vpmb", "vpbm", "vbmp", "vbpm", "pmvb", "pmbv", "pvmb", "pvbm",
                                          "pbmv", "pbvm", "bmvp", "bmpv", "bvmp", "bvpm", "bpmv", "bpvm"};
        int partial = 0;
        /* Suspects (the costliest part: a scan of module images) on half the
         * inputs, first or last: they pull in pool and modules themselves. */
        int with_suspects = (order & 8) != 0, suspects_first = (order & 16) != 0;
        if (with_suspects && suspects_first)
            partial |= suspects(&r, order) == DL_PARTIAL;
        for (int k = 0; k < 8; k++) {
            dl_status st = DL_OK;
            const void *out = NULL, *again = NULL;
            switch (perms[order % 24][k % 4]) {
            case 'm':
                st = dl_get_modules(r.dump, &r.modules);
                FZ_ASSERT(dl_get_modules(r.dump, (const dl_modules **)&again) == st);
                out = r.modules;
                break;
            case 'v':
                st = dl_get_vm(r.dump, &r.vm);
                FZ_ASSERT(dl_get_vm(r.dump, (const dl_vm **)&again) == st);
                out = r.vm;
                break;
            case 'p':
                st = dl_get_pool(r.dump, &r.pool);
                FZ_ASSERT(dl_get_pool(r.dump, (const dl_pool **)&again) == st);
                out = r.pool;
                break;
            case 'b':
                st = dl_get_bigpool(r.dump, &r.bigpool);
                FZ_ASSERT(dl_get_bigpool(r.dump, (const dl_bigpool **)&again) == st);
                out = r.bigpool;
                break;
            }
            FZ_ASSERT(again == out);
            FZ_ASSERT(st == DL_OK || st == DL_PARTIAL);
            FZ_ASSERT(st != DL_OK || out);
            partial |= st == DL_PARTIAL;
            if (st > r.status)
                r.status = st;
        }
        if (with_suspects && !suspects_first)
            partial |= suspects(&r, order) == DL_PARTIAL;
        /* A missing part is always explained. */
        if (partial)
            FZ_ASSERT(dl_ctx_warning_count(ctx) > 0);
        if (r.modules)
            check_modules(r.modules);
        if (r.pool)
            check_pool(r.pool);
        if (r.bigpool)
            FZ_ASSERT(r.bigpool->n <= r.bigpool->table_entries);
        if (r.vm)
            FZ_ASSERT(r.vm->npaged_pools <= DL_MAX_PAGED_POOLS);
        options o = {.cmd = CMD_MAIN, .top = -1, .jobs = 1, .no_cache = 1, .json = 1, .tagdb = tagdb};
        print_json(devnull, &o, &r);
        o.json = 0;
        print_text(devnull, &o, &r);
        fflush(devnull);
        dl_suspects_free(r.suspects);
        dl_close(r.dump);
    }
    fz_touch_ctx(ctx);
    dl_ctx_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    seed *s = &seeds[(data[0] & 7) % nseeds];
    unsigned order = data[0] >> 3;
    patch patches[MAX_PATCHES];
    size_t np = 0;
    for (size_t pos = 1; pos + 5 <= size && np < MAX_PATCHES;) {
        uint16_t page, off;
        memcpy(&page, data + pos, 2);
        memcpy(&off, data + pos + 2, 2);
        size_t len = (size_t)(data[pos + 4] & 63) + 1;
        pos += 5;
        off &= 0xFFF;
        if (len > size - pos)
            len = size - pos;
        if (len > 4096u - off)
            len = 4096u - off;
        if (!len)
            break;
        size_t h = page % s->nhot;
        if (s->hot_off[h] + off >= s->size) /* never grow the file: its last page may be short */
            break;
        if (len > s->size - (s->hot_off[h] + off))
            len = (size_t)(s->size - (s->hot_off[h] + off));
        patches[np++] = (patch){s->hot_off[h] + off, len, s->hot + h * 4096 + off};
        fz_pwrite(&s->file, data + pos, len, s->hot_off[h] + off);
        pos += len;
    }
    fz_maybe_save(&s->file);
    run(s, order);
    /* Back to the pristine seed for the next input. */
    while (np--)
        fz_pwrite(&s->file, patches[np].orig, patches[np].len, patches[np].off);
    return 0;
}
