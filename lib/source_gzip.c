/* gzip (RFC 1952): one or more members, each header + raw deflate + CRC-32
 * and ISIZE.  The size is what the members inflate to: ISIZE is only the
 * size mod 2^32, so it is checked, never trusted. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "inflate_index.h"

typedef struct gz {
    dl_source *file;
} gz;

/* Skip a NUL-terminated header field starting at *off. */
static dl_status skip_string(dl_source *f, dl_ctx *ctx, uint64_t start, uint64_t *off, const char *what)
{
    uint8_t b[256];
    while (*off < f->size) {
        size_t n = f->size - *off < sizeof b ? (size_t)(f->size - *off) : sizeof b;
        dl_status st = dl_source_read(f, ctx, *off, b, n);
        if (st != DL_OK)
            return st;
        const uint8_t *z = memchr(b, 0, n);
        if (z) {
            *off += (uint64_t)(z - b) + 1;
            return DL_OK;
        }
        *off += n;
    }
    return dl_fail(ctx, DL_ECORRUPT, "gzip: header of the member at offset 0x%llx truncated in its %s",
                   (unsigned long long)start, what);
}

/* Parse the member header at off; *data is where its deflate data starts. */
static dl_status parse_header(dl_source *f, dl_ctx *ctx, uint64_t off, uint64_t *data)
{
    uint8_t h[10];
    if (f->size - off < sizeof h)
        return dl_fail(ctx, DL_ECORRUPT, "gzip: header of the member at offset 0x%llx truncated (file ends at 0x%llx)",
                       (unsigned long long)off, (unsigned long long)f->size);
    dl_status st = dl_source_read(f, ctx, off, h, sizeof h);
    if (st != DL_OK)
        return st;
    if (h[0] != 0x1f || h[1] != 0x8b)
        return dl_fail(ctx, DL_ECORRUPT, "gzip: bad member signature at offset 0x%llx", (unsigned long long)off);
    if (h[2] != 8)
        return dl_fail(ctx, DL_EUNSUPPORTED, "unsupported compression method %u (gzip member at offset 0x%llx)", h[2],
                       (unsigned long long)off);
    if (h[3] & 0xE0)
        return dl_fail(ctx, DL_ECORRUPT, "gzip: reserved flags 0x%02x set in the member header at offset 0x%llx", h[3],
                       (unsigned long long)off);
    uint64_t p = off + sizeof h;
    if (h[3] & 4) { /* FEXTRA */
        uint8_t x[2];
        if (f->size - p < 2 || dl_source_read(f, ctx, p, x, 2) != DL_OK || f->size - p - 2 < dl_le16(x))
            return dl_fail(ctx, DL_ECORRUPT,
                           "gzip: extra field of the member at offset 0x%llx passes the end of the file",
                           (unsigned long long)off);
        p += 2 + (uint64_t)dl_le16(x);
    }
    if ((h[3] & 8) && (st = skip_string(f, ctx, off, &p, "file name")) != DL_OK)
        return st;
    if ((h[3] & 16) && (st = skip_string(f, ctx, off, &p, "comment")) != DL_OK)
        return st;
    if (h[3] & 2) /* FHCRC */
        p += 2;
    if (p > f->size)
        return dl_fail(ctx, DL_ECORRUPT, "gzip: header of the member at offset 0x%llx truncated",
                       (unsigned long long)off);
    *data = p;
    return DL_OK;
}

static dl_status gz_next(void *arg, dl_ctx *ctx, const dl_zunit *prev, uint64_t end, dl_zunit *u, int *more)
{
    dl_source *f = ((gz *)arg)->file;
    uint64_t off = 0;
    *more = 0;
    if (prev) {
        if (f->size - end < 8)
            return dl_fail(ctx, DL_ECORRUPT, "gzip: member %u truncated: its trailer at offset 0x%llx is missing",
                           prev->index, (unsigned long long)end);
        off = end + 8;
        uint8_t m[2];
        if (off == f->size)
            return DL_OK;
        if (f->size - off < 2 || dl_source_read(f, ctx, off, m, 2) != DL_OK || m[0] != 0x1f || m[1] != 0x8b) {
            dl_ctx_clear_error(ctx);
            /* What gzip -d does too: the data is whole, the tail is not ours. */
            dl_warn(ctx, "trailing-data", "gzip: %llu bytes after the last member (offset 0x%llx) ignored",
                    (unsigned long long)(f->size - off), (unsigned long long)off);
            return DL_OK;
        }
    }
    uint64_t data = 0;
    dl_status st = parse_header(f, ctx, off, &data);
    if (st != DL_OK)
        return st;
    memset(u, 0, sizeof *u);
    u->in_off = data;
    u->in_len = f->size - data;
    u->out_len = DL_ZUNIT_OPEN;
    u->index = prev ? prev->index + 1 : 0;
    *more = 1;
    return DL_OK;
}

static dl_status gz_check(void *arg, dl_ctx *ctx, const dl_zunit *u, uint64_t end, uint32_t crc, uint64_t out)
{
    dl_source *f = ((gz *)arg)->file;
    uint8_t t[8];
    if (f->size - end < 8)
        return dl_fail(ctx, DL_ECORRUPT, "gzip: member %u truncated: its trailer at offset 0x%llx is missing", u->index,
                       (unsigned long long)end);
    dl_status st = dl_source_read(f, ctx, end, t, 8);
    if (st != DL_OK)
        return st;
    if (dl_le32(t) != crc)
        return dl_fail(ctx, DL_ECORRUPT, "gzip: CRC mismatch in member %u (trailer at offset 0x%llx): data corrupt",
                       u->index, (unsigned long long)end);
    if (dl_le32(t + 4) != (uint32_t)out)
        return dl_fail(ctx, DL_ECORRUPT, "gzip: length mismatch in member %u (trailer at offset 0x%llx)", u->index,
                       (unsigned long long)end);
    return DL_OK;
}

dl_status dl_unwrap_gzip(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out)
{
    gz *g = calloc(1, sizeof *g);
    if (!g) {
        dl_source_close(file);
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    }
    g->file = file;
    dl_zframing fr = {.name = "gzip", .next = gz_next, .check = gz_check, .arg = g};
    return dl_zsource_open(ctx, file, 1, &fr, opts, out);
}
