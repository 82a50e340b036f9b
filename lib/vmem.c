/* Page-table walker.  Formats: Intel SDM (hardware), dump-format.md §4
 * (Windows software PTEs: ntdiff _MMPTE_* types, wkpe mmtypes.h). */
#include "vmem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"

#define PTE_VALID 0x1ull
#define PTE_LARGE 0x80ull
#define PTE_PROTOTYPE 0x400ull
#define PTE_TRANSITION 0x800ull
#define X64_SWIZZLE_BIT 0x10ull
#define PA_MASK_52 0x000FFFFFFFFFF000ull

void dl_vmem_init(dl_vmem *vm, dl_physmem *pm, dl_paging mode, uint64_t cr3)
{
    memset(vm, 0, sizeof *vm);
    vm->pm = pm;
    vm->mode = mode;
    switch (mode) {
    case DL_PAGING_X86:
        vm->root = cr3 & 0xFFFFF000ull;
        break;
    case DL_PAGING_PAE:
        vm->root = cr3 & 0xFFFFFFE0ull;
        break;
    case DL_PAGING_X64_4:
    case DL_PAGING_X64_5:
        vm->root = cr3 & PA_MASK_52; /* drops PCID bits */
        break;
    default:
        vm->root = 0;
    }
}

void dl_vmem_free(dl_vmem *vm)
{
    free(vm->vranges);
    vm->vranges = NULL;
    vm->nvranges = 0;
}

dl_status dl_vmem_add_range(dl_vmem *vm, dl_ctx *ctx, uint64_t va, uint64_t len, uint64_t file_offset)
{
    dl_vrange *n = realloc(vm->vranges, (vm->nvranges + 1) * sizeof *n);
    if (!n)
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    vm->vranges = n;
    vm->vranges[vm->nvranges++] = (dl_vrange){va, len, file_offset};
    return DL_OK;
}

