/* dl_open and the public accessors: the glue between the stages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "capture.h"
#include "ctx.h"
#include "dump.h"
#include "pool.h"

static dl_paging paging_for(const dl_info *in)
{
    switch (in->arch) {
    case DL_ARCH_X86:
        return DL_PAGING_X86;
    case DL_ARCH_X86_PAE:
        return DL_PAGING_PAE;
    case DL_ARCH_X64:
        return DL_PAGING_X64_4;
    default:
        return DL_PAGING_NONE;
    }
}

/* No header field flags LA57 (dump-format §4.2): when the KDBG does not
 * translate with 4 levels but does with 5, the kernel runs 5-level paging. */
static void detect_la57(dl_dump *d)
{
    dl_xlat x;
    if (d->vm.mode != DL_PAGING_X64_4 || dl_vmem_translate(&d->vm, d->ctx, d->info.kdbg_address, &x) == DL_OK)
        return;
    dl_vmem vm5;
    dl_vmem_init(&vm5, &d->pm, DL_PAGING_X64_5, d->info.directory_table_base);
    uint8_t tag[4];
    if (dl_vmem_read(&vm5, d->ctx, d->info.kdbg_address + 0x10, tag, 4) == DL_OK && !memcmp(tag, "KDBG", 4)) {
        d->vm.mode = DL_PAGING_X64_5;
        dl_warn(d->ctx, "la57", "kernel uses 5-level paging (detected: the KDBG translates only with 5 levels)");
    }
    dl_vmem_free(&vm5);
    dl_ctx_clear_error(d->ctx);
}

dl_status dl_open(dl_ctx *ctx, const char *path, const dl_open_options *opts, dl_dump **out)
{
    *out = NULL;
    dl_dump *d = calloc(1, sizeof *d);
    if (!d)
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    d->ctx = ctx;
    static const dl_open_options defaults;
    if (!opts)
        opts = &defaults;
    dl_source *file = NULL;
    dl_status st = dl_source_open_file(ctx, path, &file);
    if (st == DL_OK)
        st = dl_source_unwrap(ctx, file, opts, &d->src, &d->info.wrapper);
    d->progress = opts->progress;
    d->progress_arg = opts->progress_arg;
    dl_capture_kind cap = DL_CAP_NONE;
    if (st == DL_OK) {
        /* The translator exists before the body so triage dumps can lend VA ranges. */
        dl_vmem_init(&d->vm, &d->pm, DL_PAGING_NONE, 0);
        cap = dl_capture_detect(d->src, d->src->path ? d->src->path : path, opts);
        st = cap != DL_CAP_NONE ? dl_capture_open(d, cap, opts) : dl_container_parse(d);
    }
    if (st != DL_OK) {
        dl_close(d);
        return st;
    }
    if (cap == DL_CAP_NONE && d->info.has_physical_map) {
        dl_vrange *keep = d->vm.vranges;
        size_t nkeep = d->vm.nvranges;
        dl_vmem_init(&d->vm, &d->pm, paging_for(&d->info), d->info.directory_table_base);
        d->vm.vranges = keep;
        d->vm.nvranges = nkeep;
        if (d->vm.mode == DL_PAGING_NONE)
            dl_warn(ctx, "no-translation", "virtual address translation for this architecture is not supported yet");
        detect_la57(d);
    }
    if (cap == DL_CAP_NONE) {
        d->cr3_from = "header";
        d->info.has_dump_type = 1;
    }
    if (d->info.has_physical_map || d->triage)
        dl_kdbg_load(d);
    if (cap != DL_CAP_NONE) {
        /* Without a KDBG only a CR3 a kernel-mode vCPU was using still shows
         * there is a Windows kernel here (vm-captures §8: else exit 3). */
        if (!d->kdbg.valid && !d->weak_kernel && !d->cr3_vcpu) {
            dl_close(d);
            return dl_fail(ctx, DL_ECORRUPT, "no Windows kernel data (KDBG) found in this capture");
        }
        dl_capture_finish(d);
    }
    d->info.cr3_from = d->cr3_from;
    d->info.kdbg_valid = d->kdbg.valid;
    d->info.kdbg_from = d->kdbg.from;
    d->info.kdbg_encoded = d->kdbg.encoded;
    dl_ctx_clear_error(ctx);
    *out = d;
    return DL_OK;
}

void dl_close(dl_dump *d)
{
    if (!d)
        return;
    dl_pool_results_free(d);
    dl_modules_free(d->modules);
    free(d->kdbg.data);
    dl_triage_free(d->triage);
    dl_vmem_free(&d->vm);
    dl_physmem_free(&d->pm);
    if (d->phys_src)
        dl_source_close(d->phys_src);
    dl_source_close(d->src);
    if (d->temp_file)
        remove(d->temp_file);
    free(d->temp_file);
    free(d);
}

const dl_info *dl_get_info(dl_dump *d)
{
    return &d->info;
}

dl_status dl_read_phys(dl_dump *d, uint64_t pa, void *buf, size_t len)
{
    return dl_physmem_read(&d->pm, d->ctx, pa, buf, len);
}

dl_status dl_read_virt(dl_dump *d, uint64_t va, void *buf, size_t len)
{
    return dl_vmem_read(&d->vm, d->ctx, va, buf, len);
}

dl_status dl_translate(dl_dump *d, uint64_t va, dl_xlat *out)
{
    return dl_vmem_translate(&d->vm, d->ctx, va, out);
}

size_t dl_extent_count(dl_dump *d)
{
    return d->pm.n;
}

dl_status dl_extent_get(dl_dump *d, size_t i, dl_extent *out)
{
    if (i >= d->pm.n)
        return dl_fail(d->ctx, DL_EUSAGE, "extent %zu out of range", i);
    *out = d->pm.ext[i];
    return DL_OK;
}
