/* Pool tag tracker tables without symbols (pool-internals.md §2): the global
 * PoolTrackTable from the KDBG, its size from hash-probe consistency (x64) or
 * the Size/Mask pair in nt's data (both arches), the per-processor tables
 * ExPoolTagTables[], the expansion table and the overflow bucket. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "kernel.h"
#include "layouts.h"
#include "pool.h"

#define MIN_ORDER 6
#define MAX_ORDER 20 /* 2^20 entries: far above any registry setting */
#define NEAR_WINDOW 0x3000u
/* Per-processor slot arrays: 32/64 (2003) .. 2048 (Win11). */
#define MAX_PERCPU_SLOTS 2048u
#define MAX_EXPANSION 0x10000u

typedef struct tracker_ctx {
    dl_dump *d;
    int bits;
    const dl_tracker_layout *L;
    uint64_t table;    /* PoolTrackTable value */
    uint64_t table_at; /* &PoolTrackTable */
} tracker_ctx;

static uint32_t hash_x64(uint32_t key, uint32_t mask)
{
    uint64_t h = 40543ull * key;
    return (uint32_t)((h & 0xFFFFFFFFu) ^ (h >> 32)) & mask;
}

/* 32-bit kernels: a [derived] hint only (§2.3), used to score, never to reject. */
static uint32_t hash_x86(uint32_t key, uint32_t mask)
{
    uint32_t b0 = key & 0xFF, b1 = (key >> 8) & 0xFF, b2 = (key >> 16) & 0xFF, b3 = key >> 24;
    uint32_t x = ((((((b0 << 2) ^ b1) << 2) ^ b2) << 2) ^ b3);
    return ((40543u * x) >> 2) & mask;
}

static uint64_t field(const uint8_t *e, uint32_t off, int width)
{
    return width == 8 ? dl_le64(e + off) : dl_le32(e + off);
}

static void read_counts(const dl_tracker_layout *L, const uint8_t *e, dl_pool_counts *np, dl_pool_counts *p)
{
    np->allocs = field(e, L->np_allocs, L->count_width);
    np->frees = field(e, L->np_frees, L->count_width);
    np->bytes = field(e, L->np_bytes, L->bytes_width);
    p->allocs = field(e, L->p_allocs, L->count_width);
    p->frees = field(e, L->p_frees, L->count_width);
    p->bytes = field(e, L->p_bytes, L->bytes_width);
}

/* Share (in 1/1000) of non-zero keys that are printable in the first
 * entries when read with stride L->size; -1 when nothing readable. */
static int stride_score(tracker_ctx *t, const dl_tracker_layout *L, int *nonzero_out)
{
    dl_window w;
    uint32_t n = 256;
    if (dl_window_read(t->d, t->table, (size_t)n * L->size, &w) != DL_OK)
        return -1;
    int nonzero = 0, printable = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t off = (uint64_t)i * L->size;
        if (!w.page_present[off >> DL_PAGE_SHIFT])
            continue;
        uint32_t key = dl_le32(w.data + off);
        if (!key)
            continue;
        nonzero++;
        printable += dl_printable_tag(key);
    }
    dl_window_free(&w);
    *nonzero_out = nonzero;
    return nonzero ? printable * 1000 / nonzero : -1;
}

static const dl_tracker_layout *choose_layout(tracker_ctx *t, uint32_t build)
{
    const dl_tracker_layout *cand[4];
    int n = dl_tracker_candidates(t->bits, build, cand, 4);
    const dl_tracker_layout *best = NULL;
    int best_score = -1;
    for (int i = 0; i < n; i++) {
        int nz = 0, s = stride_score(t, cand[i], &nz);
        if (s > best_score) {
            best_score = s;
            best = cand[i];
        }
    }
    if (best && best != cand[0] && best_score >= 900)
        dl_warn(t->d->ctx, "tracker-layout",
                "tracker entries are 0x%x bytes, not the 0x%x expected for build %u (chosen from the data)", best->size,
                cand[0]->size, build);
    return best_score >= 900 ? best : NULL;
}

/* Is the table consistent as 2^order slots of linear probing?  *keys_out
 * counts non-empty slots; returns 0 if a page of the range is absent. */
