/* Big-page table (pool-internals.md §3): located without symbols from
 * (pointer, size) pairs near &PoolTrackTable (the generic form of vol2
 * bigpagepools.py's distance table) and validated entry by entry. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "kernel.h"
#include "layouts.h"
#include "pe.h"
#include "pool.h"

#define NEAR_WINDOW 0x3000u
#define MIN_ENTRIES 64u
#define MAX_ENTRIES 0x1000000u
#define SAMPLE_ENTRIES 4096u

/* POOL_TYPE from the entry, when the value is a known type (§3.1 rule). */
static dl_pool_type decode_type(uint32_t t)
{
    uint32_t base = t & ~0xCu; /* cache-aligned 4, quota 8 */
    switch (base) {
    case 0x0:
    case 0x20:
        return DL_POOL_NONPAGED;
    case 0x1:
    case 0x21:
        return DL_POOL_PAGED;
    case 0x200:
    case 0x220:
        return DL_POOL_NONPAGED_NX;
    default:
        return DL_POOL_UNKNOWN;
    }
}

static void decode_entry(const dl_dump *d, const dl_bigpage_layout *L, const uint8_t *e, dl_bigpool_entry *out)
{
    int bits = d->info.bits;
    uint64_t va = dl_leptr(e + L->va, bits);
    out->free = (int)(va & 1);
    out->va = va & ~1ull;
    out->key = dl_le32(e + L->key);
    uint32_t t = dl_le32(e + L->type_or_pages);
    switch (L->kind) {
    case DL_BIG_PAGES:
        out->bytes = (uint64_t)t * DL_PAGE_SIZE;
        out->pool = DL_POOL_UNKNOWN;
        break;
    case DL_BIG_BYTES:
        out->bytes = dl_leptr(e + L->bytes, bits);
        out->pool = decode_type(t);
        break;
    case DL_BIG_BITFIELD:
        out->bytes = dl_leptr(e + L->bytes, bits);
        out->pool = decode_type((t >> 8) & 0xFFF);
        break;
    }
}

/* Share (1/1000) of sampled entries that look like big-page entries, or -1. */
static int table_score(dl_dump *d, uint64_t table, uint64_t n, const dl_bigpage_layout *L, int need_used)
{
    uint64_t sample = n < SAMPLE_ENTRIES ? n : SAMPLE_ENTRIES;
    dl_window w;
    if (dl_window_read(d, table, (size_t)(sample * L->size), &w) != DL_OK || w.present_bytes < w.len) {
        dl_window_free(&w);
        return -1;
    }
    uint64_t good = 0, used = 0;
    for (uint64_t i = 0; i < sample; i++) {
        const uint8_t *e = w.data + i * L->size;
        uint64_t va = dl_leptr(e + L->va, d->info.bits);
        if (va == 0 || va == 1) {
            good++;
            continue;
        }
        if (!dl_kernel_va(d, va & ~1ull) || ((va & ~1ull) & (DL_PAGE_SIZE - 1)))
            continue;
        dl_bigpool_entry x;
        decode_entry(d, L, e, &x);
        if (!dl_printable_tag(x.key))
            continue;
        if (x.bytes == 0 || x.bytes >= (1ull << 30))
            continue;
        good++;
        used++;
    }
    dl_window_free(&w);
    if (!used && need_used)
        return -1;
    return (int)(good * 1000 / sample);
}

/* Entries in use among the first n (Va page aligned, bit 0 clear). */
static uint64_t count_in_use(dl_dump *d, uint64_t table, uint64_t n, const dl_bigpage_layout *L)
{
    dl_window w;
    uint64_t used = 0;
    if (dl_window_read(d, table, (size_t)(n * L->size), &w) != DL_OK)
        return 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t va = dl_leptr(w.data + i * L->size + L->va, d->info.bits);
        used += va > 1 && !(va & 1);
    }
    dl_window_free(&w);
    return used;
}

typedef struct big_choice {
    uint64_t table, n, in_use;
    const dl_bigpage_layout *L;
    int score, counted, distance;
} big_choice;

/* Better: the in-use count matches a counter in nt's data
 * (ExpPoolBigEntriesInUse), then the pair closer together, then the score. */
static int better(const big_choice *a, const big_choice *b)
{
    if (!b->L)
        return 1;
    if (a->counted != b->counted)
        return a->counted > b->counted;
    if (a->distance != b->distance)
        return a->distance < b->distance;
    return a->score > b->score;
}

/* Tables larger than this are not read whole to count entries in use. */
#define MAX_COUNTED_BYTES (64u << 20)
/* Full validations per search: a crafted window of plausible pointers and
 * sizes must not make the work grow with their product. */
#define MAX_FULL_CHECKS 256

