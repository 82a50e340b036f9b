/* Virtual memory: one translator for x86, PAE, x64 4/5-level, decoding
 * Windows software PTEs (transition, prototype) at every level. */
#ifndef DL_VMEM_H
#define DL_VMEM_H

#include <stdint.h>

#include "dumpleak.h"
#include "physmem.h"

typedef enum dl_paging {
    DL_PAGING_NONE, /* no page tables: triage dumps read a VA overlay only */
    DL_PAGING_X86,
    DL_PAGING_PAE,
    DL_PAGING_X64_4,
    DL_PAGING_X64_5
} dl_paging;

/* A VA range lent by the file itself (triage dumps: KDBG copy, data blocks). */
typedef struct dl_vrange {
    uint64_t va, len, file_offset;
} dl_vrange;

#define DL_TLB_SLOTS 256

typedef struct dl_vmem {
    dl_physmem *pm;
    dl_paging mode;
    uint64_t root; /* masked CR3 */
    int quiet;     /* failed translations leave no message (set by translate_path) */
    /* x64 L1TF swizzling: mask of the bit Windows sets in invalid PTEs, 0 when
     * unknown (then guessed per entry, dump-format §4.4). */
    uint64_t swizzle_mask;
    dl_vrange *vranges;
    size_t nvranges;
    struct {
        uint64_t vpn, pa_page;
        uint8_t used;
    } tlb[DL_TLB_SLOTS];
} dl_vmem;

void dl_vmem_init(dl_vmem *vm, dl_physmem *pm, dl_paging mode, uint64_t cr3);
void dl_vmem_free(dl_vmem *vm);
dl_status dl_vmem_add_range(dl_vmem *vm, dl_ctx *ctx, uint64_t va, uint64_t len, uint64_t file_offset);

/* Translate; DL_OK when out->kind gives a readable page, DL_PARTIAL with a
 * message otherwise (out still says why). */
dl_status dl_vmem_translate(dl_vmem *vm, dl_ctx *ctx, uint64_t va, dl_xlat *out);
dl_status dl_vmem_read(dl_vmem *vm, dl_ctx *ctx, uint64_t va, void *buf, size_t len);

/* Translate for a scan: the PA of the table read at each level (path[1] is
 * the page table; levels out->level and above are filled), and no message
 * on ctx when it fails (out->kind says why). */
#define DL_MAX_LEVELS 5
dl_status dl_vmem_translate_path(dl_vmem *vm, dl_ctx *ctx, uint64_t va, dl_xlat *out, uint64_t path[DL_MAX_LEVELS + 1]);
/* Levels of the mode (2 to 5), and log2 of the VA span of one entry at a level. */
int dl_vmem_levels(const dl_vmem *vm);
int dl_vmem_entry_shift(const dl_vmem *vm, int level);

/* After translating va gave x: the next VA that may translate.  An upper-
 * level entry that failed rules out the whole range it would map; 0 when
 * that range reaches the top of the address space. */
uint64_t dl_vmem_next_candidate(const dl_vmem *vm, uint64_t va, const dl_xlat *x);

/* Pointer-width helpers for the kernel stage. */
dl_status dl_vmem_read_u32(dl_vmem *vm, dl_ctx *ctx, uint64_t va, uint32_t *out);
dl_status dl_vmem_read_u64(dl_vmem *vm, dl_ctx *ctx, uint64_t va, uint64_t *out);
dl_status dl_vmem_read_ptr(dl_vmem *vm, dl_ctx *ctx, int bits, uint64_t va, uint64_t *out);

#endif
