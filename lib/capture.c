/* Hypervisor captures: detection and physical memory (vm-captures.md §8);
 * the kernel is found in capture_kernel.c.  The analyses above run
 * unchanged: they see a physical map and a translator, as for a MEMORY.DMP. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "capture.h"
#include "ctx.h"
#include "kernel.h"

static int has_suffix(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n >= e && dl_ascii_caseeq(path + n - e, ext);
}

dl_capture_kind dl_capture_detect(dl_source *src, const char *path, const dl_open_options *opts)
{
    int vmem = path && has_suffix(path, ".vmem");
    /* --input raw wins over any signature (cli-contract). */
    if (opts->raw_input)
        return vmem ? DL_CAP_VMEM : DL_CAP_RAW;
    uint8_t m[16] = {0};
    size_t n = src->size < sizeof m ? (size_t)src->size : sizeof m;
    const uint8_t *v = src->view ? src->view(src, 0, n) : NULL;
    if (v)
        memcpy(m, v, n);
    if (n >= 4 && !memcmp(m, "\177ELF", 4))
        return DL_CAP_ELF;
    if (n >= 8 && (!memcmp(m, "KDUMP   ", 8) || !memcmp(m, "DISKDUMP", 8)))
        return DL_CAP_KDUMP;
    if (n >= 12 && !memcmp(m, "makedumpfile", 12))
        return DL_CAP_FLAT;
    if (n >= 4 && !memcmp(m, "PAGE", 4))
        return DL_CAP_NONE;
    if (dl_vmss_probe(src))
        return DL_CAP_VMSS;
    /* Raw only by name (§8): content cannot tell raw memory from anything. */
    if (vmem)
        return DL_CAP_VMEM;
    if (path && (has_suffix(path, ".raw") || has_suffix(path, ".mem")))
        return DL_CAP_RAW;
    return DL_CAP_NONE;
}

/* ---- VMware: a .vmem and its state file, or a state file (§4.1) ---- */

/* path with its extension replaced by ext, in the case of the old one. */
static int companion(const char *path, const char *ext, char *out, size_t cap)
{
    const char *dot = strrchr(path, '.'), *sep = strrchr(path, '/'), *bsep = strrchr(path, '\\');
    if (!dot || (sep && dot < sep) || (bsep && dot < bsep) || (size_t)(dot - path) + strlen(ext) + 1 > cap)
        return 0;
    size_t n = (size_t)(dot - path);
    memcpy(out, path, n);
    int upper = dot[1] >= 'A' && dot[1] <= 'Z';
    for (size_t i = 0; ext[i]; i++)
        out[n + i] = upper && ext[i] >= 'a' && ext[i] <= 'z' ? (char)(ext[i] - 32) : ext[i];
    out[n + strlen(ext)] = 0;
    return 1;
}

static dl_status map_flat(dl_dump *d, uint64_t base, uint64_t bytes)
{
    return dl_physmem_add(&d->pm, d->ctx, 0, bytes >> 12, base);
}

/* The regions of v over a memory image of image_bytes at base; a region
 * table that fails the checks maps nothing and says why. */
static dl_status map_regions(dl_dump *d, const dl_vmss *v, uint64_t base, uint64_t image_bytes)
{
    dl_status st = dl_vmss_check_regions(d, v, image_bytes >> 12);
    for (size_t i = 0; st == DL_OK && i < v->nregion; i++)
        if (v->region[i].pages)
            st = dl_physmem_add(&d->pm, d->ctx, v->region[i].ppn, v->region[i].pages,
                                base + v->region[i].page * DL_PAGE_SIZE);
    return st;
}

