#include "physmem.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"

/* No machine has more physical page ranges than this; a crafted bitmap
 * alternating bits stays bounded by the file size anyway. */
#define DL_MAX_EXTENTS (1u << 26)

void dl_physmem_init(dl_physmem *pm, dl_source *src)
{
    memset(pm, 0, sizeof *pm);
    pm->src = src;
}

void dl_physmem_free(dl_physmem *pm)
{
    free(pm->ext);
    pm->ext = NULL;
    pm->n = pm->cap = 0;
}

dl_status dl_physmem_add(dl_physmem *pm, dl_ctx *ctx, uint64_t pfn, uint64_t pages, uint64_t file_offset)
{
    if (!pages)
        return DL_OK;
    /* Physical addresses are at most 52 bits: PFNs below 2^40. */
    if (pfn >= (1ull << 40) || pages > (1ull << 40) - pfn)
        return dl_fail(ctx, DL_ECORRUPT, "physical range PFN 0x%llx + 0x%llx pages is beyond any physical address",
                       (unsigned long long)pfn, (unsigned long long)pages);
    if (pm->n && pm->ext[pm->n - 1].pfn + pm->ext[pm->n - 1].pages == pfn &&
        pm->ext[pm->n - 1].file_offset + pm->ext[pm->n - 1].pages * DL_PAGE_SIZE == file_offset) {
        pm->ext[pm->n - 1].pages += pages;
        return DL_OK;
    }
    if (pm->n == pm->cap) {
        if (pm->cap >= DL_MAX_EXTENTS)
            return dl_fail(ctx, DL_ECORRUPT, "more than %u physical ranges", DL_MAX_EXTENTS);
        size_t ncap = pm->cap ? pm->cap * 2 : 64;
        dl_extent *n = realloc(pm->ext, ncap * sizeof *n);
        if (!n)
            return dl_fail(ctx, DL_ECORRUPT, "out of memory for the physical map");
        pm->ext = n;
        pm->cap = ncap;
    }
    pm->ext[pm->n++] = (dl_extent){pfn, pages, file_offset};
    return DL_OK;
}

static int cmp_extent(const void *a, const void *b)
{
    const dl_extent *x = a, *y = b;
    return x->pfn < y->pfn ? -1 : x->pfn > y->pfn;
}

dl_status dl_physmem_finish(dl_physmem *pm, dl_ctx *ctx)
{
    if (pm->n > 1)
        qsort(pm->ext, pm->n, sizeof *pm->ext, cmp_extent);
    /* Overlaps never come from Windows: keep the first description of a
     * page and drop the later one, with a warning (dump-format §3.3 #5). */
    for (size_t i = 1; i < pm->n; i++) {
        uint64_t prev_end = pm->ext[i - 1].pfn + pm->ext[i - 1].pages;
        if (pm->ext[i].pfn >= prev_end)
            continue;
        uint64_t cut = prev_end - pm->ext[i].pfn;
        dl_warn(ctx, "overlapping-ranges", "physical ranges overlap at PFN 0x%llx: the first description is kept",
                (unsigned long long)pm->ext[i].pfn);
        if (cut >= pm->ext[i].pages) {
            memmove(&pm->ext[i], &pm->ext[i + 1], (pm->n - i - 1) * sizeof *pm->ext);
            pm->n--;
            i--;
            continue;
        }
        pm->ext[i].pfn += cut;
        pm->ext[i].pages -= cut;
        pm->ext[i].file_offset += cut * DL_PAGE_SIZE;
    }
    /* Clamp at EOF: pages the header describes but the file lacks are absent. */
    uint64_t fsize = pm->src->size;
    size_t out = 0;
    pm->pages_present = 0;
    pm->pages_past_eof = pm->pages_past_eof_unmapped;
    for (size_t i = 0; i < pm->n; i++) {
        dl_extent e = pm->ext[i];
        uint64_t avail = e.file_offset >= fsize ? 0 : (fsize - e.file_offset) / DL_PAGE_SIZE;
        if (avail < e.pages) {
            pm->pages_past_eof += e.pages - avail;
            e.pages = avail;
        }
        if (!e.pages)
            continue;
        if (out && pm->ext[out - 1].pfn + pm->ext[out - 1].pages == e.pfn &&
            pm->ext[out - 1].file_offset + pm->ext[out - 1].pages * DL_PAGE_SIZE == e.file_offset)
            pm->ext[out - 1].pages += e.pages;
        else
            pm->ext[out++] = e;
        pm->pages_present += e.pages;
    }
    pm->n = out;
    pm->max_pfn = out ? pm->ext[out - 1].pfn + pm->ext[out - 1].pages : 0;
    return DL_OK;
}

