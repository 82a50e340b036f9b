/* Types 8/9/10: 'RDMP' header and PFN range list after the 64-bit header
 * (dump-format §2.5; layout as kdmp-parser RDMP_HEADER64 reads it). */
#include "bytes.h"
#include "ctx.h"
#include "dump.h"

/* A range list longer than this is not something dbgeng writes. */
#define DL_MAX_RDMP_RANGES 65536u

dl_status dl_body_rdmp(dl_dump *d)
{
    dl_ctx *ctx = d->ctx;
    uint64_t at = d->header_size;
    uint8_t h[0x30];
    dl_status st = dl_source_read(d->src, ctx, at, h, sizeof h);
    if (st != DL_OK)
        return dl_fail(ctx, DL_ECORRUPT, "truncated RDMP header at offset 0x%llx", (unsigned long long)at);
    if (dl_le32(h) != 0x40 || dl_le32(h + 4) != 0x504D4452u || dl_le32(h + 8) != 0x504D5544u)
        return dl_fail(ctx, DL_ECORRUPT, "DumpType %u without the RDMP header at offset 0x%llx", d->info.dump_type,
                       (unsigned long long)at);
    uint64_t meta = dl_le64(h + 0x10), first = dl_le64(h + 0x18);
    if (meta < 0x10 || meta > 0x10 + 16ull * DL_MAX_RDMP_RANGES || first != at + 0x20 + meta)
        return dl_fail(ctx, DL_ECORRUPT,
                       "RDMP metadata size 0x%llx and first page offset 0x%llx at 0x%llx do not agree",
                       (unsigned long long)meta, (unsigned long long)first, (unsigned long long)(at + 0x10));
    uint32_t nranges = (uint32_t)((meta - 0x10) / 16);
    int full = d->info.dump_type == 10;
    uint32_t declared_ranges = dl_le32(h + 0x20);
    uint64_t declared_pages = dl_le64(h + 0x28);
    uint64_t offset = first, total = 0;
    uint8_t r[16];
    uint32_t i;
    for (i = 0; i < nranges; i++) {
        if (full && (i >= declared_ranges || total >= declared_pages))
            break;
        st = dl_source_read(d->src, ctx, at + 0x30 + 16ull * i, r, 16);
        if (st != DL_OK)
            return dl_fail(ctx, DL_ECORRUPT, "truncated RDMP range list");
        uint64_t base = dl_le64(r), count = dl_le64(r + 8);
        if (base == 0) /* list terminator, as kdmp-parser reads it */
            break;
        if (count > (1ull << 40))
            return dl_fail(ctx, DL_ECORRUPT, "RDMP range %u has an impossible page count 0x%llx", i,
                           (unsigned long long)count);
        st = dl_physmem_add(&d->pm, ctx, base, count, offset);
        if (st != DL_OK)
            return st;
        offset += count * DL_PAGE_SIZE;
        total += count;
    }
    if (full && (i != declared_ranges || total != declared_pages))
        dl_warn(ctx, "rdmp-count-mismatch", "RDMP header declares %u ranges and %llu pages; the list holds %u and %llu",
                declared_ranges, (unsigned long long)declared_pages, i, (unsigned long long)total);
    return DL_OK;
}
