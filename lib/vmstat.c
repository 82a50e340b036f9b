/* The !vm-style summary (pool-internals.md §1.4, §5): KDBG variables,
 * each validated, and pool usage from the descriptors where the build has
 * them (layouts.c), from tracker totals otherwise. */
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "kernel.h"
#include "layouts.h"
#include "pool.h"

/* Counts above 2^36 pages (256 TiB) are not memory any Windows manages. */
#define MAX_PAGES (1ull << 36)

static void set(dl_vm_value *v, uint64_t x)
{
    v->known = 1;
    v->v = x;
}

/* A variable whose width is "pointer or ULONG" (§1.4 practical rule): take
 * 8 bytes on 64-bit targets when plausible, else the low 32 bits. */
static int read_count(dl_dump *d, uint32_t member, int ulong_only, uint64_t bound, uint64_t *out)
{
    uint64_t v;
    int width = dl_is64(d) && !ulong_only ? 8 : 4;
    if (!dl_kdbg_deref(d, member, width, &v))
        return 0;
    if (width == 8 && v > bound)
        v &= 0xFFFFFFFFull;
    if (v > bound)
        return 0;
    *out = v;
    return 1;
}

static void count_line(dl_dump *d, dl_vm_value *v, uint32_t member, int ulong_only, uint64_t bound, const char *name)
{
    uint64_t x;
    if (read_count(d, member, ulong_only, bound, &x))
        set(v, x);
    else
        dl_warn(d->ctx, "vm-value", "%s is not available from the KDBG (missing, absent from the dump or implausible)",
                name);
}

/* Usage in pages of one descriptor. */
static int descriptor_pages(dl_dump *d, const dl_descriptor_layout *L, uint64_t va, uint64_t *pages)
{
    /* Only the bytes up to the last counter: the rest may be on an absent page. */
    uint32_t last = L->kind == DL_DESC_TOTALS
                        ? (L->total_pages > L->total_big_pages ? L->total_pages : L->total_big_pages)
                        : (L->pages_free > L->big_free ? L->pages_free : L->big_free);
    uint8_t b[0x100];
    if (last + 8u > sizeof b || !dl_kernel_va(d, va) || dl_vmem_read(&d->vm, d->ctx, va, b, last + 8u) != DL_OK)
        return 0;
    uint64_t v;
    if (L->kind == DL_DESC_TOTALS) {
        v = (uint64_t)dl_le32(b + L->total_pages) + dl_le32(b + L->total_big_pages);
    } else {
        uint64_t pa = L->width == 8 ? dl_le64(b + L->pages_alloc) : dl_le32(b + L->pages_alloc);
        uint64_t pf = L->width == 8 ? dl_le64(b + L->pages_free) : dl_le32(b + L->pages_free);
        uint64_t ba = L->width == 8 ? dl_le64(b + L->big_alloc) : dl_le32(b + L->big_alloc);
        uint64_t bf = L->width == 8 ? dl_le64(b + L->big_free) : dl_le32(b + L->big_free);
        if (pf > pa || bf > ba)
            return 0;
        v = (pa - pf) + (ba - bf);
    }
    if (v > MAX_PAGES)
        return 0;
    *pages = v;
    return 1;
}

static int usage_from_descriptors(dl_dump *d, dl_vm *vm)
{
    const dl_descriptor_layout *L = dl_descriptor_layout_for(d->info.bits, d->info.minor_version);
    uint64_t np_desc, paged_array, nparged = 0, np;
    if (!L || !dl_kdbg_member(d, KDBG_NONPAGEDPOOLDESCRIPTOR, &np_desc) ||
        !dl_kdbg_member(d, KDBG_EXPPAGEDPOOLDESCRIPTOR, &paged_array) ||
        !dl_kdbg_deref(d, KDBG_EXPNUMBEROFPAGEDPOOLS, 4, &nparged) || nparged >= DL_MAX_PAGED_POOLS ||
        !descriptor_pages(d, L, np_desc, &np))
        return 0;
    /* Paged descriptors 0..N, N = ExpNumberOfPagedPools (§1.4). */
    uint64_t total = 0;
    for (uint64_t i = 0; i <= nparged; i++) {
        uint64_t desc, pages;
        if (dl_vmem_read_ptr(&d->vm, d->ctx, d->info.bits, paged_array + i * (uint64_t)(d->info.bits / 8), &desc) !=
                DL_OK ||
            !descriptor_pages(d, L, desc, &pages))
            return 0;
        vm->paged_pool_usage[i] = pages;
        total += pages;
    }
    vm->npaged_pools = (size_t)nparged + 1;
    set(&vm->nonpaged_pool_pages, np);
    set(&vm->paged_pool_pages, total);
    vm->usage_source = "descriptors";
    return 1;
}

