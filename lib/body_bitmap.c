/* Types 2/5/6: 'SDMP'/'FDMP' summary header and page bitmap.  Win8+ layout
 * (dump-format §2.3: kdmp-parser BMP_HEADER64, vol3 crash.py) and the legacy
 * SUMMARY_DUMP layout (§2.4: old ntiodump.h), accepted where it validates. */
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "dump.h"

#define SIG_SDMP 0x504D4453u
#define SIG_FDMP 0x504D4446u
#define SIG_DUMP 0x504D5544u
/* 2^40 PFNs cover every 52-bit physical address. */
#define DL_MAX_BITMAP_BITS (1ull << 40)

typedef struct bitmap_desc {
    uint64_t first_page; /* file offset of the first stored page */
    uint64_t pages;      /* pages stored (bits set) */
    uint64_t bits;       /* bits in the bitmap */
    uint64_t bitmap_at;  /* file offset of the bitmap */
} bitmap_desc;

/* Call fn for each run of set bits, in chunks so any byte source works.
 * Returns the number of set bits, or UINT64_MAX on a read failure. */
typedef dl_status (*run_fn)(dl_dump *d, uint64_t pfn, uint64_t n, uint64_t rank, const bitmap_desc *b);

static uint64_t scan_bitmap(dl_dump *d, const bitmap_desc *b, run_fn fn, dl_status *st)
{
    uint8_t buf[65536];
    uint64_t nbytes = (b->bits + 7) / 8, rank = 0, run_start = 0, run_len = 0;
    *st = DL_OK;
    for (uint64_t done = 0; done < nbytes;) {
        size_t chunk = nbytes - done < sizeof buf ? (size_t)(nbytes - done) : sizeof buf;
        *st = dl_source_read(d->src, d->ctx, b->bitmap_at + done, buf, chunk);
        if (*st != DL_OK)
            return UINT64_MAX;
        if (done + chunk == nbytes && b->bits % 8) /* ignore bits at or past BitmapSize */
            buf[chunk - 1] &= (uint8_t)((1u << (b->bits % 8)) - 1);
        if (!fn) {
            size_t i = 0;
            for (; i + 8 <= chunk; i += 8) {
                uint64_t w;
                memcpy(&w, buf + i, 8);
                rank += (uint64_t)__builtin_popcountll(w);
            }
            for (; i < chunk; i++)
                rank += (uint64_t)__builtin_popcount(buf[i]);
            done += chunk;
            continue;
        }
        for (size_t i = 0; i < chunk; i++) {
            uint8_t byte = buf[i];
            uint64_t pfn0 = (done + i) * 8;
            if (byte == 0xFF) { /* whole byte present: extend or start a run */
                if (!run_len)
                    run_start = pfn0;
                run_len += 8;
                rank += 8;
                continue;
            }
            if (byte == 0 && !run_len)
                continue;
            for (int bit = 0; bit < 8; bit++) {
                if (byte & (1u << bit)) {
                    if (!run_len)
                        run_start = pfn0 + (uint64_t)bit;
                    run_len++;
                    rank++;
                } else if (run_len) {
                    if ((*st = fn(d, run_start, run_len, rank - run_len, b)) != DL_OK)
                        return UINT64_MAX;
                    run_len = 0;
                }
            }
        }
        done += chunk;
    }
    if (run_len && (*st = fn(d, run_start, run_len, rank - run_len, b)) != DL_OK)
        return UINT64_MAX;
    return rank;
}

/* Pages whose data would lie past the end of the file are absent: they are
 * counted, not mapped, so a crafted bitmap cannot make the table outgrow
 * the file. */
static dl_status add_run(dl_dump *d, uint64_t pfn, uint64_t n, uint64_t rank, const bitmap_desc *b)
{
    uint64_t off = b->first_page + rank * DL_PAGE_SIZE, fsize = d->src->size;
    uint64_t fit = off >= fsize ? 0 : (fsize - off) / DL_PAGE_SIZE;
    if (fit < n) {
        d->pm.pages_past_eof_unmapped += n - fit;
        n = fit;
    }
    return n ? dl_physmem_add(&d->pm, d->ctx, pfn, n, off) : DL_OK;
}

