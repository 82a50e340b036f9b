/* Kernel stage helpers shared by the analyses: nt's image and data
 * sections, windows of kernel memory, KDBG member offsets. */
#ifndef DL_KERNEL_H
#define DL_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "dump.h"

/* KDDEBUGGER_DATA64 members (pool-internals.md §1.3, vol3 kdbg.json). */
enum {
    KDBG_KERNBASE = 0x18,
    KDBG_PSLOADEDMODULELIST = 0x48,
    KDBG_EXPPAGEDPOOLDESCRIPTOR = 0x68,
    KDBG_EXPNUMBEROFPAGEDPOOLS = 0x70,
    KDBG_MMNUMBEROFPHYSICALPAGES = 0xF8,
    KDBG_MMMAXIMUMNONPAGEDPOOLINBYTES = 0x100,
    KDBG_MMSIZEOFPAGEDPOOLINBYTES = 0x140,
    KDBG_MMTOTALCOMMITLIMIT = 0x148,
    KDBG_MMTOTALCOMMITTEDPAGES = 0x150,
    KDBG_MMSHAREDCOMMIT = 0x158,
    KDBG_MMDRIVERCOMMIT = 0x160,
    KDBG_MMPROCESSCOMMIT = 0x168,
    KDBG_MMPAGEDPOOLCOMMIT = 0x170,
    KDBG_MMMODIFIEDPAGELISTHEAD = 0x198,
    KDBG_MMAVAILABLEPAGES = 0x1A8,
    KDBG_MMRESIDENTAVAILABLEPAGES = 0x1B0,
    KDBG_POOLTRACKTABLE = 0x1B8,
    KDBG_NONPAGEDPOOLDESCRIPTOR = 0x1C0,
};

typedef struct dl_section {
    char name[9];
    uint64_t va; /* absolute */
    uint32_t size;
    uint32_t characteristics;
} dl_section;

#define DL_SCN_MEM_EXECUTE 0x20000000u
#define DL_SCN_MEM_WRITE 0x80000000u
#define DL_SCN_MEM_DISCARDABLE 0x02000000u
#define DL_MAX_SECTIONS 96

/* Section table of a PE image mapped at base. */
dl_status dl_pe_sections(dl_dump *d, uint64_t base, dl_section *out, int *n);

/* nt's image base (KDBG KernBase, else the first loaded module). */
int dl_nt_base(dl_dump *d, uint64_t *base);

/* A window of kernel memory read page by page; absent pages read as zero
 * and are flagged so no value is taken from them. */
typedef struct dl_window {
    uint64_t va;
    size_t len;
    uint8_t *data;
    uint8_t *page_present; /* one flag per page touched */
    size_t present_bytes;
} dl_window;

dl_status dl_window_read(dl_dump *d, uint64_t va, size_t len, dl_window *w);
void dl_window_free(dl_window *w);
/* Pointer-sized value at va if its bytes lie in a present page. */
int dl_window_ptr(const dl_window *w, uint64_t va, int bits, uint64_t *out);

/* Dereference a KDBG member that holds the address of a variable. */
int dl_kdbg_deref(dl_dump *d, uint32_t off, int width, uint64_t *out);

static inline int dl_kernel_va(const dl_dump *d, uint64_t va)
{
    return dl_is64(d) ? va >= 0xFFFF800000000000ull : va >= 0x80000000ull && va <= 0xFFFFFFFFull;
}

/* ASCII case-insensitive equality (module and DLL names). */
int dl_ascii_caseeq(const char *a, const char *b);

/* All four tag bytes printable ASCII. */
static inline int dl_printable_tag(uint32_t key)
{
    for (int i = 0; i < 4; i++) {
        uint8_t c = (uint8_t)(key >> (8 * i));
        if (c < 0x20 || c > 0x7E)
            return 0;
    }
    return 1;
}

#endif