/* The best (table, size) pair with both slots inside window w. */
static void search_window(dl_dump *d, const dl_window *w, uint64_t tracker, const dl_bigpage_layout **cand, int ncand,
                          big_choice *best)
{
    int bits = d->info.bits, step = bits / 8;
    uint64_t sizes[64], size_at[64];
    int nsizes = 0, checks = 0;
    for (uint64_t b = w->va; b + (uint64_t)step <= w->va + w->len && nsizes < 64; b += (uint64_t)step) {
        uint64_t n;
        if (dl_window_ptr(w, b, bits, &n) && n >= MIN_ENTRIES && n < MAX_ENTRIES && !(n & (n - 1))) {
            sizes[nsizes] = n;
            size_at[nsizes++] = b;
        }
    }
    for (uint64_t a = w->va; a + (uint64_t)step <= w->va + w->len; a += (uint64_t)step) {
        uint64_t table;
        if (!dl_window_ptr(w, a, bits, &table) || !dl_kernel_va(d, table) || (table & (DL_PAGE_SIZE - 1)) ||
            table == tracker)
            continue;
        for (int c = 0; c < ncand; c++) {
            /* Cheap first look at the smallest plausible table. */
            if (table_score(d, table, MIN_ENTRIES, cand[c], 0) < 900)
                continue;
            for (int k = 0; k < nsizes && checks < MAX_FULL_CHECKS; k++, checks++) {
                big_choice x = {table, sizes[k], 0, cand[c], table_score(d, table, sizes[k], cand[c], 1), 0, 0};
                if (x.score < 900)
                    continue;
                x.distance = (int)(a > size_at[k] ? a - size_at[k] : size_at[k] - a);
                if (x.n * cand[c]->size <= MAX_COUNTED_BYTES) {
                    x.in_use = count_in_use(d, table, x.n, cand[c]);
                    for (uint64_t v = w->va; v + 4 <= w->va + w->len && !x.counted; v += 4) {
                        size_t off = (size_t)(v - w->va);
                        x.counted =
                            w->page_present[off >> DL_PAGE_SHIFT] && x.in_use && dl_le32(w->data + off) == x.in_use;
                    }
                }
                if (better(&x, best))
                    *best = x;
            }
        }
    }
}

dl_status dl_pool_bigpages(dl_dump *d, dl_bigpool *big)
{
    dl_ctx *ctx = d->ctx;
    int bits = d->info.bits;
    uint64_t anchor;
    if (!dl_kdbg_member(d, KDBG_POOLTRACKTABLE, &anchor) || !dl_kernel_va(d, anchor))
        return dl_fail(ctx, DL_PARTIAL, "the KDBG gives no PoolTrackTable to find the big-page table from");
    uint64_t tracker = 0;
    dl_vmem_read_ptr(&d->vm, ctx, bits, anchor, &tracker);
    const dl_bigpage_layout *cand[8];
    int ncand = dl_bigpage_candidates(bits, d->info.minor_version, cand, 8);
    big_choice best = {0};
    /* Near &PoolTrackTable first (§3.3), then the rest of nt's writable data:
     * builds place the globals further apart than any window assumes. */
    dl_window w;
    dl_status st = dl_window_read(d, anchor - NEAR_WINDOW, 2 * NEAR_WINDOW, &w);
    if (st != DL_OK)
        return st;
    search_window(d, &w, tracker, cand, ncand, &best);
    dl_window_free(&w);
    uint64_t nt;
    dl_image img;
    if (!best.L && dl_nt_base(d, &nt) && dl_image_load(d, nt, 0, &img) == DL_OK)
        for (int s = 0; s < img.nsec && !best.L; s++) {
            if (!(img.sec[s].characteristics & DL_SCN_MEM_WRITE) ||
                (img.sec[s].characteristics & DL_SCN_MEM_DISCARDABLE) ||
                dl_window_read(d, img.sec[s].va, img.sec[s].size, &w) != DL_OK)
                continue;
            search_window(d, &w, tracker, cand, ncand, &best);
            dl_window_free(&w);
        }
    dl_ctx_clear_error(ctx);
    if (!best.L)
        return dl_fail(ctx, DL_PARTIAL, "the big-page table was not found in nt's data");
    if (best.L->size != cand[0]->size)
        dl_warn(ctx, "bigpage-layout", "big-page entries are 0x%x bytes, not the 0x%x expected for build %u",
                best.L->size, cand[0]->size, d->info.minor_version);
    if (!best.counted)
        dl_warn(ctx, "bigpage-size", "big-page table size 0x%llx chosen without an in-use counter to confirm it",
                (unsigned long long)best.n);
    big->table_va = best.table;
    big->table_entries = best.n;
    dl_window t;
    st = dl_window_read(d, best.table, (size_t)(best.n * best.L->size), &t);
    if (st != DL_OK)
        return st;
    if (t.present_bytes < t.len)
        dl_warn(ctx, "bigpage-partial", "part of the big-page table at 0x%llx is absent from the dump",
                (unsigned long long)best.table);
    big->entries = calloc(best.n, sizeof *big->entries);
    if (!big->entries) {
        dl_window_free(&t);
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    }
    for (uint64_t i = 0; i < best.n; i++) {
        uint64_t off = i * best.L->size;
        if (!t.page_present[off >> DL_PAGE_SHIFT])
            continue;
        uint64_t va = dl_leptr(t.data + off + best.L->va, bits);
        if (va == 0 || va == 1)
            continue;
        decode_entry(d, best.L, t.data + off, &big->entries[big->n++]);
    }
    dl_window_free(&t);
    return DL_OK;
}