/* Structural checks shared by both layouts; NULL when plausible. */
static const char *check_desc(const dl_dump *d, const bitmap_desc *b)
{
    uint64_t fsize = d->src->size;
    if (b->bits == 0 || b->bits > DL_MAX_BITMAP_BITS)
        return "bitmap size is out of range";
    uint64_t nbytes = (b->bits + 7) / 8;
    if (b->bitmap_at > fsize || nbytes > fsize - b->bitmap_at)
        return "bitmap runs past the end of the file";
    if (b->first_page & (DL_PAGE_SIZE - 1))
        return "first page offset is not page aligned";
    if (b->first_page < b->bitmap_at + nbytes)
        return "first page offset lies inside the bitmap";
    if (b->pages > b->bits)
        return "more pages than bitmap bits";
    return NULL;
}

dl_status dl_body_bitmap(dl_dump *d)
{
    dl_ctx *ctx = d->ctx;
    uint64_t at = d->header_size;
    uint8_t h[0x38];
    if (dl_source_read(d->src, ctx, at, h, sizeof h) != DL_OK)
        return dl_fail(ctx, DL_ECORRUPT, "truncated bitmap header at offset 0x%llx", (unsigned long long)at);
    uint32_t sig = dl_le32(h);
    if ((sig != SIG_SDMP && sig != SIG_FDMP) || dl_le32(h + 4) != SIG_DUMP)
        return dl_fail(ctx, DL_ECORRUPT, "DumpType %u without an SDMP/FDMP header at offset 0x%llx", d->info.dump_type,
                       (unsigned long long)at);

    bitmap_desc cand[3];
    int ncand = 0;
    /* Win8+ layout: u64 HeaderSize @0x20, Pages @0x28, BitmapSize @0x30. */
    cand[ncand++] = (bitmap_desc){dl_le64(h + 0x20), dl_le64(h + 0x28), dl_le64(h + 0x30), at + 0x38};
    /* Legacy layout: u32 HeaderSize @0x0C, BitmapSize @0x10, Pages @0x14,
     * RTL_BITMAP SizeOfBitMap @0x18 == BitmapSize, bits at 0x20 or 0x28. */
    if (dl_le32(h + 0x18) == dl_le32(h + 0x10)) {
        /* SUMMARY_DUMP64 keeps a u64 after SizeOfBitMap: its bits start at
         * 0x28.  Try the file's own width first: the other offset can pass
         * the popcount check shifted by 64 PFNs. */
        uint64_t own = dl_is64(d) ? 0x28 : 0x20, other = dl_is64(d) ? 0x20 : 0x28;
        bitmap_desc legacy = {dl_le32(h + 0x0C), dl_le32(h + 0x14), dl_le32(h + 0x10), at + own};
        cand[ncand++] = legacy;
        legacy.bitmap_at = at + other;
        cand[ncand++] = legacy;
    }
    const char *why = NULL;
    for (int i = 0; i < ncand; i++) {
        const char *w = check_desc(d, &cand[i]);
        if (!w) {
            dl_status st;
            uint64_t set = scan_bitmap(d, &cand[i], NULL, &st);
            if (st != DL_OK)
                return st;
            if (set == cand[i].pages) {
                if (i > 0)
                    dl_warn(ctx, "legacy-summary-layout", "bitmap header uses the pre-Windows 8 SUMMARY_DUMP layout");
                scan_bitmap(d, &cand[i], add_run, &st);
                return st;
            }
            w = "the number of set bits does not match the page count";
        }
        if (!why)
            why = w;
    }
    return dl_fail(ctx, DL_ECORRUPT, "bitmap header at offset 0x%llx is corrupt: %s", (unsigned long long)at, why);
}
