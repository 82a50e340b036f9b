/* The kernel of a hypervisor capture (vm-captures.md §7): CR3 from the
 * vCPU state, the fwcfg header, the x64 low stub or a self-map scan, each
 * validated by translating kernel addresses; then nt's base. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "capture.h"
#include "ctx.h"
#include "kernel.h"
#include "pe.h"

/* KUSER_SHARED_DATA: mapped in every Windows kernel address space. */
#define KUSER_X64 0xFFFFF78000000000ull
#define KUSER_X86 0xFFDF0000ull

/* ---- CR3 ---- */

/* Kernel addresses a right CR3 must translate: plain probes, and image
 * bases that must show an MZ header. */
typedef struct probe_set {
    uint64_t va[16];
    int image[16];
    int n;
} probe_set;

static void add_probe(probe_set *p, uint64_t va, int image)
{
    if (va && p->n < 16) {
        p->va[p->n] = va;
        p->image[p->n++] = image;
    }
}

static int cr3_works(dl_dump *d, dl_paging mode, uint64_t cr3, const probe_set *p)
{
    dl_vmem vm;
    dl_vmem_init(&vm, &d->pm, mode, cr3);
    int ok = 0;
    for (int i = 0; i < p->n && !ok; i++) {
        uint8_t mz[2];
        dl_xlat x;
        if (dl_vmem_translate(&vm, d->ctx, p->va[i], &x) != DL_OK || x.kind != DL_XLAT_VALID ||
            !dl_physmem_has(&d->pm, x.pa >> 12))
            continue;
        ok = !p->image[i] || (dl_physmem_read(&d->pm, d->ctx, x.pa, mz, 2) == DL_OK && mz[0] == 'M' && mz[1] == 'Z');
    }
    dl_vmem_free(&vm);
    dl_ctx_clear_error(d->ctx);
    return ok;
}

static int set_cr3(dl_dump *d, const dl_paging *modes, int nmodes, uint64_t cr3, const probe_set *p)
{
    for (int m = 0; m < nmodes; m++)
        if (cr3_works(d, modes[m], cr3, p)) {
            dl_vmem_init(&d->vm, &d->pm, modes[m], cr3);
            d->info.directory_table_base = cr3;
            return 1;
        }
    return 0;
}

static int vcpu_in_kernel(const dl_vcpu *c)
{
    return (c->cs & 3) == 0 || (c->gs_base >> 63);
}

/* A top table with present entries for kernel space, pointing into RAM:
 * enough for a CR3 a vCPU in kernel mode was using. */
static int set_cr3_by_shape(dl_dump *d, const dl_paging *modes, int nmodes, uint64_t cr3)
{
    for (int m = 0; m < nmodes; m++) {
        dl_vmem vm;
        dl_vmem_init(&vm, &d->pm, modes[m], cr3);
        int esize = modes[m] == DL_PAGING_X86 ? 4 : 8;
        int first = modes[m] == DL_PAGING_X86 ? 512 : modes[m] == DL_PAGING_PAE ? 2 : 256;
        int last = modes[m] == DL_PAGING_X86 ? 1024 : modes[m] == DL_PAGING_PAE ? 4 : 512;
        int kernel = 0;
        for (int i = first; i < last; i++) {
            uint8_t b[8];
            if (dl_physmem_read(&d->pm, d->ctx, vm.root + (uint64_t)i * (uint64_t)esize, b, (size_t)esize) != DL_OK)
                break;
            uint64_t e = esize == 8 ? dl_le64(b) : dl_le32(b);
            uint64_t next = esize == 8 ? e & 0x000FFFFFFFFFF000ull : e & 0xFFFFF000ull;
            kernel += (e & 1) && dl_physmem_has(&d->pm, next >> 12);
        }
        dl_ctx_clear_error(d->ctx);
        if (kernel) {
            d->vm = vm;
            d->info.directory_table_base = cr3;
            return 1;
        }
    }
    return 0;
}

