/* Byte source: the only thing the container reader knows about its input.
 * A mapped file today; an inflating stream or remote range reads later. */
#ifndef DL_SOURCE_H
#define DL_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "dumpleak.h"

typedef struct dl_source dl_source;

struct dl_source {
    uint64_t size;
    /* Copy [off, off+len) into buf; DL_ECORRUPT with a message past EOF. */
    dl_status (*read)(dl_source *src, dl_ctx *ctx, uint64_t off, void *buf, size_t len);
    /* Direct view of [off, off+len) or NULL when the source cannot lend one
     * (callers then fall back to read()). */
    const uint8_t *(*view)(dl_source *src, uint64_t off, size_t len);
    void (*close)(dl_source *src);
    /* Optional: drop cached or mapped pages read so far (memory stays
     * bounded while large areas are scanned once). */
    void (*release)(dl_source *src);
    void *priv;
    const char *path; /* file behind the source, or NULL: keys the index cache */
};

dl_status dl_source_open_file(dl_ctx *ctx, const char *path, dl_source **out);
void dl_source_close(dl_source *src);

static inline void dl_source_release(dl_source *src)
{
    if (src && src->release)
        src->release(src);
}

/* Wrappers (gzip, ZIP, CAB/MSZIP), detected by content: on a wrapper,
 * *out is a byte source of the dump inside and *wrapper names the kind; on
 * anything else *out = file and *wrapper = NULL.  Takes ownership of file
 * (closed on error too).  Implemented in source_wrap*.c. */
dl_status dl_source_unwrap(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out,
                           const char **wrapper);

/* Read that is bounds-checked against the source size. */
static inline dl_status dl_source_read(dl_source *src, dl_ctx *ctx, uint64_t off, void *buf, size_t len)
{
    return src->read(src, ctx, off, buf, len);
}

#endif
