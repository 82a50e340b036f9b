/* Physical memory of ELF and kdump-compressed captures through
 * libkdumpfile (vm-captures.md §5): a byte source whose offsets are machine
 * physical addresses, and the RAM extents from its memory.pagemap. */
#ifdef HAVE_LIBKDUMPFILE
#include <fcntl.h>
#include <libkdumpfile/kdumpfile.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "ctx.h"

typedef struct kdump_source {
    dl_source base;
    kdump_ctx_t *k;
    int fd;
} kdump_source;

static dl_status kd_read(dl_source *src, dl_ctx *ctx, uint64_t off, void *buf, size_t len)
{
    kdump_source *s = (kdump_source *)src;
    size_t got = len;
    kdump_status st = kdump_read(s->k, KDUMP_MACHPHYSADDR, off, buf, &got);
    if (st != KDUMP_OK || got != len)
        return dl_fail(ctx, DL_PARTIAL, "physical address 0x%llx: %s", (unsigned long long)off, kdump_get_err(s->k));
    return DL_OK;
}

static const uint8_t *kd_view(dl_source *src, uint64_t off, size_t len)
{
    (void)src, (void)off, (void)len;
    return NULL;
}

static void kd_close(dl_source *src)
{
    kdump_source *s = (kdump_source *)src;
    if (s->k)
        kdump_free(s->k);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

/* RAM runs from the memory.pagemap bitmap, as identity extents. */
static dl_status add_ram(dl_dump *d, kdump_source *s)
{
    kdump_attr_t m = {.type = KDUMP_NUMBER}, attr = {.type = KDUMP_BITMAP};
    /* 2^40 PFNs cover every 52-bit physical address. */
    kdump_num_t max_pfn = kdump_get_typed_attr(s->k, "max_pfn", &m) == KDUMP_OK ? m.val.number : (1ull << 40);
    if (max_pfn > (1ull << 40))
        max_pfn = 1ull << 40;
    if (kdump_get_typed_attr(s->k, "memory.pagemap", &attr) != KDUMP_OK)
        return dl_fail(d->ctx, DL_ECORRUPT, "the capture has no RAM map: %s", kdump_get_err(s->k));
    kdump_bmp_t *bmp = attr.val.bitmap;
    kdump_addr_t idx = 0;
    dl_status st = DL_OK;
    while (st == DL_OK && idx < max_pfn) {
        kdump_addr_t start = idx;
        if (kdump_bmp_find_set(bmp, &start) != KDUMP_OK || start >= max_pfn)
            break;
        kdump_addr_t end = start;
        if (kdump_bmp_find_clear(bmp, &end) != KDUMP_OK || end > max_pfn)
            end = max_pfn;
        st = dl_physmem_add(&d->pm, d->ctx, start, end - start, (uint64_t)start << 12);
        idx = end;
    }
    return st;
}

dl_status dl_kdump_phys_open(dl_dump *d, const char *path, dl_source **phys)
{
    kdump_source *s = calloc(1, sizeof *s);
    if (!s)
        return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
    s->fd = open(path, O_RDONLY);
    s->k = kdump_new();
    if (s->fd < 0 || !s->k) {
        kd_close(&s->base);
        return dl_fail(d->ctx, DL_ECORRUPT, "cannot open %s for libkdumpfile", path);
    }
    /* read(2) into libkdumpfile's bounded cache: with mmap, every page the
     * RAM pass touches stays mapped (4.2 GB resident on a 4.5 GiB core). */
    if (kdump_set_number_attr(s->k, KDUMP_ATTR_FILE_MMAP_POLICY, KDUMP_MMAP_NEVER) != KDUMP_OK ||
        kdump_open_fd(s->k, s->fd) != KDUMP_OK) {
        dl_status st = dl_fail(d->ctx, DL_ECORRUPT, "libkdumpfile cannot read the capture: %s", kdump_get_err(s->k));
        kd_close(&s->base);
        return st;
    }
    s->base.read = kd_read;
    s->base.view = kd_view;
    s->base.close = kd_close;
    s->base.path = NULL;
    dl_status st = add_ram(d, s);
    if (st != DL_OK) {
        kd_close(&s->base);
        return st;
    }
    s->base.size = d->pm.n ? (d->pm.ext[d->pm.n - 1].pfn + d->pm.ext[d->pm.n - 1].pages) << 12 : 0;
    *phys = &s->base;
    return DL_OK;
}
#endif