dl_status dl_vm_summary(dl_dump *d, dl_vm *vm)
{
    memset(vm, 0, sizeof *vm);
    if (!d->kdbg.valid)
        return dl_fail(d->ctx, DL_PARTIAL, "no valid KDBG: the memory-manager counters are not reachable");
    count_line(d, &vm->physical_pages, KDBG_MMNUMBEROFPHYSICALPAGES, 0, MAX_PAGES, "MmNumberOfPhysicalPages");
    uint64_t phys = vm->physical_pages.known && vm->physical_pages.v ? vm->physical_pages.v : MAX_PAGES;
    count_line(d, &vm->available_pages, KDBG_MMAVAILABLEPAGES, 0, phys, "MmAvailablePages");
    count_line(d, &vm->resavail_pages, KDBG_MMRESIDENTAVAILABLEPAGES, 0, phys, "MmResidentAvailablePages");
    /* MmModifiedPageListHead is an MMPFNLIST: Total at +0. */
    uint64_t head, total;
    if (dl_kdbg_member(d, KDBG_MMMODIFIEDPAGELISTHEAD, &head) && dl_kernel_va(d, head) &&
        dl_vmem_read_ptr(&d->vm, d->ctx, d->info.bits, head, &total) == DL_OK && total <= phys)
        set(&vm->modified_pages, total);
    else
        dl_warn(d->ctx, "vm-value", "MmModifiedPageListHead is not available from the KDBG");
    count_line(d, &vm->commit_limit_pages, KDBG_MMTOTALCOMMITLIMIT, 0, MAX_PAGES, "MmTotalCommitLimit");
    uint64_t limit = vm->commit_limit_pages.known ? vm->commit_limit_pages.v : MAX_PAGES;
    count_line(d, &vm->committed_pages, KDBG_MMTOTALCOMMITTEDPAGES, 0, limit, "MmTotalCommittedPages");
    count_line(d, &vm->shared_commit_pages, KDBG_MMSHAREDCOMMIT, 0, limit, "MmSharedCommit");
    count_line(d, &vm->driver_commit_pages, KDBG_MMDRIVERCOMMIT, 1, limit, "MmDriverCommit");
    count_line(d, &vm->process_commit_pages, KDBG_MMPROCESSCOMMIT, 0, limit, "MmProcessCommit");
    count_line(d, &vm->paged_pool_commit_pages, KDBG_MMPAGEDPOOLCOMMIT, 1, limit, "MmPagedPoolCommit");
    uint64_t bytes;
    if (read_count(d, KDBG_MMMAXIMUMNONPAGEDPOOLINBYTES, 0, MAX_PAGES << 12, &bytes) && bytes)
        set(&vm->nonpaged_pool_max_pages, bytes / DL_PAGE_SIZE);
    else
        dl_warn(d->ctx, "vm-value", "MmMaximumNonPagedPoolInBytes is not available from the KDBG");
    if (read_count(d, KDBG_MMSIZEOFPAGEDPOOLINBYTES, 0, MAX_PAGES << 12, &bytes) && bytes)
        set(&vm->paged_pool_max_pages, bytes / DL_PAGE_SIZE);
    else
        dl_warn(d->ctx, "vm-value", "MmSizeOfPagedPoolInBytes is not available from the KDBG");

    if (!usage_from_descriptors(d, vm)) {
        const dl_pool *pool;
        if (dl_get_pool(d, &pool) <= DL_PARTIAL && pool) {
            set(&vm->nonpaged_pool_pages, (pool->total_nonpaged.bytes + DL_PAGE_SIZE - 1) / DL_PAGE_SIZE);
            set(&vm->paged_pool_pages, (pool->total_paged.bytes + DL_PAGE_SIZE - 1) / DL_PAGE_SIZE);
            vm->usage_source = "tracker";
        } else {
            dl_warn(d->ctx, "vm-pool-usage", "pool usage is not available: no pool descriptors and no tracker table");
        }
    }
    dl_warn(d->ctx, "vm-nx-usage", "NonPagedPoolNx usage is not derivable without symbols; reported as null");
    return DL_OK;
}
