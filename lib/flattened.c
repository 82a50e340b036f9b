/* makedumpfile's flattened stream (vm-captures.md §3.5): a 4096-byte header
 * ("makedumpfile", big-endian type 1 and version 1), then records of
 * big-endian (offset, size) followed by size bytes for that offset of the
 * real file, ending with (-1, -1).  libkdumpfile 0.5.1 cannot read it, so it
 * is rebuilt once into the cache (as `makedumpfile -R` would). */
#ifdef HAVE_LIBKDUMPFILE
#define _FILE_OFFSET_BITS 64
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "ctx.h"
#include "platform.h"

#define FLAT_HEADER 4096u
/* A rebuilt file may not exceed 16 times the stream: records only place
 * data, so a larger target means crafted offsets. */
#define MAX_GROWTH 16u

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static int cmp_range(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static dl_status rebuild(dl_dump *d, dl_source *flat, FILE *out)
{
    dl_ctx *ctx = d->ctx;
    uint8_t h[16], buf[65536];
    uint64_t at = FLAT_HEADER, limit = flat->size * MAX_GROWTH + (1u << 20);
    /* Written ranges, to reject overlapping records. */
    uint64_t(*done)[2] = NULL;
    size_t ndone = 0, cap = 0;
    dl_status st = DL_OK;
    for (;;) {
        if (dl_source_read(flat, ctx, at, h, 16) != DL_OK) {
            st = dl_fail(ctx, DL_ECORRUPT, "flattened stream ends inside a record header at offset 0x%llx",
                         (unsigned long long)at);
            break;
        }
        uint64_t off = be64(h), size = be64(h + 8);
        if (off == UINT64_MAX && size == UINT64_MAX)
            break;
        at += 16;
        if ((int64_t)off < 0 || (int64_t)size < 0 || size > flat->size - at || off > limit || size > limit - off) {
            st = dl_fail(ctx, DL_ECORRUPT, "flattened record at 0x%llx (offset 0x%llx, 0x%llx bytes) runs past the end",
                         (unsigned long long)(at - 16), (unsigned long long)off, (unsigned long long)size);
            break;
        }
        if (ndone == cap) {
            cap = cap ? cap * 2 : 1024;
            void *n = realloc(done, cap * sizeof *done);
            if (!n) {
                st = dl_fail(ctx, DL_ECORRUPT, "out of memory");
                break;
            }
            done = n;
        }
        /* Neighbouring records merge; overlaps are checked once at the end. */
        if (ndone && done[ndone - 1][1] == off)
            done[ndone - 1][1] = off + size;
        else if (size)
            done[ndone][0] = off, done[ndone][1] = off + size, ndone++;
        if (fseeko(out, (off_t)off, SEEK_SET)) {
            st = dl_fail(ctx, DL_ECORRUPT, "cannot write the rebuilt capture");
            break;
        }
        for (uint64_t k = 0; k < size && st == DL_OK;) {
            size_t n = size - k < sizeof buf ? (size_t)(size - k) : sizeof buf;
            if (dl_source_read(flat, ctx, at + k, buf, n) != DL_OK || fwrite(buf, 1, n, out) != n)
                st = dl_fail(ctx, DL_ECORRUPT, "cannot rebuild the flattened stream at 0x%llx",
                             (unsigned long long)(at + k));
            k += n;
        }
        at += size;
        if (d->progress)
            d->progress(d->progress_arg, "rebuilding flattened capture", at, flat->size);
    }
    if (st == DL_OK) {
        if (ndone > 1)
            qsort(done, ndone, sizeof *done, cmp_range);
        for (size_t i = 1; i < ndone && st == DL_OK; i++)
            if (done[i][0] < done[i - 1][1])
                st = dl_fail(ctx, DL_ECORRUPT, "flattened records overlap at file offset 0x%llx",
                             (unsigned long long)done[i][0]);
    }
    free(done);
    return st;
}

dl_status dl_flattened_rebuild(dl_dump *d, dl_source *flat, const dl_open_options *opts, char *path, size_t cap,
                               int *temporary)
{
    char dir[4096];
    uint64_t size = 0, mtime = 0;
    *temporary = 0;
    if (flat->path && dl_platform_file_id(flat->path, &size, &mtime) == 0 && dl_cache_dir(opts, dir, sizeof dir)) {
        snprintf(path, cap, "%s/flat-%016llx-%016llx.kdump", dir, (unsigned long long)size, (unsigned long long)mtime);
        FILE *f = dl_platform_fopen(path, "rb");
        if (f) { /* already rebuilt by an earlier run */
            fclose(f);
            return DL_OK;
        }
    } else {
        char tmp[2048];
        if (!dl_platform_getenv("TMPDIR", tmp, sizeof tmp) && !dl_platform_getenv("TEMP", tmp, sizeof tmp))
            snprintf(tmp, sizeof tmp, "/tmp");
        snprintf(path, cap, "%s/dumpleak-flat-%p.kdump", tmp, (void *)d);
        *temporary = 1;
    }
    char part[4200];
    snprintf(part, sizeof part, "%s.part", path);
    FILE *out = dl_platform_fopen(part, "wb");
    if (!out)
        return dl_fail(d->ctx, DL_ECORRUPT, "cannot create %s to rebuild the flattened capture", part);
    dl_status st = rebuild(d, flat, out);
    if (fclose(out) != 0 && st == DL_OK)
        st = dl_fail(d->ctx, DL_ECORRUPT, "cannot write %s", part);
    if (st != DL_OK || dl_platform_rename(part, path) != 0) {
        remove(part);
        return st != DL_OK ? st : dl_fail(d->ctx, DL_ECORRUPT, "cannot rename %s", part);
    }
    return DL_OK;
}
#endif
