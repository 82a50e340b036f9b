/* nt image, PE section tables and memory windows.  PE/COFF offsets from the
 * Microsoft PE format specification. */
#include "kernel.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"

int dl_nt_base(dl_dump *d, uint64_t *base)
{
    if (dl_kdbg_member(d, KDBG_KERNBASE, base) && dl_kernel_va(d, *base))
        return 1;
    if (d->nt_base_hint) {
        *base = d->nt_base_hint;
        return 1;
    }
    /* No KDBG yet: the first entry of the header's module list is nt. */
    int bits = d->info.bits;
    uint64_t first;
    uint32_t dll_base = bits == 64 ? 0x30 : 0x18;
    if (dl_vmem_read_ptr(&d->vm, d->ctx, bits, d->info.ps_loaded_module_list, &first) != DL_OK ||
        !dl_kernel_va(d, first) || dl_vmem_read_ptr(&d->vm, d->ctx, bits, first + dll_base, base) != DL_OK)
        return 0;
    return dl_kernel_va(d, *base) && !(*base & 0xFFF);
}

/* No structure dumpleak reads whole is larger (a 2^20-entry tracker or
 * big-page table is 32-80 MiB): a bigger request comes from corrupt data. */
#define MAX_WINDOW (256u << 20)

dl_status dl_window_read(dl_dump *d, uint64_t va, size_t len, dl_window *w)
{
    memset(w, 0, sizeof *w);
    if (len > MAX_WINDOW)
        return dl_fail(d->ctx, DL_PARTIAL, "a read of 0x%zx bytes at 0x%llx is larger than any kernel structure", len,
                       (unsigned long long)va);
    size_t pages = (size_t)(((va + len + DL_PAGE_SIZE - 1) >> DL_PAGE_SHIFT) - (va >> DL_PAGE_SHIFT));
    w->data = calloc(1, len ? len : 1);
    w->page_present = calloc(pages ? pages : 1, 1);
    if (!w->data || !w->page_present) {
        dl_window_free(w);
        return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
    }
    w->va = va;
    w->len = len;
    for (size_t done = 0; done < len;) {
        size_t in_page = DL_PAGE_SIZE - (size_t)((va + done) & (DL_PAGE_SIZE - 1));
        size_t n = len - done < in_page ? len - done : in_page;
        if (dl_vmem_read(&d->vm, d->ctx, va + done, w->data + done, n) == DL_OK) {
            w->page_present[((va + done) >> DL_PAGE_SHIFT) - (va >> DL_PAGE_SHIFT)] = 1;
            w->present_bytes += n;
        } else {
            memset(w->data + done, 0, n);
        }
        done += n;
    }
    dl_ctx_clear_error(d->ctx);
    return DL_OK;
}

void dl_window_free(dl_window *w)
{
    free(w->data);
    free(w->page_present);
    memset(w, 0, sizeof *w);
}

int dl_window_ptr(const dl_window *w, uint64_t va, int bits, uint64_t *out)
{
    size_t size = (size_t)bits / 8;
    if (va < w->va || va - w->va > w->len - size || w->len < size)
        return 0;
    size_t off = (size_t)(va - w->va);
    size_t first = (size_t)((va >> DL_PAGE_SHIFT) - (w->va >> DL_PAGE_SHIFT));
    size_t last = (size_t)(((va + size - 1) >> DL_PAGE_SHIFT) - (w->va >> DL_PAGE_SHIFT));
    if (!w->page_present[first] || !w->page_present[last])
        return 0;
    *out = dl_leptr(w->data + off, bits);
    return 1;
}

int dl_kdbg_deref(dl_dump *d, uint32_t off, int width, uint64_t *out)
{
    uint64_t addr;
    if (!dl_kdbg_member(d, off, &addr) || !dl_kernel_va(d, addr))
        return 0;
    if (width == 8) {
        if (dl_vmem_read_u64(&d->vm, d->ctx, addr, out) != DL_OK)
            return 0;
    } else {
        uint32_t v;
        if (dl_vmem_read_u32(&d->vm, d->ctx, addr, &v) != DL_OK)
            return 0;
        *out = v;
    }
    return 1;
}