/* vCPUs often share a CR3 (the idle process, one process): each distinct
 * value is tried once by the loop over vCPUs in the same mode. */
static int cr3_tried_before(const dl_capture_notes *n, int i)
{
    for (int j = 0; j < i; j++)
        if (n->cpu[j].has_cr3 && n->cpu[j].cr3 == n->cpu[i].cr3 && n->cpu[j].modes == n->cpu[i].modes &&
            vcpu_in_kernel(&n->cpu[j]) == vcpu_in_kernel(&n->cpu[i]))
            return 1;
    return 0;
}

/* A vCPU's CR3, in the modes its registers allow (all when they do not
 * say), validated by the probes, or by shape alone when p is NULL. */
static int set_cr3_vcpu(dl_dump *d, const dl_paging *modes, int nmodes, const dl_vcpu *c, const probe_set *p)
{
    if (!c->has_cr3)
        return 0;
    dl_paging own[3];
    int n = 0;
    for (int i = 0; i < nmodes; i++) {
        if (modes[i] == DL_PAGING_X64_4 && (c->modes & (1u << DL_PAGING_X64_5)))
            own[n++] = DL_PAGING_X64_5; /* CR4.LA57 */
        else if (!c->modes || (c->modes >> modes[i]) & 1)
            own[n++] = modes[i];
    }
    if (!(p ? set_cr3(d, own, n, c->cr3, p) : set_cr3_by_shape(d, own, n, c->cr3)))
        return 0;
    d->cr3_from = c->from;
    d->cr3_vcpu = 1;
    return 1;
}

/* x64 low stub (PROCESSOR_START_BLOCK) in the first MiB (§7.1 item 3). */
static int low_stub(dl_dump *d, uint64_t *cr3, uint64_t *lm_target)
{
    for (uint64_t pa = 0x1000; pa < 0x100000; pa += 0x1000) {
        uint8_t b[0xB0];
        if (!dl_physmem_has(&d->pm, pa >> 12) || dl_physmem_read(&d->pm, d->ctx, pa, b, sizeof b) != DL_OK)
            continue;
        uint64_t t = dl_le64(b + 0x70), c = dl_le64(b + 0xA0);
        if ((dl_le64(b) & 0xFFFFFFFFFFFF00FFull) == 0x00000001000600E9ull &&
            (t & 0xFFFFF80000000003ull) == 0xFFFFF80000000000ull && c && !(c & 0xFFFFFF0000000FFFull)) {
            *cr3 = c;
            *lm_target = t;
            return 1;
        }
    }
    dl_ctx_clear_error(d->ctx);
    return 0;
}

/* Plain 'KDBG' blocks in a page: their KernBase values are nt candidates
 * (§7.2), checked through a CR3 later (MZ at the base). */
static void kernbases_in_page(dl_dump *d, uint64_t pfn, uint8_t page[4096 + 0x20], probe_set *p)
{
    int tail = 0; /* the next page's head, read only when a tag sits at the end */
    for (size_t off = 0x10; off + 4 <= 4096 && p->n < 16; off += 8) {
        if (dl_le32(page + off) != 0x4742444Bu)
            continue;
        if (off + 0x10 > 4096 && !tail) {
            memset(page + 4096, 0, 0x20);
            dl_physmem_read(&d->pm, d->ctx, (pfn + 1) << 12, page + 4096, 0x20);
            tail = 1;
        }
        uint32_t size = dl_le32(page + off + 4);
        if (size < 0x200 || size > 0x1000 || size % 8)
            continue;
        /* The width is not known yet: try KernBase as both. */
        uint64_t k64 = dl_le64(page + off + 8), k32 = dl_le32(page + off + 8);
        if (k64 >= 0xFFFF800000000000ull && !(k64 & 0xFFF))
            add_probe(p, k64, 1);
        /* 32-bit kernels store it zero- or sign-extended: the low half. */
        if (k32 >= 0x80000000ull && !(k32 & 0xFFF) && ((k64 >> 32) == 0 || (k64 >> 32) == 0xFFFFFFFFull))
            add_probe(p, k32, 1);
    }
}

