/* Structure layouts by (architecture, build range): one row per era, so a
 * new Windows build is a new row, not new code. */
#ifndef DL_LAYOUTS_H
#define DL_LAYOUTS_H

#include <stdint.h>

/* _POOL_TRACKER_TABLE: offsets of the six counters and their widths. */
typedef struct dl_tracker_layout {
    int bits;
    uint32_t min_build, max_build; /* inclusive */
    uint32_t size;
    uint32_t np_allocs, np_frees, np_bytes, p_allocs, p_frees, p_bytes;
    uint8_t count_width, bytes_width; /* 4 or 8 */
} dl_tracker_layout;

/* _POOL_TRACKER_BIG_PAGES. */
typedef enum dl_big_size_kind {
    DL_BIG_PAGES,   /* NumberOfPages: bytes = pages * 4096, type unknown */
    DL_BIG_BYTES,   /* PoolType (ULONG) + NumberOfBytes */
    DL_BIG_BITFIELD /* {Pattern:8, PoolType:12, SlushSize:12} + NumberOfBytes */
} dl_big_size_kind;

typedef struct dl_bigpage_layout {
    int bits;
    uint32_t min_build, max_build;
    uint32_t size;
    uint32_t va, key, type_or_pages, bytes;
    dl_big_size_kind kind;
} dl_bigpage_layout;

/* _POOL_DESCRIPTOR: usage in pages. */
typedef enum dl_desc_kind {
    DL_DESC_TOTALS, /* TotalPages + TotalBigPages */
    DL_DESC_COUNTS  /* (PagesAllocated - PagesDeallocated) + (BigPages...) */
} dl_desc_kind;

typedef struct dl_descriptor_layout {
    int bits;
    uint32_t min_build, max_build;
    dl_desc_kind kind;
    uint32_t total_pages, total_big_pages;                 /* TOTALS (u32) */
    uint32_t pages_alloc, big_alloc, pages_free, big_free; /* COUNTS */
    uint8_t width;
} dl_descriptor_layout;

/* Rows matching bits/build, best first; *n set to the count (candidates
 * for stride detection when a boundary is UNCERTAIN). */
int dl_tracker_candidates(int bits, uint32_t build, const dl_tracker_layout **out, int max);
const dl_bigpage_layout *dl_bigpage_layout_for(int bits, uint32_t build);
int dl_bigpage_candidates(int bits, uint32_t build, const dl_bigpage_layout **out, int max);
const dl_descriptor_layout *dl_descriptor_layout_for(int bits, uint32_t build);

#endif