/* A .vmem: regions and vCPUs from NAME.vmss or NAME.vmsn, else flat. */
static dl_status open_vmem(dl_dump *d, const char *path, dl_capture_notes *notes)
{
    static const char *ext[2] = {".vmss", ".vmsn"};
    char state_path[4096];
    for (int i = 0; i < 2; i++) {
        dl_source *state = NULL;
        if (!path || !companion(path, ext[i], state_path, sizeof state_path) ||
            dl_source_open_file(d->ctx, state_path, &state) != DL_OK)
            continue;
        dl_vmss v = {0};
        const char *why = NULL;
        int ncpu = notes->ncpu;
        if (dl_vmss_parse(d, state, &v, notes) != DL_OK)
            why = dl_ctx_error(d->ctx);
        else if (v.has_memory)
            why = "it holds the memory itself, so its regions do not describe the .vmem";
        else if (v.nregion && map_regions(d, &v, 0, d->src->size) != DL_OK)
            why = dl_ctx_error(d->ctx);
        if (!why) {
            size_t mapped = v.nregion;
            dl_vmss_free(&v);
            dl_source_close(state);
            return mapped ? DL_OK : map_flat(d, 0, d->src->size);
        }
        dl_warn(d->ctx, "vmem-flat", "%s: %s; the .vmem is read as flat memory, which is wrong above a region gap",
                state_path, why);
        notes->ncpu = ncpu; /* a state file that fails the checks gives no CR3 either (§8.1) */
        dl_ctx_clear_error(d->ctx);
        dl_vmss_free(&v);
        dl_source_close(state);
        return map_flat(d, 0, d->src->size);
    }
    dl_ctx_clear_error(d->ctx);
    dl_warn(d->ctx, "vmem-flat",
            "no VMware state file (.vmss/.vmsn) beside the .vmem: it is read as flat memory, which is wrong above a "
            "region gap");
    return map_flat(d, 0, d->src->size);
}

/* A state file: the RAM inline in its Memory block, or in NAME.vmem. */
static dl_status open_vmss(dl_dump *d, const char *path, dl_capture_notes *notes)
{
    dl_vmss v;
    dl_status st = dl_vmss_parse(d, d->src, &v, notes);
    if (st != DL_OK)
        return st;
    if (v.has_memory) {
        st = v.nregion ? map_regions(d, &v, v.memory_off, v.memory_len) : map_flat(d, v.memory_off, v.memory_len);
        dl_vmss_free(&v);
        return st;
    }
    char vmem_path[4096] = "NAME.vmem";
    dl_source *vmem = NULL;
    if (!path || !companion(path, ".vmem", vmem_path, sizeof vmem_path) ||
        dl_source_open_file(d->ctx, vmem_path, &vmem) != DL_OK) {
        dl_vmss_free(&v);
        return dl_fail(d->ctx, DL_ECORRUPT, "VMware state file without its memory: %s cannot be read", vmem_path);
    }
    /* The .vmem is the physical address space from here on. */
    d->phys_src = vmem;
    d->pm.src = vmem;
    if (v.nregion && map_regions(d, &v, 0, vmem->size) != DL_OK) {
        notes->ncpu = 0;
        dl_warn(d->ctx, "vmem-flat", "%s; %s is read as flat memory, which is wrong above a region gap",
                dl_ctx_error(d->ctx), vmem_path);
        dl_ctx_clear_error(d->ctx);
        st = map_flat(d, 0, vmem->size);
    } else if (!v.nregion) {
        st = map_flat(d, 0, vmem->size);
    }
    dl_vmss_free(&v);
    return st;
}

/* ---- ELF and kdump through libkdumpfile ---- */

#ifdef HAVE_LIBKDUMPFILE
static dl_status open_kdumpfile(dl_dump *d, dl_capture_kind kind, const dl_open_options *opts, dl_capture_notes *notes,
                                dl_elf_facts *elf)
{
    dl_info *in = &d->info;
    const char *path = d->src->path;
    char rebuilt[4096];
    int temporary = 0;
    dl_status st = DL_OK;
    if (in->wrapper || !path)
        return dl_fail(d->ctx, DL_EUNSUPPORTED, "a compressed-wrapped ELF/kdump capture: unpack it first");
    if (kind == DL_CAP_FLAT) {
        st = dl_flattened_rebuild(d, d->src, opts, rebuilt, sizeof rebuilt, &temporary);
        if (st == DL_OK && temporary)
            d->temp_file = strdup(rebuilt);
        path = rebuilt;
    }
    dl_source *phys = NULL;
    if (st == DL_OK)
        st = dl_kdump_phys_open(d, path, &phys);
    if (st != DL_OK)
        return st;
    if (kind == DL_CAP_ELF) {
        dl_capture_elf_notes(d, notes, elf);
    } else {
        dl_source *kf = NULL;
        if (dl_source_open_file(d->ctx, path, &kf) == DL_OK) {
            dl_capture_kdump_notes(d, kf, notes);
            dl_source_close(kf);
        }
        dl_ctx_clear_error(d->ctx);
    }
    /* The physical address space is what the analyses read from now. */
    d->phys_src = phys;
    d->pm.src = phys;
    return DL_OK;
}
#endif