static int probe_consistent(tracker_ctx *t, const dl_window *w, int order, int *keys_out)
{
    uint32_t slots = 1u << order, mask = slots - 1;
    uint32_t size = t->L->size;
    for (uint64_t off = 0; off < (uint64_t)slots * size; off += DL_PAGE_SIZE)
        if (!w->page_present[off >> DL_PAGE_SHIFT])
            return 0;
    int keys = 0, bad = 0, upper = 0, printable = 0;
    for (uint32_t i = 0; i < slots; i++) {
        uint32_t key = dl_le32(w->data + (uint64_t)i * size);
        if (!key)
            continue;
        keys++;
        printable += dl_printable_tag(key);
        upper += i >= slots / 2;
        uint32_t home = t->bits == 64 ? hash_x64(key, mask) : hash_x86(key, mask);
        for (uint32_t j = home; j != i; j = (j + 1) & mask)
            if (!dl_le32(w->data + (uint64_t)j * size)) {
                bad++;
                break;
            }
    }
    *keys_out = keys;
    if (keys < 4 || printable * 10 < keys * 9)
        return 0;
    /* A real table spreads keys over both halves; zeros past its end don't. */
    if (keys >= 16 && upper * 5 < keys)
        return 0;
    return bad * 50 <= keys;
}

/* Size/Mask pairs near &PoolTrackTable: slots S with S-1 a power of two,
 * the slot directly before &PoolTrackTable first (vol2 pooltracker.py). */
static int size_from_data(tracker_ctx *t, uint32_t *orders, int max)
{
    int n = 0, step = t->bits / 8;
    dl_window w;
    if (dl_window_read(t->d, t->table_at - NEAR_WINDOW, 2 * NEAR_WINDOW, &w) != DL_OK)
        return 0;
    for (int pass = 0; pass < 2 && n < max; pass++) {
        for (uint64_t va = t->table_at - NEAR_WINDOW; va < t->table_at + NEAR_WINDOW && n < max; va += (uint64_t)step) {
            if (pass == 0 && va != t->table_at - (uint64_t)step)
                continue;
            uint64_t s, m = 0;
            if (!dl_window_ptr(&w, va, t->bits, &s) || s < 65 || ((s - 1) & (s - 2)))
                continue;
            int order = __builtin_ctzll(s - 1);
            if (order < MIN_ORDER || order > MAX_ORDER)
                continue;
            /* A Mask (S - 2) beside it makes the pair convincing. */
            int with_mask = (dl_window_ptr(&w, va + (uint64_t)step, t->bits, &m) && m == s - 2) ||
                            (dl_window_ptr(&w, va - (uint64_t)step, t->bits, &m) && m == s - 2);
            if (pass == 1 && !with_mask)
                continue;
            int dup = 0;
            for (int k = 0; k < n; k++)
                dup |= orders[k] == (uint32_t)order;
            if (!dup)
                orders[n++] = (uint32_t)order;
        }
    }
    dl_window_free(&w);
    return n;
}

/* Order of the table: 2^order hashed slots + 1 overflow entry. */
static int find_order(tracker_ctx *t)
{
    uint32_t from_data[8];
    int ndata = size_from_data(t, from_data, 8);
    int best = 0;
    if (t->bits == 64) {
        dl_window w = {0};
        int have = 0;
        for (int order = MIN_ORDER; order <= MAX_ORDER; order++) {
            size_t len = ((size_t)(1u << order) + 1) * t->L->size;
            dl_window_free(&w);
            if (dl_window_read(t->d, t->table, len, &w) != DL_OK || w.present_bytes < w.len)
                break; /* never validate a size over absent pages */
            int keys;
            if (!have && order > 16)
                break; /* no table this large is plausible without a smaller consistent prefix */
            if (probe_consistent(t, &w, order, &keys)) {
                best = order;
                have = 1;
            } else if (have) {
                break; /* past the end of the table */
            }
        }
        dl_window_free(&w);
        for (int k = 0; k < ndata; k++)
            if ((int)from_data[k] == best)
                return best;
        if (best && ndata)
            dl_warn(t->d->ctx, "tracker-size", "tracker size from hashing (2^%d+1) does not match nt's Size variable",
                    best);
        return best;
    }
    /* x86: only a Size/Mask pair is accepted (§2.8 step 6b), checked for
     * key plausibility (the 32-bit hash is only a hint). */
    for (int k = 0; k < ndata; k++) {
        dl_window w;
        size_t len = ((size_t)(1u << from_data[k]) + 1) * t->L->size;
        if (dl_window_read(t->d, t->table, len, &w) != DL_OK)
            continue;
        int keys = 0, printable = 0, readable = 1;
        for (uint32_t i = 0; i < (1u << from_data[k]); i++) {
            uint64_t off = (uint64_t)i * t->L->size;
            if (!w.page_present[off >> DL_PAGE_SHIFT]) {
                readable = 0;
                break;
            }
            uint32_t key = dl_le32(w.data + off);
            keys += key != 0;
            printable += key && dl_printable_tag(key);
        }
        dl_window_free(&w);
        if (readable && keys >= 4 && printable * 50 >= keys * 49)
            return (int)from_data[k];
    }
    return 0;
}