/* Does the page at pa look like a top table that maps itself (§7.1 item
 * 4)?  x64: a PML4 entry in 0x100-0x1FF pointing at its own page; PAE: a
 * PDPT whose 4 entries point at the next 4 pages; non-PAE: PD[0x300]. */
static int self_mapped(const uint8_t *page, uint64_t pa, dl_paging mode)
{
    if (mode == DL_PAGING_X64_4) {
        for (uint64_t i = 0x100; i < 0x200; i++)
            if ((dl_le64(page + i * 8) & 0x0000FFFFFFFFF083ull) == (pa | 3))
                return 1;
        return 0;
    }
    if (mode == DL_PAGING_PAE) {
        /* PDPTEs have reserved bits (1, 2, 5-8, 63) that a page directory's
         * entries set: they must be clear here. */
        for (uint64_t i = 0; i < 4; i++)
            if ((dl_le64(page + i * 8) & 0x800FFFFFFFFFF1E7ull) != ((pa + 0x1000 * (i + 1)) | 1))
                return 0;
        return 1;
    }
    return mode == DL_PAGING_X86 && (dl_le32(page + 0x300 * 4) & 0xFFFFF003u) == (pa | 3);
}

/* A top table without a self-map whose entry for an image probe is
 * present: worth a full walk. */
static int maps_image_probe(const uint8_t *page, uint64_t pa, dl_paging mode, const probe_set *p)
{
    for (int k = 0; k < p->n; k++) {
        uint64_t va = p->va[k];
        if (!p->image[k])
            continue;
        if ((mode == DL_PAGING_X64_4 && (dl_le64(page + ((va >> 39) & 511) * 8) & 1)) ||
            (mode == DL_PAGING_PAE && (dl_le64(page + ((va >> 30) & 3) * 8) & 1) && !(pa & 0x1F)) ||
            (mode == DL_PAGING_X86 && (dl_le32(page + ((va >> 22) & 1023) * 4) & 1)))
            return 1;
    }
    return 0;
}

typedef struct self_maps {
    uint64_t pa[32];
    dl_paging mode[32];
    int n;
} self_maps;

#define RAM_PASS_KDBG 1  /* collect KernBase probes from plain KDBG blocks */
#define RAM_PASS_IMAGE 2 /* also walk tables that map an image probe */

/* One pass over RAM: self-mapped top tables, each validated by the probes
 * as it is met (real kernels map KUSER_SHARED_DATA, so the pass usually
 * ends early); those the probes cannot confirm yet go to unproven.  Any
 * page-table page can point at itself, hence the probes.  Mapped pages are
 * released as the pass goes, so memory use does not grow with RAM. */
static int ram_pass(dl_dump *d, const dl_paging *modes, int nmodes, probe_set *probes, int what, uint64_t *found,
                    self_maps *unproven)
{
    uint8_t page[4096 + 0x20];
    uint64_t seen = 0;
    /* Only what was known before the pass confirms a table during it: a
     * vCPU's CR3 that the KDBG bases found here confirm comes first. */
    const probe_set early = *probes;
    for (size_t e = 0; e < d->pm.n; e++) {
        for (uint64_t pfn = d->pm.ext[e].pfn; pfn < d->pm.ext[e].pfn + d->pm.ext[e].pages; pfn++) {
            uint64_t pa = pfn << 12;
            if (++seen % 4096 == 0)
                dl_source_release(d->pm.src);
            if (dl_physmem_read(&d->pm, d->ctx, pa, page, 4096) != DL_OK)
                continue;
            if (what & RAM_PASS_KDBG)
                kernbases_in_page(d, pfn, page, probes);
            for (int m = 0; m < nmodes; m++) {
                int self = self_mapped(page, pa, modes[m]);
                if (!self && !((what & RAM_PASS_IMAGE) && maps_image_probe(page, pa, modes[m], &early)))
                    continue;
                if (cr3_works(d, modes[m], pa, &early)) {
                    dl_vmem_init(&d->vm, &d->pm, modes[m], pa);
                    *found = pa;
                    dl_source_release(d->pm.src);
                    return 1;
                }
                if (self && unproven->n < 32) {
                    unproven->pa[unproven->n] = pa;
                    unproven->mode[unproven->n++] = modes[m];
                }
            }
        }
    }
    dl_source_release(d->pm.src);
    dl_ctx_clear_error(d->ctx);
    return 0;
}