/* Paging modes the container leaves possible. */
static unsigned allowed_modes(const dl_capture_notes *notes, const dl_elf_facts *elf)
{
    unsigned x64 = 1u << DL_PAGING_X64_4, x86 = 1u << DL_PAGING_PAE | 1u << DL_PAGING_X86;
    /* QEMU writes EM_X86_64 only when its first vCPU is in long mode (§2). */
    if (!notes->vbox_named && elf->machine == 62)
        return x64;
    /* Else the registers tell.  EM_386 says only that the first vCPU was not
     * in long mode: a 32-bit guest, or an x64 one caught in SMM or at reset;
     * VirtualBox's e_machine is its host build's (§2.1). */
    unsigned m = 0;
    for (int i = 0; i < notes->ncpu; i++)
        m |= notes->cpu[i].modes;
    if (m & (1u << DL_PAGING_X64_5))
        m |= x64;
    return m & (x64 | x86) ? m & (x64 | x86) : x64 | x86;
}

dl_status dl_capture_open(dl_dump *d, dl_capture_kind kind, const dl_open_options *opts)
{
    dl_ctx *ctx = d->ctx;
    dl_info *in = &d->info;
    dl_capture_notes *notes = calloc(1, sizeof *notes);
    dl_elf_facts *elf = calloc(1, sizeof *elf);
    if (!notes || !elf) {
        free(notes);
        free(elf);
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    }
    static const char *input[] = {[DL_CAP_ELF] = "elf", [DL_CAP_KDUMP] = "kdump", [DL_CAP_FLAT] = "kdump-flattened",
                                  [DL_CAP_RAW] = "raw", [DL_CAP_VMEM] = "vmem",   [DL_CAP_VMSS] = "vmem"};
    in->input = input[kind];
    const char *path = d->src->path;
    dl_status st = DL_OK;
    dl_physmem_init(&d->pm, d->src);
    if (kind == DL_CAP_RAW) {
        st = map_flat(d, 0, d->src->size);
    } else if (kind == DL_CAP_VMEM) {
        st = open_vmem(d, path, notes);
    } else if (kind == DL_CAP_VMSS) {
        st = open_vmss(d, path, notes);
    } else {
#ifdef HAVE_LIBKDUMPFILE
        st = open_kdumpfile(d, kind, opts, notes, elf);
#else
        (void)opts;
        if (kind == DL_CAP_ELF)
            dl_capture_elf_notes(d, notes, elf);
        st = dl_fail(ctx, DL_EUNSUPPORTED, "%s: this build has no libkdumpfile",
                     kind != DL_CAP_ELF  ? "kdump-compressed capture"
                     : notes->vbox_named ? "ELF core (VirtualBox)"
                                         : "ELF core");
#endif
    }
    if (st == DL_OK)
        st = dl_physmem_finish(&d->pm, ctx);
    if (st == DL_OK) {
        uint64_t truncated = 0;
        for (int i = 0; i < elf->ngap; i++) {
            uint64_t cut = dl_physmem_cut(&d->pm, elf->gap[i].pfn, elf->gap[i].pages);
            truncated += elf->gap[i].truncated ? cut : 0;
        }
        d->pm.pages_past_eof += truncated;
        if (truncated)
            dl_warn(ctx, "truncated", "the capture is truncated: %llu pages of RAM are past the end of the file",
                    (unsigned long long)truncated);
        in->has_physical_map = 1;
        in->pages_present = d->pm.pages_present;
        in->has_bugcheck = 0; /* a running guest */
        dl_capture_notes_check(d, notes);
        st = dl_capture_find_kernel(d, notes, allowed_modes(notes, elf));
    }
    free(notes);
    free(elf);
    return st;
}