/* ExPoolTagTables: an array in nt's writable data whose first slot is the
 * PoolTrackTable value, followed by one table pointer per other processor. */
static uint64_t find_percpu(tracker_ctx *t, uint32_t cpus, uint32_t entries, uint64_t *tables)
{
    uint64_t nt;
    dl_section sec[DL_MAX_SECTIONS];
    int nsec = 0;
    if (!dl_nt_base(t->d, &nt) || dl_pe_sections(t->d, nt, sec, &nsec) != DL_OK)
        return 0;
    int step = t->bits / 8;
    for (int s = 0; s < nsec; s++) {
        if (!(sec[s].characteristics & DL_SCN_MEM_WRITE) || (sec[s].characteristics & DL_SCN_MEM_DISCARDABLE))
            continue;
        dl_window w;
        if (dl_window_read(t->d, sec[s].va, sec[s].size, &w) != DL_OK)
            continue;
        for (uint64_t va = sec[s].va; va + (uint64_t)step * cpus <= sec[s].va + sec[s].size; va += (uint64_t)step) {
            uint64_t v;
            if (va == t->table_at || !dl_window_ptr(&w, va, t->bits, &v) || v != t->table)
                continue;
            uint32_t ok = 1;
            for (; ok < cpus; ok++) {
                uint64_t p;
                if (!dl_window_ptr(&w, va + (uint64_t)step * ok, t->bits, &p) || !dl_kernel_va(t->d, p) ||
                    (p & (DL_PAGE_SIZE - 1)) || p == t->table)
                    break;
                tables[ok] = p;
            }
            uint64_t after = 0;
            if (ok == cpus && cpus < MAX_PERCPU_SLOTS &&
                dl_window_ptr(&w, va + (uint64_t)step * cpus, t->bits, &after) && after != 0 &&
                dl_kernel_va(t->d, after))
                ok = 0; /* more tables than processors: not this array */
            if (ok == cpus) {
                /* Each table mirrors the global keys at the same index. */
                (void)entries;
                dl_window_free(&w);
                tables[0] = t->table;
                return va;
            }
        }
        dl_window_free(&w);
    }
    return 0;
}

static int keys_mirror(const dl_window *global, const dl_window *cpu, uint32_t entries, uint32_t size)
{
    uint32_t same = 0, differ = 0;
    for (uint32_t i = 0; i < entries; i++) {
        uint64_t off = (uint64_t)i * size;
        if (!cpu->page_present[off >> DL_PAGE_SHIFT])
            continue;
        uint32_t k = dl_le32(cpu->data + off);
        if (!k)
            continue;
        if (k == dl_le32(global->data + off))
            same++;
        else
            differ++;
    }
    return differ * 100 <= same;
}

static dl_status add_tag(dl_pool *pool, uint32_t key, int overflow, const dl_pool_counts *np, const dl_pool_counts *p)
{
    if (!overflow)
        for (size_t i = 0; i < pool->ntags; i++)
            if (!pool->tags[i].overflow && pool->tags[i].key == key) {
                dl_pool_tag *x = &pool->tags[i];
                x->nonpaged.allocs += np->allocs, x->nonpaged.frees += np->frees, x->nonpaged.bytes += np->bytes;
                x->paged.allocs += p->allocs, x->paged.frees += p->frees, x->paged.bytes += p->bytes;
                return DL_OK;
            }
    dl_pool_tag *n = realloc(pool->tags, (pool->ntags + 1) * sizeof *n);
    if (!n)
        return DL_ECORRUPT;
    pool->tags = n;
    pool->tags[pool->ntags++] = (dl_pool_tag){key, overflow, *np, *p};
    return DL_OK;
}

static void add_counts(dl_pool_counts *a, const dl_pool_counts *b)
{
    a->allocs += b->allocs;
    a->frees += b->frees;
    a->bytes += b->bytes;
}

