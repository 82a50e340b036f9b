/* Physical memory: one sorted extent table for every dump type, mapping
 * PFN ranges to file offsets.  Built from the container's description
 * without touching page data. */
#ifndef DL_PHYSMEM_H
#define DL_PHYSMEM_H

#include <stddef.h>
#include <stdint.h>

#include "dumpleak.h"
#include "source.h"

typedef struct dl_physmem {
    dl_source *src;
    dl_extent *ext;
    size_t n, cap;
    uint64_t pages_present;
    uint64_t pages_past_eof;          /* described by the container, beyond the file */
    uint64_t pages_past_eof_unmapped; /* of those, never added as extents */
    uint64_t max_pfn;                 /* highest PFN present + 1 */
} dl_physmem;

void dl_physmem_init(dl_physmem *pm, dl_source *src);
void dl_physmem_free(dl_physmem *pm);
dl_status dl_physmem_add(dl_physmem *pm, dl_ctx *ctx, uint64_t pfn, uint64_t pages, uint64_t file_offset);

/* Sort, reject overlaps, merge neighbours and clamp at EOF. */
dl_status dl_physmem_finish(dl_physmem *pm, dl_ctx *ctx);

/* Forget pages [pfn, pfn + pages) after finish (data the container does
 * not hold); returns how many were present. */
uint64_t dl_physmem_cut(dl_physmem *pm, uint64_t pfn, uint64_t pages);

/* File offset of PFN, or 0 with *present = 0. */
uint64_t dl_physmem_offset(const dl_physmem *pm, uint64_t pfn, int *present);
int dl_physmem_has(const dl_physmem *pm, uint64_t pfn);
/* The first present PFN at or above pfn; UINT64_MAX when none. */
uint64_t dl_physmem_next_present(const dl_physmem *pm, uint64_t pfn);

/* Read bytes that may span pages; DL_PARTIAL naming the first absent PA. */
dl_status dl_physmem_read(dl_physmem *pm, dl_ctx *ctx, uint64_t pa, void *buf, size_t len);

#endif
