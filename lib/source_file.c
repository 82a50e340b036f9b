/* Byte source over a read-only mapping of the whole file. */
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "platform.h"
#include "source.h"

typedef struct file_source {
    dl_source base;
    dl_file_map map;
    char *path;
} file_source;

static int in_bounds(const dl_source *src, uint64_t off, size_t len)
{
    return off <= src->size && len <= src->size - off;
}

static dl_status file_read(dl_source *src, dl_ctx *ctx, uint64_t off, void *buf, size_t len)
{
    file_source *fs = (file_source *)src;
    if (!in_bounds(src, off, len))
        return dl_fail(ctx, DL_ECORRUPT, "read of %zu bytes at offset 0x%llx passes the end of the file (0x%llx)", len,
                       (unsigned long long)off, (unsigned long long)src->size);
    if (len)
        memcpy(buf, fs->map.data + off, len);
    return DL_OK;
}

static const uint8_t *file_view(dl_source *src, uint64_t off, size_t len)
{
    file_source *fs = (file_source *)src;
    if (!in_bounds(src, off, len) || !fs->map.data)
        return NULL;
    return fs->map.data + off;
}

static void file_release(dl_source *src)
{
    dl_platform_release(&((file_source *)src)->map);
}

static void file_close(dl_source *src)
{
    file_source *fs = (file_source *)src;
    dl_platform_unmap(&fs->map);
    free(fs->path);
    free(fs);
}

dl_status dl_source_open_file(dl_ctx *ctx, const char *path, dl_source **out)
{
    file_source *fs = calloc(1, sizeof *fs);
    if (!fs)
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    dl_status st = dl_platform_map(ctx, path, &fs->map);
    if (st != DL_OK) {
        free(fs);
        return st;
    }
    size_t n = strlen(path) + 1;
    fs->path = malloc(n);
    if (fs->path)
        fs->base.path = memcpy(fs->path, path, n);
    fs->base.size = fs->map.size;
    fs->base.read = file_read;
    fs->base.view = file_view;
    fs->base.close = file_close;
    fs->base.release = file_release;
    *out = &fs->base;
    return DL_OK;
}

void dl_source_close(dl_source *src)
{
    if (src)
        src->close(src);
}
