/* Layout tables.  Sources (pool-internals.md): tracker entries §2.2 (vol2
 * vtypes, SymStore/ntdiff PDB headers); big-page entries §3.1 (vol2 vtypes,
 * SymStore 5.x/22000, MemProcFS vmmwinpool.c); descriptors §5.2 (vol2 vtypes). */
#include "layouts.h"

#include <stddef.h>

#define ANY 0xFFFFFFFFu

/* Tracker entries: the 0x28/0x38/0x50 (x64) and 0x1C/0x30/0x40 (x86)
 * boundaries at 16299 and ~20348 are UNCERTAIN, so every row of the
 * architecture is a candidate and the stride is checked on the data. */
static const dl_tracker_layout trackers[] = {
    /* x86: 2000 .. Win10 1703 */
    {32, 0, 16298, 0x1C, 0x4, 0x8, 0xC, 0x10, 0x14, 0x18, 4, 4},
    /* x86: Win10 1709 .. 22H2 */
    {32, 16299, 21291, 0x30, 0x8, 0x10, 0x4, 0x20, 0x28, 0x18, 8, 4},
    /* x86: insider 21292+ (limit fields appended) */
    {32, 21292, ANY, 0x40, 0x8, 0x10, 0x4, 0x20, 0x28, 0x18, 8, 4},
    /* x64: 2003 .. Win10 1703 */
    {64, 0, 16298, 0x28, 0x4, 0x8, 0x10, 0x18, 0x1C, 0x20, 4, 8},
    /* x64: Win10 1709 .. 22H2 / Server 2019 */
    {64, 16299, 20347, 0x38, 0x10, 0x18, 0x8, 0x28, 0x30, 0x20, 8, 8},
    /* x64: Server 2022 / Win11 (AvailableLimit, LimitInfo appended) */
    {64, 20348, ANY, 0x50, 0x10, 0x18, 0x8, 0x28, 0x30, 0x20, 8, 8},
};

static const dl_bigpage_layout bigpages[] = {
    {32, 0, 2600, 0x0C, 0x0, 0x4, 0x8, 0, DL_BIG_PAGES},
    {32, 2601, 5999, 0x10, 0x0, 0x4, 0x8, 0, DL_BIG_PAGES},
    {32, 6000, 10239, 0x10, 0x0, 0x4, 0x8, 0xC, DL_BIG_BYTES},
    {32, 10240, ANY, 0x10, 0x0, 0x4, 0x8, 0xC, DL_BIG_BITFIELD},
    {64, 0, 5999, 0x18, 0x0, 0x8, 0xC, 0, DL_BIG_PAGES},
    {64, 6000, 10239, 0x18, 0x0, 0x8, 0xC, 0x10, DL_BIG_BYTES},
    {64, 10240, 20347, 0x18, 0x0, 0x8, 0xC, 0x10, DL_BIG_BITFIELD},
    {64, 20348, ANY, 0x20, 0x0, 0x8, 0xC, 0x10, DL_BIG_BITFIELD},
};

static const dl_descriptor_layout descriptors[] = {
    /* XP, 2003, Vista: TotalPages 0x10, TotalBigPages 0x14 */
    {32, 0, 7599, DL_DESC_TOTALS, 0x10, 0x14, 0, 0, 0, 0, 4},
    {64, 0, 7599, DL_DESC_TOTALS, 0x10, 0x14, 0, 0, 0, 0, 4},
    /* Win7 .. Win10 1511: TotalBigPages 0x48, TotalPages 0xC0 */
    {32, 7600, 10586, DL_DESC_TOTALS, 0xC0, 0x48, 0, 0, 0, 0, 4},
    {64, 7600, 10586, DL_DESC_TOTALS, 0xC0, 0x48, 0, 0, 0, 0, 4},
    /* Win10 1607 .. 1903: allocated/deallocated page counters */
    {32, 14393, 18363, DL_DESC_COUNTS, 0, 0, 0x44, 0x48, 0x84, 0x88, 4},
    {64, 14393, 18363, DL_DESC_COUNTS, 0, 0, 0x48, 0x50, 0x88, 0x90, 8},
    /* 2004 (19041)+: no _POOL_DESCRIPTOR any more: no row. */
};

int dl_tracker_candidates(int bits, uint32_t build, const dl_tracker_layout **out, int max)
{
    int n = 0;
    /* The build's own row first, then the other rows of the architecture. */
    for (size_t i = 0; i < sizeof trackers / sizeof trackers[0] && n < max; i++)
        if (trackers[i].bits == bits && build >= trackers[i].min_build && build <= trackers[i].max_build)
            out[n++] = &trackers[i];
    for (size_t i = 0; i < sizeof trackers / sizeof trackers[0] && n < max; i++)
        if (trackers[i].bits == bits && !(build >= trackers[i].min_build && build <= trackers[i].max_build))
            out[n++] = &trackers[i];
    return n;
}

int dl_bigpage_candidates(int bits, uint32_t build, const dl_bigpage_layout **out, int max)
{
    int n = 0;
    for (size_t i = 0; i < sizeof bigpages / sizeof bigpages[0] && n < max; i++)
        if (bigpages[i].bits == bits && build >= bigpages[i].min_build && build <= bigpages[i].max_build)
            out[n++] = &bigpages[i];
    /* Neighbouring eras (UNCERTAIN boundaries, e.g. the 0x20 entry at 20348). */
    for (size_t i = 0; i < sizeof bigpages / sizeof bigpages[0] && n < max; i++)
        if (bigpages[i].bits == bits && !(build >= bigpages[i].min_build && build <= bigpages[i].max_build))
            out[n++] = &bigpages[i];
    return n;
}

const dl_bigpage_layout *dl_bigpage_layout_for(int bits, uint32_t build)
{
    const dl_bigpage_layout *l[1];
    return dl_bigpage_candidates(bits, build, l, 1) ? l[0] : NULL;
}

const dl_descriptor_layout *dl_descriptor_layout_for(int bits, uint32_t build)
{
    for (size_t i = 0; i < sizeof descriptors / sizeof descriptors[0]; i++)
        if (descriptors[i].bits == bits && build >= descriptors[i].min_build && build <= descriptors[i].max_build)
            return &descriptors[i];
    return NULL;
}
