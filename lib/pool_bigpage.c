/* Big-page table (pool-internals.md §3): located without symbols from
 * (pointer, size) pairs near &PoolTrackTable (the generic form of vol2
 * bigpagepools.py's distance table) and validated entry by entry. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "kernel.h"
#include "layouts.h"
#include "pool.h"

#define NEAR_WINDOW 0x3000u
#define MAX_PAIR_DISTANCE 0x40u
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
static int table_score(dl_dump *d, uint64_t table, uint64_t n, const dl_bigpage_layout *L)
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
    if (!used)
        return -1;
    return (int)(good * 1000 / sample);
}

dl_status dl_pool_bigpages(dl_dump *d, dl_bigpool *big)
{
    dl_ctx *ctx = d->ctx;
    int bits = d->info.bits, step = bits / 8;
    uint64_t anchor;
    if (!dl_kdbg_member(d, KDBG_POOLTRACKTABLE, &anchor) || !dl_kernel_va(d, anchor))
        return dl_fail(ctx, DL_PARTIAL, "the KDBG gives no PoolTrackTable to find the big-page table from");
    uint64_t tracker = 0;
    dl_vmem_read_ptr(&d->vm, ctx, bits, anchor, &tracker);
    dl_window w;
    dl_status st = dl_window_read(d, anchor - NEAR_WINDOW, 2 * NEAR_WINDOW, &w);
    if (st != DL_OK)
        return st;
    const dl_bigpage_layout *cand[8];
    int ncand = dl_bigpage_candidates(bits, d->info.minor_version, cand, 8);
    uint64_t best_table = 0, best_n = 0;
    const dl_bigpage_layout *best_L = NULL;
    int best_score = -1;
    for (uint64_t a = w.va; a + (uint64_t)step <= w.va + w.len; a += (uint64_t)step) {
        uint64_t table;
        if (!dl_window_ptr(&w, a, bits, &table) || !dl_kernel_va(d, table) || (table & (DL_PAGE_SIZE - 1)) ||
            table == tracker)
            continue;
        for (uint64_t b = a > MAX_PAIR_DISTANCE ? a - MAX_PAIR_DISTANCE : 0; b <= a + MAX_PAIR_DISTANCE;
             b += (uint64_t)step) {
            uint64_t n;
            if (b == a || !dl_window_ptr(&w, b, bits, &n) || n < MIN_ENTRIES || n >= MAX_ENTRIES || (n & (n - 1)))
                continue;
            for (int c = 0; c < ncand; c++) {
                int s = table_score(d, table, n, cand[c]);
                /* The build's own layout wins ties. */
                if (s >= 900 && s > best_score) {
                    best_score = s;
                    best_table = table;
                    best_n = n;
                    best_L = cand[c];
                }
            }
        }
    }
    dl_window_free(&w);
    if (!best_L)
        return dl_fail(ctx, DL_PARTIAL, "the big-page table was not found near PoolTrackTable");
    if (best_L != cand[0])
        dl_warn(ctx, "bigpage-layout", "big-page entries are 0x%x bytes, not the 0x%x expected for build %u",
                best_L->size, cand[0]->size, d->info.minor_version);
    big->table_va = best_table;
    big->table_entries = best_n;
    dl_window t;
    st = dl_window_read(d, best_table, (size_t)(best_n * best_L->size), &t);
    if (st != DL_OK)
        return st;
    if (t.present_bytes < t.len)
        dl_warn(ctx, "bigpage-partial", "part of the big-page table at 0x%llx is absent from the dump",
                (unsigned long long)best_table);
    big->entries = calloc(best_n, sizeof *big->entries);
    if (!big->entries) {
        dl_window_free(&t);
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    }
    for (uint64_t i = 0; i < best_n; i++) {
        uint64_t off = i * best_L->size;
        if (!t.page_present[off >> DL_PAGE_SHIFT])
            continue;
        uint64_t va = dl_leptr(t.data + off + best_L->va, bits);
        if (va == 0 || va == 1)
            continue;
        decode_entry(d, best_L, t.data + off, &big->entries[big->n++]);
    }
    dl_window_free(&t);
    return DL_OK;
}