static const dl_extent *find(const dl_physmem *pm, uint64_t pfn)
{
    size_t lo = 0, hi = pm->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const dl_extent *e = &pm->ext[mid];
        if (pfn < e->pfn)
            hi = mid;
        else if (pfn >= e->pfn + e->pages)
            lo = mid + 1;
        else
            return e;
    }
    return NULL;
}

uint64_t dl_physmem_offset(const dl_physmem *pm, uint64_t pfn, int *present)
{
    const dl_extent *e = find(pm, pfn);
    *present = e != NULL;
    return e ? e->file_offset + (pfn - e->pfn) * DL_PAGE_SIZE : 0;
}

int dl_physmem_has(const dl_physmem *pm, uint64_t pfn)
{
    return find(pm, pfn) != NULL;
}

uint64_t dl_physmem_next_present(const dl_physmem *pm, uint64_t pfn)
{
    size_t lo = 0, hi = pm->n; /* the first extent that ends after pfn */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pm->ext[mid].pfn + pm->ext[mid].pages <= pfn)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == pm->n)
        return UINT64_MAX;
    return pm->ext[lo].pfn > pfn ? pm->ext[lo].pfn : pfn;
}

dl_status dl_physmem_read(dl_physmem *pm, dl_ctx *ctx, uint64_t pa, void *buf, size_t len)
{
    uint8_t *out = buf;
    while (len) {
        uint64_t pfn = pa >> DL_PAGE_SHIFT;
        size_t in_page = DL_PAGE_SIZE - (size_t)(pa & (DL_PAGE_SIZE - 1));
        size_t n = len < in_page ? len : in_page;
        int present;
        uint64_t off = dl_physmem_offset(pm, pfn, &present);
        if (!present)
            return dl_fail(ctx, DL_PARTIAL, "physical address 0x%llx is not in the dump", (unsigned long long)pa);
        dl_status st = dl_source_read(pm->src, ctx, off + (pa & (DL_PAGE_SIZE - 1)), out, n);
        if (st != DL_OK)
            return st;
        out += n;
        pa += n;
        len -= n;
    }
    return DL_OK;
}

uint64_t dl_physmem_cut(dl_physmem *pm, uint64_t pfn, uint64_t pages)
{
    uint64_t end = pfn + pages, cut = 0;
    for (size_t i = 0; i < pm->n; i++) {
        dl_extent *e = &pm->ext[i];
        uint64_t e_end = e->pfn + e->pages;
        if (end <= e->pfn || pfn >= e_end)
            continue;
        uint64_t lost_from = pfn > e->pfn ? pfn : e->pfn, lost_to = end < e_end ? end : e_end;
        pm->pages_present -= lost_to - lost_from;
        cut += lost_to - lost_from;
        if (lost_from > e->pfn && lost_to < e_end) {
            /* The cut splits the extent: keep the head here, the tail after it. */
            dl_extent tail = {lost_to, e_end - lost_to, e->file_offset + (lost_to - e->pfn) * DL_PAGE_SIZE};
            e->pages = lost_from - e->pfn;
            dl_extent *grown = realloc(pm->ext, (pm->n + 1) * sizeof *grown);
            if (!grown) {
                pm->pages_present -= e_end - lost_to; /* the tail is dropped: read as absent */
                return cut;
            }
            pm->ext = grown;
            memmove(&pm->ext[i + 2], &pm->ext[i + 1], (pm->n - i - 1) * sizeof *pm->ext);
            pm->ext[i + 1] = tail;
            pm->n++;
            i++;
        } else if (lost_from > e->pfn) {
            e->pages = lost_from - e->pfn;
        } else {
            e->file_offset += (lost_to - e->pfn) * DL_PAGE_SIZE;
            e->pages = e_end - lost_to;
            e->pfn = lost_to;
        }
    }
    size_t out = 0;
    for (size_t i = 0; i < pm->n; i++)
        if (pm->ext[i].pages)
            pm->ext[out++] = pm->ext[i];
    pm->n = out;
    return cut;
}
