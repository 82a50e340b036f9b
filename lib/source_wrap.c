/* Wrappers around a dump (gzip, ZIP, CAB), detected by content.  Each
 * reader turns the file into a byte source of the dump inside, so nothing
 * above the byte source knows. */
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "inflate_index.h"
#include "source.h"

int dl_member_rank(const uint8_t *p, size_t n)
{
    static const char *const known[] = {"\x1f\x8b",
                                        "PK\3\4",
                                        "MSCF",
                                        "MDMP",
                                        "HIBR",
                                        "hibr",
                                        "WAKE",
                                        "RSTR",
                                        "\x7f"
                                        "ELF",
                                        "KDUMP   ",
                                        "makedumpfile",
                                        "PAGE"};
    if (n >= 8 && (!memcmp(p, "PAGEDUMP", 8) || !memcmp(p, "PAGEDU64", 8)))
        return 2;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (n >= strlen(known[i]) && !memcmp(p, known[i], strlen(known[i])))
            return 1;
    return 0;
}

/* One layer: *kind is NULL when file is not a wrapper (then *out = file). */
static dl_status unwrap_one(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out,
                            const char **kind)
{
    uint8_t m[4] = {0};
    size_t n = file->size < sizeof m ? (size_t)file->size : sizeof m;
    *kind = NULL;
    dl_status st = dl_source_read(file, ctx, 0, m, n);
    if (st != DL_OK) {
        dl_source_close(file);
        return st;
    }
    if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) {
        *kind = "gzip";
        return dl_unwrap_gzip(ctx, file, opts, out);
    }
    if (n >= 4 && !memcmp(m, "PK\3\4", 4)) {
        *kind = "zip";
        return dl_unwrap_zip(ctx, file, opts, out);
    }
    if (n >= 4 && !memcmp(m, "MSCF", 4)) {
        *kind = "cab";
        return dl_unwrap_cab(ctx, file, opts, out);
    }
    *out = file;
    return DL_OK;
}

dl_status dl_source_unwrap(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out,
                           const char **wrapper)
{
    static const dl_open_options defaults;
    *out = NULL;
    *wrapper = NULL;
    if (!opts)
        opts = &defaults;
    /* Users wrap twice too (a .dmp.gz in a ZIP): the outer kind is reported. */
    for (int depth = 0; depth < 3; depth++) {
        const char *kind;
        dl_source *inner = NULL;
        dl_status st = unwrap_one(ctx, file, opts, &inner, &kind);
        if (st != DL_OK) {
            *wrapper = NULL;
            return st;
        }
        if (!*wrapper)
            *wrapper = kind;
        file = inner;
        if (!kind)
            break;
    }
    *out = file;
    return DL_OK;
}

/* ---- a window onto part of another source ---- */

typedef struct slice {
    dl_source base;
    dl_source *parent, *also;
    uint64_t off;
} slice;

static dl_status slice_read(dl_source *src, dl_ctx *ctx, uint64_t off, void *buf, size_t len)
{
    slice *s = (slice *)src;
    if (off > src->size || len > src->size - off)
        return dl_fail(ctx, DL_ECORRUPT, "read of %zu bytes at offset 0x%llx passes the end of the file (0x%llx)", len,
                       (unsigned long long)off, (unsigned long long)src->size);
    return dl_source_read(s->parent, ctx, s->off + off, buf, len);
}

static const uint8_t *slice_view(dl_source *src, uint64_t off, size_t len)
{
    slice *s = (slice *)src;
    if (off > src->size || len > src->size - off || !s->parent->view)
        return NULL;
    return s->parent->view(s->parent, s->off + off, len);
}

static void slice_close(dl_source *src)
{
    slice *s = (slice *)src;
    dl_source_close(s->parent);
    if (s->also)
        dl_source_close(s->also);
    free(s);
}

dl_status dl_slice_open(dl_ctx *ctx, dl_source *parent, dl_source *also, uint64_t off, uint64_t size, dl_source **out)
{
    slice *s = calloc(1, sizeof *s);
    if (!s || off > parent->size || size > parent->size - off) {
        free(s);
        dl_source_close(parent);
        if (also)
            dl_source_close(also);
        return s ? dl_fail(ctx, DL_ECORRUPT, "member at 0x%llx (%llu bytes) passes the end of its data",
                           (unsigned long long)off, (unsigned long long)size)
                 : dl_fail(ctx, DL_ECORRUPT, "out of memory");
    }
    s->parent = parent;
    s->also = also;
    s->off = off;
    s->base.size = size;
    s->base.read = slice_read;
    s->base.view = slice_view;
    s->base.close = slice_close;
    s->base.path = parent->path;
    *out = &s->base;
    return DL_OK;
}
