/* Type 1: pages of the PhysicalMemoryBlock runs, back to back after the
 * header (dump-format §1.4, §2.2; mindumpdef.h PHYSICAL_MEMORY_DESCRIPTOR). */
#include "bytes.h"
#include "ctx.h"
#include "dump.h"

dl_status dl_body_runs(dl_dump *d, const uint8_t *hdr)
{
    int is64 = dl_is64(d);
    uint32_t block = is64 ? 0x88 : 0x64;
    uint32_t first_run = is64 ? 0x98 : 0x6C;
    uint32_t run_size = is64 ? 16 : 8;
    uint32_t max_runs = is64 ? 43 : 86; /* what fits before ContextRecord */
    uint32_t nruns = dl_le32(hdr + block);
    uint64_t declared = is64 ? dl_le64(hdr + block + 8) : dl_le32(hdr + block + 4);
    if (nruns == DL_FILLER32)
        return dl_fail(d->ctx, DL_ECORRUPT, "full dump (DumpType 1) without a physical memory run list at 0x%x", block);
    if (nruns == 0 || nruns > max_runs)
        return dl_fail(d->ctx, DL_ECORRUPT, "physical memory run count %u at offset 0x%x is out of range (1..%u)",
                       nruns, block, max_runs);
    uint64_t offset = d->header_size, total = 0;
    for (uint32_t i = 0; i < nruns; i++) {
        const uint8_t *r = hdr + first_run + i * run_size;
        uint64_t base = is64 ? dl_le64(r) : dl_le32(r);
        uint64_t count = is64 ? dl_le64(r + 8) : dl_le32(r + 4);
        if (count > (1ull << 40) || total + count < total)
            return dl_fail(d->ctx, DL_ECORRUPT, "run %u at offset 0x%x has an impossible page count 0x%llx", i,
                           first_run + i * run_size, (unsigned long long)count);
        dl_status st = dl_physmem_add(&d->pm, d->ctx, base, count, offset);
        if (st != DL_OK)
            return st;
        offset += count * DL_PAGE_SIZE;
        total += count;
    }
    if (declared != total)
        dl_warn(d->ctx, "run-pages-mismatch", "run list says %llu pages but its runs add up to %llu",
                (unsigned long long)declared, (unsigned long long)total);
    return DL_OK;
}