/* Expansion table (§2.6): a (pointer, count) pair near &PoolTrackTable whose
 * entries hold printable keys absent from the hashed table. */
static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void find_expansion(tracker_ctx *t, dl_pool *pool, const dl_window *global, uint32_t slots)
{
    /* The hashed table's keys, sorted: "absent from the hashed table" is a search. */
    uint32_t *keys = malloc((size_t)slots * sizeof *keys);
    if (!keys)
        return;
    for (uint32_t j = 0; j < slots; j++)
        keys[j] = dl_le32(global->data + (uint64_t)j * t->L->size);
    qsort(keys, slots, sizeof *keys, cmp_u32);
    int step = t->bits / 8;
    dl_window w;
    if (dl_window_read(t->d, t->table_at - NEAR_WINDOW, 2 * NEAR_WINDOW, &w) != DL_OK)
        return;
    for (uint64_t va = t->table_at - NEAR_WINDOW; va + (uint64_t)step < t->table_at + NEAR_WINDOW;
         va += (uint64_t)step) {
        uint64_t p, n;
        if (!dl_window_ptr(&w, va, t->bits, &p) || !dl_window_ptr(&w, va + (uint64_t)step, t->bits, &n) ||
            !dl_kernel_va(t->d, p) || (p & (DL_PAGE_SIZE - 1)) || p == t->table || n < 1 || n > MAX_EXPANSION)
            continue;
        /* The first key decides cheaply before the whole table is read. */
        uint32_t first;
        if (dl_vmem_read_u32(&t->d->vm, t->d->ctx, p, &first) != DL_OK || !first || !dl_printable_tag(first) ||
            bsearch(&first, keys, slots, sizeof *keys, cmp_u32))
            continue;
        dl_window e;
        if (dl_window_read(t->d, p, (size_t)n * t->L->size, &e) != DL_OK)
            continue;
        int valid = e.present_bytes == e.len;
        for (uint64_t i = 0; i < n && valid; i++) {
            uint32_t key = dl_le32(e.data + i * t->L->size);
            valid = key && dl_printable_tag(key) && !bsearch(&key, keys, slots, sizeof *keys, cmp_u32);
        }
        if (valid) {
            for (uint64_t i = 0; i < n; i++) {
                dl_pool_counts np, pg;
                read_counts(t->L, e.data + i * t->L->size, &np, &pg);
                add_tag(pool, dl_le32(e.data + i * t->L->size), 0, &np, &pg);
            }
            pool->expansion_va = p;
            pool->expansion_entries = (uint32_t)n;
            dl_window_free(&e);
            dl_window_free(&w);
            free(keys);
            return;
        }
        dl_window_free(&e);
    }
    dl_window_free(&w);
    free(keys);
    dl_warn(t->d->ctx, "tracker-expansion",
            "hashed tracker table full; expansion table not located — some tags missing");
}