/* ---- the kernel ---- */

/* Does the translator just set up map nt's header?  Sets the hint. */
static int maps_nt(dl_dump *d, dl_nt_search *search)
{
    d->info.bits = d->vm.mode == DL_PAGING_X64_4 || d->vm.mode == DL_PAGING_X64_5 ? 64 : 32;
    return (d->nt_base_hint = dl_capture_nt_scan(d, search)) != 0;
}

/* Build number from NtBuildLab ("19041.1.amd64fre..."). */
static uint32_t build_from_lab(const char *lab)
{
    uint32_t b = 0;
    for (; lab && *lab >= '0' && *lab <= '9' && b < 100000; lab++)
        b = b * 10 + (uint32_t)(*lab - '0');
    return b;
}

static void kernel_facts(dl_dump *d, const dl_capture_notes *notes)
{
    dl_info *in = &d->info;
    uint64_t v;
    if (dl_kdbg_member(d, KDBG_PSLOADEDMODULELIST, &v))
        in->ps_loaded_module_list = v;
    if (dl_kdbg_member(d, 0x50, &v))
        in->ps_active_process_head = v;
    if (!in->minor_version)
        in->minor_version = build_from_lab(in->build_lab);
    /* "…amd64fre…" / "…x86chk…": the lab string tells free from checked. */
    if (!in->major_version && in->build_lab)
        in->major_version = strstr(in->build_lab, "chk") ? 0xC : strstr(in->build_lab, "fre") ? 0xF : 0;
    if (!in->processors && notes->ncpu)
        in->processors = (uint32_t)notes->ncpu;
    uint64_t blocks;
    if (!in->processors && dl_kdbg_member(d, 0x218, &blocks)) {
        /* KiProcessorBlock: one KPRCB pointer per processor, then NULLs. */
        uint32_t n = 0;
        uint64_t p;
        while (n < 2048 &&
               dl_vmem_read_ptr(&d->vm, d->ctx, in->bits, blocks + (uint64_t)n * (uint64_t)(in->bits / 8), &p) ==
                   DL_OK &&
               dl_kernel_va(d, p))
            n++;
        in->processors = n;
    }
    if (!in->processors) {
        in->processors = 1;
        dl_warn(d->ctx, "processors", "processor count not found in the capture; assuming 1");
    }
    dl_ctx_clear_error(d->ctx);
}

/* A fwcfg-published Windows header: the facts a dump header would give. */
static void header_facts(dl_dump *d, const dl_capture_notes *n)
{
    const uint8_t *h = n->windows_header;
    int is64 = !memcmp(h, "PAGEDU64", 8);
    dl_info *in = &d->info;
    in->major_version = dl_le32(h + 8);
    in->minor_version = dl_le32(h + 12);
    in->directory_table_base = dl_leptr(h + 0x10, is64 ? 64 : 32);
    in->ps_loaded_module_list = dl_leptr(h + (is64 ? 0x20 : 0x18), is64 ? 64 : 32);
    in->processors = dl_le32(h + (is64 ? 0x34 : 0x24));
    in->kdbg_address = dl_leptr(h + (is64 ? 0x80 : 0x60), is64 ? 64 : 32);
}