const char *dl_xlat_kind_name(dl_xlat_kind kind)
{
    static const char *const names[] = {"valid",       "transition",   "prototype",    "pagefile",   "demand-zero",
                                        "not-present", "table-absent", "noncanonical", "unsupported"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

/* Read one page-table entry; 0 when its page is not in the dump. */
static int read_entry(dl_vmem *vm, dl_ctx *ctx, uint64_t pa, int size, uint64_t *out)
{
    int present;
    uint64_t off = dl_physmem_offset(vm->pm, pa >> DL_PAGE_SHIFT, &present);
    if (!present)
        return 0;
    off += pa & (DL_PAGE_SIZE - 1);
    uint8_t b[8];
    const uint8_t *p = vm->pm->src->view ? vm->pm->src->view(vm->pm->src, off, (size_t)size) : NULL;
    if (!p) {
        if (dl_source_read(vm->pm->src, ctx, off, b, (size_t)size) != DL_OK)
            return 0;
        p = b;
    }
    *out = size == 8 ? dl_le64(p) : dl_le32(p);
    return 1;
}

/* Transition PFN of an invalid entry, with x64 swizzling undone. */
static uint64_t transition_pa(dl_vmem *vm, uint64_t e)
{
    if (vm->mode == DL_PAGING_X86)
        return e & 0xFFFFF000ull;
    if (vm->mode == DL_PAGING_PAE)
        return e & 0x3FFFFFFF000ull;         /* PFN bits 37:12 */
    uint64_t pa = e & 0x0000FFFFFFFFF000ull; /* PFN bits 47:12 */
    if (vm->swizzle_mask) {
        if (!(e & X64_SWIZZLE_BIT))
            pa &= ~vm->swizzle_mask;
        return pa;
    }
    /* Mask unknown: a PFN beyond the dump with one high bit set is swizzled. */
    if (!dl_physmem_has(vm->pm, pa >> DL_PAGE_SHIFT))
        for (int b = 47; b >= 44; b--)
            if (pa & (1ull << b)) {
                uint64_t cand = pa & ~(1ull << b);
                if (dl_physmem_has(vm->pm, cand >> DL_PAGE_SHIFT))
                    return cand;
                break;
            }
    return pa;
}

static uint64_t pagefile_high(dl_vmem *vm, uint64_t e)
{
    return vm->mode == DL_PAGING_X86 ? e >> 12 : e >> 32;
}

static int levels(dl_paging mode)
{
    switch (mode) {
    case DL_PAGING_X86:
        return 2;
    case DL_PAGING_PAE:
        return 3;
    case DL_PAGING_X64_4:
        return 4;
    case DL_PAGING_X64_5:
        return 5;
    default:
        return 0;
    }
}

/* Index and entry size of va at a level (1 = PTE). */
static void level_geometry(dl_paging mode, int level, int top, uint64_t va, uint64_t *idx, int *esize)
{
    if (mode == DL_PAGING_X86) {
        *esize = 4;
        *idx = (va >> (12 + 10 * (level - 1))) & 0x3FF;
    } else if (mode == DL_PAGING_PAE && level == top) {
        *esize = 8;
        *idx = (va >> 30) & 3;
    } else {
        *esize = 8;
        *idx = (va >> (12 + 9 * (level - 1))) & 0x1FF;
    }
}

static dl_status resolve_prototype(dl_vmem *vm, dl_ctx *ctx, uint64_t va, uint64_t e, int depth, dl_xlat *out);

/* A translation that fails: DL_PARTIAL, with a message unless the caller
 * scans (most of its translations fail; formatting each would dominate). */
static dl_status DL_PRINTF(3, 4) xlat_fail(const dl_vmem *vm, dl_ctx *ctx, const char *fmt, ...)
{
    if (vm->quiet)
        return DL_PARTIAL;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dl_fail(ctx, DL_PARTIAL, "%s", msg);
}

/* path (optional): the PA of the table read at each level. */
static dl_status walk(dl_vmem *vm, dl_ctx *ctx, uint64_t va, int depth, dl_xlat *out, uint64_t *path)
{
    memset(out, 0, sizeof *out);
    out->page_size = DL_PAGE_SIZE;
    int top = levels(vm->mode);
    if (!top) {
        out->kind = DL_XLAT_UNSUPPORTED;
        return xlat_fail(vm, ctx, "no page tables to translate VA 0x%llx", (unsigned long long)va);
    }
    if (vm->mode == DL_PAGING_X86 || vm->mode == DL_PAGING_PAE) {
        if (va >> 32) {
            out->kind = DL_XLAT_NONCANONICAL;
            return xlat_fail(vm, ctx, "VA 0x%llx is above 4 GiB on a 32-bit dump", (unsigned long long)va);
        }
    } else {
        int bits = vm->mode == DL_PAGING_X64_5 ? 57 : 48;
        uint64_t high = va >> (bits - 1);
        if (high != 0 && high != (~0ull >> (bits - 1))) {
            out->kind = DL_XLAT_NONCANONICAL;
            return xlat_fail(vm, ctx, "VA 0x%llx is not canonical", (unsigned long long)va);
        }
    }
    uint64_t table = vm->root;
    for (int level = top; level >= 1; level--) {
        uint64_t idx, e;
        int esize;
        level_geometry(vm->mode, level, top, va, &idx, &esize);
        out->level = level;
        if (path)
            path[level] = table;
        if (!read_entry(vm, ctx, table + idx * (uint64_t)esize, esize, &e)) {
            out->kind = DL_XLAT_TABLE_ABSENT;
            return xlat_fail(vm, ctx, "VA 0x%llx: level-%d page table at PA 0x%llx is not in the dump",
                             (unsigned long long)va, level, (unsigned long long)table);
        }
        out->entry = e;
        uint64_t next;
        if (e & PTE_VALID) {
            int pae_pdpte = vm->mode == DL_PAGING_PAE && level == top;
            if ((e & PTE_LARGE) && !pae_pdpte && (level == 2 || (level == 3 && top >= 4))) {
                uint64_t span = vm->mode == DL_PAGING_X86 ? (1ull << 22) : (level == 3 ? (1ull << 30) : (1ull << 21));
                uint64_t base;
                if (vm->mode == DL_PAGING_X86) /* PSE-36: PDE[20:13] are PA[39:32] */
                    base = (e & 0xFFC00000ull) | (((e >> 13) & 0xFF) << 32);
                else
                    base = e & PA_MASK_52 & ~(span - 1);
                out->kind = DL_XLAT_VALID;
                out->page_size = span;
                out->pa = base | (va & (span - 1));
                return DL_OK;
            }
            next = vm->mode == DL_PAGING_X86 ? (e & 0xFFFFF000ull) : (e & PA_MASK_52);
        } else if (e == 0) {
            out->kind = DL_XLAT_NOT_PRESENT;
            return xlat_fail(vm, ctx, "VA 0x%llx is not mapped (level-%d entry is zero)", (unsigned long long)va,
                             level);
        } else if (e & PTE_PROTOTYPE) {
            if (level != 1 || depth > 0) {
                out->kind = DL_XLAT_NOT_PRESENT;
                return xlat_fail(vm, ctx, "VA 0x%llx: prototype entry 0x%llx at level %d", (unsigned long long)va,
                                 (unsigned long long)e, level);
            }
            return resolve_prototype(vm, ctx, va, e, depth, out);
        } else if (e & PTE_TRANSITION) {
            next = transition_pa(vm, e);
            if (level == 1) {
                out->kind = DL_XLAT_TRANSITION;
                out->pa = next | (va & (DL_PAGE_SIZE - 1));
                return DL_OK;
            }
        } else {
            out->kind = pagefile_high(vm, e) ? DL_XLAT_PAGEFILE : DL_XLAT_DEMAND_ZERO;
            return xlat_fail(vm, ctx, "VA 0x%llx is %s (level-%d entry 0x%llx)", (unsigned long long)va,
                             out->kind == DL_XLAT_PAGEFILE ? "paged out" : "demand-zero", level, (unsigned long long)e);
        }
        if (level == 1) {
            out->kind = DL_XLAT_VALID;
            out->pa = next | (va & (DL_PAGE_SIZE - 1));
            return DL_OK;
        }
        table = next;
    }
    return xlat_fail(vm, ctx, "VA 0x%llx: walk did not end", (unsigned long long)va);
}

/* Prototype PTE (dump-format §4.4 step 3): the entry points at another PTE
 * in kernel VA space; decode that one (valid or transition only). */
static dl_status resolve_prototype(dl_vmem *vm, dl_ctx *ctx, uint64_t va, uint64_t e, int depth, dl_xlat *out)
{
    uint64_t proto_va;
    int esize = 8;
    if (vm->mode == DL_PAGING_X64_4 || vm->mode == DL_PAGING_X64_5) {
        if (((e >> 16) & 0xFFFFFFFFFFFFull) == 0xFFFFFFFF0000ull)
            goto vad;
        proto_va = (uint64_t)((int64_t)e >> 16);
    } else if (vm->mode == DL_PAGING_PAE) {
        if ((e >> 32) == 0xFFFFFFFFull)
            goto vad;
        proto_va = e >> 32;
    } else {
        /* Non-PAE prototype addresses are packed in an UNCERTAIN way
         * (dump-format §4.3): do not guess. */
        out->kind = DL_XLAT_NOT_PRESENT;
        return xlat_fail(vm, ctx, "VA 0x%llx: non-PAE prototype PTE not decoded", (unsigned long long)va);
    }
    dl_xlat px;
    dl_status st = walk(vm, ctx, proto_va, depth + 1, &px, NULL);
    if (st != DL_OK) {
        *out = px;
        return st;
    }
    uint64_t pe;
    if (!read_entry(vm, ctx, px.pa, esize, &pe)) {
        out->kind = DL_XLAT_TABLE_ABSENT;
        return xlat_fail(vm, ctx, "VA 0x%llx: prototype PTE at PA 0x%llx is not in the dump", (unsigned long long)va,
                         (unsigned long long)px.pa);
    }
    out->entry = pe;
    out->level = 1;
    if (pe & PTE_VALID) {
        out->kind = DL_XLAT_PROTOTYPE;
        out->pa = (pe & PA_MASK_52) | (va & (DL_PAGE_SIZE - 1));
        return DL_OK;
    }
    if (!(pe & PTE_PROTOTYPE) && (pe & PTE_TRANSITION)) {
        out->kind = DL_XLAT_PROTOTYPE;
        out->pa = transition_pa(vm, pe) | (va & (DL_PAGE_SIZE - 1));
        return DL_OK;
    }
    out->kind = (pe & PTE_PROTOTYPE)    ? DL_XLAT_NOT_PRESENT
                : pagefile_high(vm, pe) ? DL_XLAT_PAGEFILE
                                        : DL_XLAT_DEMAND_ZERO;
    return xlat_fail(vm, ctx, "VA 0x%llx: prototype PTE 0x%llx is not resident", (unsigned long long)va,
                     (unsigned long long)pe);
vad:
    out->kind = DL_XLAT_NOT_PRESENT;
    return xlat_fail(vm, ctx, "VA 0x%llx: prototype PTE refers to the VAD", (unsigned long long)va);
}

dl_status dl_vmem_translate(dl_vmem *vm, dl_ctx *ctx, uint64_t va, dl_xlat *out)
{
    return walk(vm, ctx, va, 0, out, NULL);
}

dl_status dl_vmem_translate_path(dl_vmem *vm, dl_ctx *ctx, uint64_t va, dl_xlat *out, uint64_t path[DL_MAX_LEVELS + 1])
{
    vm->quiet = 1;
    dl_status st = walk(vm, ctx, va, 0, out, path);
    vm->quiet = 0;
    return st;
}

int dl_vmem_levels(const dl_vmem *vm)
{
    return levels(vm->mode);
}

int dl_vmem_entry_shift(const dl_vmem *vm, int level)
{
    if (vm->mode == DL_PAGING_PAE && level == 3)
        return 30;
    return vm->mode == DL_PAGING_X86 ? 12 + 10 * (level - 1) : 12 + 9 * (level - 1);
}

static const dl_vrange *find_vrange(const dl_vmem *vm, uint64_t va, size_t len)
{
    for (size_t i = 0; i < vm->nvranges; i++) {
        const dl_vrange *r = &vm->vranges[i];
        if (va >= r->va && va - r->va < r->len && len <= r->len - (va - r->va))
            return r;
    }
    return NULL;
}

/* Translate through the small TLB; fills *pa_page on success. */
static dl_status page_of(dl_vmem *vm, dl_ctx *ctx, uint64_t va, uint64_t *pa_page)
{
    uint64_t vpn = va >> DL_PAGE_SHIFT;
    unsigned slot = (unsigned)(vpn % DL_TLB_SLOTS);
    if (vm->tlb[slot].used && vm->tlb[slot].vpn == vpn) {
        *pa_page = vm->tlb[slot].pa_page;
        return DL_OK;
    }
    dl_xlat x;
    dl_status st = walk(vm, ctx, va, 0, &x, NULL);
    if (st != DL_OK)
        return st;
    *pa_page = x.pa & ~(uint64_t)(DL_PAGE_SIZE - 1);
    vm->tlb[slot].vpn = vpn;
    vm->tlb[slot].pa_page = *pa_page;
    vm->tlb[slot].used = 1;
    return DL_OK;
}

dl_status dl_vmem_read(dl_vmem *vm, dl_ctx *ctx, uint64_t va, void *buf, size_t len)
{
    const dl_vrange *r = find_vrange(vm, va, len);
    if (r)
        return dl_source_read(vm->pm->src, ctx, r->file_offset + (va - r->va), buf, len);
    if (vm->mode == DL_PAGING_NONE)
        return dl_fail(ctx, DL_PARTIAL, "VA 0x%llx is not in this dump (no page tables)", (unsigned long long)va);
    uint8_t *out = buf;
    while (len) {
        size_t in_page = DL_PAGE_SIZE - (size_t)(va & (DL_PAGE_SIZE - 1));
        size_t n = len < in_page ? len : in_page;
        uint64_t pa_page;
        dl_status st = page_of(vm, ctx, va, &pa_page);
        if (st != DL_OK)
            return st;
        st = dl_physmem_read(vm->pm, ctx, pa_page | (va & (DL_PAGE_SIZE - 1)), out, n);
        if (st != DL_OK)
            return dl_fail(ctx, st, "VA 0x%llx maps to PA 0x%llx, which is not in the dump", (unsigned long long)va,
                           (unsigned long long)(pa_page | (va & (DL_PAGE_SIZE - 1))));
        out += n;
        va += n;
        len -= n;
    }
    return DL_OK;
}

dl_status dl_vmem_read_u32(dl_vmem *vm, dl_ctx *ctx, uint64_t va, uint32_t *out)
{
    uint8_t b[4];
    dl_status st = dl_vmem_read(vm, ctx, va, b, 4);
    if (st == DL_OK)
        *out = dl_le32(b);
    return st;
}

dl_status dl_vmem_read_u64(dl_vmem *vm, dl_ctx *ctx, uint64_t va, uint64_t *out)
{
    uint8_t b[8];
    dl_status st = dl_vmem_read(vm, ctx, va, b, 8);
    if (st == DL_OK)
        *out = dl_le64(b);
    return st;
}

dl_status dl_vmem_read_ptr(dl_vmem *vm, dl_ctx *ctx, int bits, uint64_t va, uint64_t *out)
{
    if (bits == 64)
        return dl_vmem_read_u64(vm, ctx, va, out);
    uint32_t v;
    dl_status st = dl_vmem_read_u32(vm, ctx, va, &v);
    if (st == DL_OK)
        *out = v;
    return st;
}

uint64_t dl_vmem_next_candidate(const dl_vmem *vm, uint64_t va, const dl_xlat *x)
{
    int readable = x->kind == DL_XLAT_VALID || x->kind == DL_XLAT_TRANSITION || x->kind == DL_XLAT_PROTOTYPE;
    int level = !readable && x->level >= 2 ? x->level : 1;
    /* An absent table rules out all it would map: the entry above it. */
    if (x->kind == DL_XLAT_TABLE_ABSENT && ++level > levels(vm->mode))
        return 0;
    int shift = dl_vmem_entry_shift(vm, level);
    if (x->kind == DL_XLAT_VALID && x->page_size > DL_PAGE_SIZE)
        shift = 12; /* inside a large page: every 4 KiB page is there */
    if (shift >= 64)
        return 0;
    return ((va >> shift) + 1) << shift;
}