dl_status dl_pool_tracker(dl_dump *d, dl_pool *pool)
{
    tracker_ctx t = {.d = d, .bits = d->info.bits};
    dl_ctx *ctx = d->ctx;
    if (!dl_kdbg_member(d, KDBG_POOLTRACKTABLE, &t.table_at) || !dl_kernel_va(d, t.table_at))
        return dl_fail(ctx, DL_PARTIAL, "the KDBG gives no PoolTrackTable");
    if (dl_vmem_read_ptr(&d->vm, ctx, t.bits, t.table_at, &t.table) != DL_OK)
        return dl_fail(ctx, DL_PARTIAL, "PoolTrackTable variable at 0x%llx is not in the dump: %s",
                       (unsigned long long)t.table_at, dl_ctx_error(ctx));
    if (!dl_kernel_va(d, t.table) || (t.table & 0xF))
        return dl_fail(ctx, DL_PARTIAL, "PoolTrackTable value 0x%llx is not a kernel address",
                       (unsigned long long)t.table);
    t.L = choose_layout(&t, d->info.minor_version);
    if (!t.L)
        return dl_fail(ctx, DL_PARTIAL, "the tracker table at 0x%llx is not readable or matches no known entry layout",
                       (unsigned long long)t.table);
    int order = find_order(&t);
    if (!order)
        return dl_fail(ctx, DL_PARTIAL, "the size of the tracker table at 0x%llx could not be validated",
                       (unsigned long long)t.table);
    uint32_t slots = 1u << order, entries = slots + 1, size = t.L->size;
    pool->table_va = t.table;
    pool->table_entries = entries;
    pool->entry_size = size;

    dl_window global;
    dl_status st = dl_window_read(d, t.table, (size_t)entries * size, &global);
    if (st != DL_OK)
        return st;
    /* Per-processor tables: on every multi-processor dump, whatever the build. */
    uint32_t cpus = d->info.processors;
    if (cpus < 1 || cpus > MAX_PERCPU_SLOTS)
        cpus = 1;
    uint64_t *tables = calloc(cpus, sizeof *tables);
    dl_window *cpu = calloc(cpus, sizeof *cpu);
    if (!tables || !cpu) {
        free(tables);
        free(cpu);
        dl_window_free(&global);
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    }
    tables[0] = t.table;
    uint32_t ncpu = 1;
    if (cpus > 1) {
        pool->percpu_va = find_percpu(&t, cpus, entries, tables);
        if (pool->percpu_va) {
            for (ncpu = 1; ncpu < cpus; ncpu++) {
                if (dl_window_read(d, tables[ncpu], (size_t)entries * size, &cpu[ncpu]) != DL_OK ||
                    !keys_mirror(&global, &cpu[ncpu], slots, size))
                    break;
                if (cpu[ncpu].present_bytes < cpu[ncpu].len)
                    dl_warn(ctx, "tracker-percpu-partial",
                            "per-processor tracker table %u is partly absent from the dump", ncpu);
            }
            if (ncpu < cpus) {
                dl_warn(ctx, "tracker-percpu",
                        "per-processor tracker table %u does not mirror the global keys; "
                        "tables from processor %u on are not counted",
                        ncpu, ncpu);
            }
        } else {
            dl_warn(ctx, "tracker-percpu",
                    "per-processor tracker tables (ExPoolTagTables) not found: totals are the "
                    "global table only and too low on this %u-processor dump",
                    cpus);
        }
    }
    pool->processors_summed = ncpu;
    int has_empty = 0;
    for (uint32_t i = 0; i < entries; i++) {
        uint64_t off = (uint64_t)i * size;
        uint32_t key = dl_le32(global.data + off);
        dl_pool_counts np, pg, cnp, cpg;
        read_counts(t.L, global.data + off, &np, &pg);
        int overflow = i == entries - 1;
        for (uint32_t c = 1; c < ncpu; c++) {
            uint32_t ck = dl_le32(cpu[c].data + off);
            /* The overflow bucket's key is meaningless: sum it always. */
            if (!ck && !overflow)
                continue;
            if (!key)
                key = ck;
            read_counts(t.L, cpu[c].data + off, &cnp, &cpg);
            add_counts(&np, &cnp);
            add_counts(&pg, &cpg);
        }
        if (!key && !overflow) {
            has_empty = 1;
            continue;
        }
        if (overflow && !(np.allocs | np.frees | np.bytes | pg.allocs | pg.frees | pg.bytes))
            continue;
        if (add_tag(pool, key, overflow, &np, &pg) != DL_OK) {
            st = dl_fail(ctx, DL_ECORRUPT, "out of memory");
            break;
        }
    }
    /* The tables are charged to 'Pool' (§2.8 step 6c): a smaller charge
     * means the size is doubtful (checked, not enforced: 32-bit counters wrap). */
    uint64_t need = ((uint64_t)entries * size + DL_PAGE_SIZE - 1) & ~(uint64_t)(DL_PAGE_SIZE - 1);
    for (size_t i = 0; t.bits == 32 && i < pool->ntags; i++)
        if (!pool->tags[i].overflow && pool->tags[i].key == 0x6C6F6F50u && pool->tags[i].nonpaged.bytes < need)
            dl_warn(ctx, "tracker-size-unconfirmed",
                    "the 'Pool' tag holds %llu bytes, less than the %llu of a "
                    "tracker table of %u entries",
                    (unsigned long long)pool->tags[i].nonpaged.bytes, (unsigned long long)need, entries);
    if (global.present_bytes < global.len)
        dl_warn(ctx, "tracker-partial", "part of the tracker table at 0x%llx is absent from the dump",
                (unsigned long long)t.table);
    if (st == DL_OK && !has_empty)
        find_expansion(&t, pool, &global, slots);
    for (uint32_t c = 1; c < cpus; c++)
        dl_window_free(&cpu[c]);
    free(cpu);
    free(tables);
    dl_window_free(&global);
    return st;
}