dl_status dl_capture_find_kernel(dl_dump *d, dl_capture_notes *notes, unsigned allowed)
{
    dl_ctx *ctx = d->ctx;
    dl_info *in = &d->info;
    /* The order of trial: x64, PAE, non-PAE. */
    static const dl_paging order[3] = {DL_PAGING_X64_4, DL_PAGING_PAE, DL_PAGING_X86};
    dl_paging modes[3];
    int nmodes = 0;
    for (int i = 0; i < 3; i++)
        if (allowed & (1u << order[i]))
            modes[nmodes++] = order[i];
    dl_nt_search search;
    dl_nt_search_init(&search);
    probe_set probes = {{0}, {0}, 0};
    add_probe(&probes, KUSER_X64, 0);
    add_probe(&probes, KUSER_X86, 0);
    for (int i = 0; i < notes->ncpu; i++)
        add_probe(&probes, notes->cpu[i].idt_base, 0);
    int found = 0;
    self_maps unproven = {.n = 0};
    if (notes->windows_header_len) {
        header_facts(d, notes);
        add_probe(&probes, in->kdbg_address, 0);
    }
    uint64_t lm_target = 0, cr3_stub = 0, cr3 = 0;
    int have_stub = (allowed & (1u << DL_PAGING_X64_4)) && low_stub(d, &cr3_stub, &lm_target);
    add_probe(&probes, lm_target, 0);
    /* Round 0: the vCPUs, the header, the stub.  Then one pass over RAM
     * for self-mapped top tables, which also collects nt bases from plain
     * KDBG blocks (a guest need not map what round 0 tried); round 1 tries
     * everything again with them. */
    for (int round = 0; round < 2 && !found; round++) {
        if (round == 1) {
            int known = probes.n;
            if (ram_pass(d, modes, nmodes, &probes, RAM_PASS_KDBG, &cr3, &unproven)) {
                found = 1;
                in->directory_table_base = cr3;
                d->cr3_from = "self-map-scan";
                break;
            }
            if (probes.n == known)
                break;
        }
        /* The order: a vCPU in kernel mode (CS RPL 0 or GS base in
         * kernel space), the fwcfg header, then vCPUs caught in user mode,
         * the low stub. */
        for (int i = 0; i < notes->ncpu && !found; i++)
            if (vcpu_in_kernel(&notes->cpu[i]) && !cr3_tried_before(notes, i))
                found = set_cr3_vcpu(d, modes, nmodes, &notes->cpu[i], &probes);
        if (!found && notes->windows_header_len &&
            (found = set_cr3(d, modes, nmodes, in->directory_table_base, &probes)))
            d->cr3_from = "vmcoreinfo";
        /* A user-mode vCPU's CR3 (KVA shadow) may map KUSER_SHARED_DATA and
         * little else: it must also map nt's header. */
        for (int i = 0; i < notes->ncpu && !found; i++)
            if (!vcpu_in_kernel(&notes->cpu[i]) && !cr3_tried_before(notes, i) &&
                set_cr3_vcpu(d, modes, nmodes, &notes->cpu[i], &probes) && !(found = maps_nt(d, &search)))
                d->cr3_vcpu = 0;
        if (!found && have_stub && (found = set_cr3(d, modes, nmodes, cr3_stub, &probes)))
            d->cr3_from = "low-stub";
    }
    /* Self-maps met before the probes that confirm them; then tables without
     * a self-map that map an image probe (a second pass, rarely needed). */
    for (int i = 0; i < unproven.n && !found; i++)
        if ((found = cr3_works(d, unproven.mode[i], unproven.pa[i], &probes))) {
            dl_vmem_init(&d->vm, &d->pm, unproven.mode[i], unproven.pa[i]);
            in->directory_table_base = unproven.pa[i];
            d->cr3_from = "self-map-scan";
        }
    int image_probes = 0;
    for (int i = 0; i < probes.n; i++)
        image_probes += probes.image[i];
    if (!found && image_probes && ram_pass(d, modes, nmodes, &probes, RAM_PASS_IMAGE, &cr3, &(self_maps){.n = 32})) {
        found = 1;
        in->directory_table_base = cr3;
        d->cr3_from = "self-map-scan";
    }
    /* Nothing the probes know is mapped (no KUSER_SHARED_DATA, no plain
     * KDBG, an encoded one): a kernel-mode vCPU's CR3, then a self-map, that
     * maps nt's header will do. */
    for (int i = 0; i < notes->ncpu && !found; i++)
        if (vcpu_in_kernel(&notes->cpu[i]) && !cr3_tried_before(notes, i) &&
            set_cr3_vcpu(d, modes, nmodes, &notes->cpu[i], NULL))
            d->cr3_vcpu = found = maps_nt(d, &search);
    for (int i = 0; i < unproven.n && !found; i++) {
        dl_vmem_init(&d->vm, &d->pm, unproven.mode[i], unproven.pa[i]);
        if (maps_nt(d, &search)) {
            found = 1;
            in->directory_table_base = unproven.pa[i];
            d->cr3_from = "self-map-scan";
        }
    }
    /* Nothing to check against at all: a vCPU that was running kernel code
     * still holds a kernel CR3. */
    for (int i = 0; i < notes->ncpu && !found; i++)
        if (vcpu_in_kernel(&notes->cpu[i]) && (found = set_cr3_vcpu(d, modes, nmodes, &notes->cpu[i], NULL)))
            d->weak_kernel = 1;
    if (!found)
        return dl_fail(ctx, DL_ECORRUPT,
                       "no Windows kernel found in this %s image: no CR3 candidate translates "
                       "kernel addresses",
                       in->input);
    in->arch = d->vm.mode == DL_PAGING_X86 ? DL_ARCH_X86 : d->vm.mode == DL_PAGING_PAE ? DL_ARCH_X86_PAE : DL_ARCH_X64;
    in->bits = in->arch == DL_ARCH_X64 ? 64 : 32;
    in->pae_enabled = in->arch == DL_ARCH_X86_PAE;

    /* nt: from the IDT of a kernel-mode vCPU, the low stub, or a plain KDBG. */
    for (int i = 0; i < notes->ncpu && !d->nt_base_hint; i++) {
        uint8_t gate[16];
        uint64_t idt = notes->cpu[i].idt_base;
        if (!idt || dl_vmem_read(&d->vm, ctx, idt, gate, in->bits == 64 ? 16 : 8) != DL_OK)
            continue;
        uint64_t handler = (uint64_t)dl_le16(gate) | ((uint64_t)dl_le16(gate + 6) << 16);
        if (in->bits == 64)
            handler |= (uint64_t)dl_le32(gate + 8) << 32;
        if (dl_kernel_va(d, handler))
            d->nt_base_hint = dl_capture_image_below(d, handler, &search);
    }
    if (!d->nt_base_hint && lm_target)
        d->nt_base_hint = dl_capture_image_below(d, lm_target, &search);
    for (int i = 0; i < probes.n && !d->nt_base_hint; i++) {
        uint8_t mz[2];
        if (probes.image[i] && dl_vmem_read(&d->vm, ctx, probes.va[i], mz, 2) == DL_OK && mz[0] == 'M' && mz[1] == 'Z')
            d->nt_base_hint = probes.va[i];
    }
    if (!d->nt_base_hint)
        d->nt_base_hint = dl_capture_nt_scan(d, &search);
    if (!in->processors && notes->ncpu)
        in->processors = (uint32_t)notes->ncpu;
    dl_ctx_clear_error(ctx);
    return DL_OK;
}

void dl_capture_finish(dl_dump *d)
{
    static const dl_capture_notes none;
    kernel_facts(d, &none);
}
