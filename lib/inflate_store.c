/* The checkpoint index on disk, in the user's cache directory.  A file is
 * named after a hash of its key and also holds the key, so a stale one (the
 * dump changed) is never used; a damaged one fails its CRC and is rebuilt.
 * Layout, little-endian: "DLZIDX01", key, stream size, point count, the
 * points (fixed fields + deflated window), CRC-32 of everything before. */
#define ZLIB_CONST
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "bytes.h"
#include "capture.h"
#include "ctx.h"
#include "inflate_index.h"
#include "platform.h"

#define MAGIC "DLZIDX01"
#define HEAD_BYTES (1u << 20)
#define KEY_BYTES 36u
#define POINT_BYTES 60u
#define MAX_INDEX (1ull << 30) /* larger files are not ours */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_key(uint8_t *p, const dl_zkey *k)
{
    put64(p, k->file_size);
    put64(p + 8, k->mtime);
    put64(p + 16, k->stream_id);
    put32(p + 24, k->head_crc);
    memcpy(p + 28, k->kind, 8);
}

int dl_zcache_path(dl_ctx *ctx, const dl_open_options *opts, dl_source *file, const dl_zframing *fr, dl_zkey *key,
                   char *path, size_t cap)
{
    if (opts->no_cache || !file->path)
        return 0;
    char dir[4096];
    if (!dl_cache_dir(opts, dir, sizeof dir))
        return 0;
    memset(key, 0, sizeof *key);
    if (dl_platform_file_id(file->path, &key->file_size, &key->mtime) != 0 || key->file_size != file->size)
        return 0;
    key->stream_id = fr->stream_id;
    snprintf(key->kind, sizeof key->kind, "%s", fr->name);
    /* The head's hash guards against an mtime kept across a rewrite. */
    uint8_t buf[65536];
    uLong crc = crc32(0, NULL, 0);
    for (uint64_t off = 0; off < file->size && off < HEAD_BYTES; off += sizeof buf) {
        size_t len = file->size - off < sizeof buf ? (size_t)(file->size - off) : sizeof buf;
        if (dl_source_read(file, ctx, off, buf, len) != DL_OK) {
            dl_ctx_clear_error(ctx);
            return 0;
        }
        crc = crc32(crc, buf, (uInt)len);
    }
    key->head_crc = (uint32_t)crc;
    uint8_t kb[KEY_BYTES];
    put_key(kb, key);
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < sizeof kb; i++)
        h = (h ^ kb[i]) * 0x100000001b3ull;
    int n = snprintf(path, cap, "%s/%016llx.zidx", dir, (unsigned long long)h);
    if (n < 0 || (size_t)n >= cap || dl_platform_mkdirs(dir) != 0)
        return 0;
    return 1;
}

static int point_ok(const dl_zindex *ix, size_t i, uint64_t file_size)
{
    const dl_zpoint *p = &ix->pt[i];
    const dl_zunit *u = &p->unit;
    uint32_t want = p->out < DL_ZWINDOW ? (uint32_t)p->out : DL_ZWINDOW;
    if ((i == 0) != (p->out == 0) || (i && p->out <= ix->pt[i - 1].out) || p->out > ix->size)
        return 0;
    if (u->in_off > file_size || u->in_len > file_size - u->in_off || p->in < u->in_off ||
        p->in > u->in_off + u->in_len)
        return 0;
    if (p->bits > 7 || (p->bits && p->in == 0) || p->fresh > 1 || u->stored > 1 || u->keep_dict > 1)
        return 0;
    if (p->uout > p->out || (u->out_len != DL_ZUNIT_OPEN && p->uout > u->out_len))
        return 0;
    return p->wraw == want && (p->wraw == 0) == (p->wlen == 0) && p->wlen <= 2 * DL_ZWINDOW;
}

int dl_zcache_load(const char *path, const dl_zkey *key, uint64_t file_size, dl_zindex *ix)
{
    memset(ix, 0, sizeof *ix);
    FILE *f = dl_platform_fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (uint64_t)len <= MAX_INDEX && len >= 8 + (long)KEY_BYTES + 16 + 4 && (buf = malloc((size_t)len)) &&
        fread(buf, 1, (size_t)len, f) != (size_t)len)
        len = -1;
    fclose(f);
    int ok = buf && len > 0;
    size_t at = 8 + KEY_BYTES, end = ok ? (size_t)len - 4 : 0;
    if (ok) {
        uint8_t kb[KEY_BYTES];
        put_key(kb, key);
        ok = dl_le32(buf + end) == (uint32_t)crc32(0, buf, (uInt)end) && !memcmp(buf, MAGIC, 8) &&
             !memcmp(buf + 8, kb, KEY_BYTES);
    }
    uint64_t n = 0;
    if (ok) {
        ix->size = dl_le64(buf + at);
        n = dl_le64(buf + at + 8);
        at += 16;
        ok = n >= 1 && n <= (end - at) / POINT_BYTES;
    }
    if (ok && !(ix->pt = calloc((size_t)n, sizeof *ix->pt)))
        ok = 0;
    for (uint64_t i = 0; ok && i < n; i++) {
        dl_zpoint *p = &ix->pt[i];
        const uint8_t *b = buf + at;
        if (end - at < POINT_BYTES) {
            ok = 0;
            break;
        }
        p->out = dl_le64(b);
        p->in = dl_le64(b + 8);
        p->uout = dl_le64(b + 16);
        p->unit.in_off = dl_le64(b + 24);
        p->unit.in_len = dl_le64(b + 32);
        p->unit.out_len = dl_le64(b + 40);
        p->unit.index = dl_le32(b + 48);
        p->unit.stored = b[52];
        p->unit.keep_dict = b[53];
        p->bits = b[54];
        p->fresh = b[55];
        p->wraw = dl_le32(b + 56);
        at += POINT_BYTES;
        if (end - at < 4) {
            ok = 0;
            break;
        }
        p->wlen = dl_le32(buf + at);
        at += 4;
        ix->n = (size_t)i + 1;
        if (!point_ok(ix, (size_t)i, file_size) || p->wlen > end - at || (p->wlen && !(p->wz = malloc(p->wlen)))) {
            ok = 0;
            break;
        }
        if (p->wlen)
            memcpy(p->wz, buf + at, p->wlen);
        at += p->wlen;
    }
    ok = ok && at == end;
    free(buf);
    if (!ok) {
        dl_zindex_free(ix);
        return -1;
    }
    ix->cap = ix->n;
    return 0;
}

void dl_zcache_save(const char *path, const dl_zkey *key, const dl_zindex *ix)
{
    size_t len = 8 + KEY_BYTES + 16 + 4;
    for (size_t i = 0; i < ix->n; i++)
        len += POINT_BYTES + 4 + ix->pt[i].wlen;
    uint8_t *buf = malloc(len), *b;
    if (!buf)
        return;
    memcpy(buf, MAGIC, 8);
    put_key(buf + 8, key);
    b = buf + 8 + KEY_BYTES;
    put64(b, ix->size);
    put64(b + 8, ix->n);
    b += 16;
    for (size_t i = 0; i < ix->n; i++) {
        const dl_zpoint *p = &ix->pt[i];
        put64(b, p->out);
        put64(b + 8, p->in);
        put64(b + 16, p->uout);
        put64(b + 24, p->unit.in_off);
        put64(b + 32, p->unit.in_len);
        put64(b + 40, p->unit.out_len);
        put32(b + 48, p->unit.index);
        b[52] = p->unit.stored;
        b[53] = p->unit.keep_dict;
        b[54] = p->bits;
        b[55] = p->fresh;
        put32(b + 56, p->wraw);
        put32(b + 60, p->wlen);
        b += POINT_BYTES + 4;
        if (p->wlen)
            memcpy(b, p->wz, p->wlen);
        b += p->wlen;
    }
    put32(b, (uint32_t)crc32(0, buf, (uInt)(len - 4)));
    /* Write aside and rename, so a reader never sees half a file. */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%p.%lld.tmp", path, (void *)&len, (long long)time(NULL));
    FILE *f = dl_platform_fopen(tmp, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    if (ok && dl_platform_rename(tmp, path) != 0) {
        remove(path);
        ok = dl_platform_rename(tmp, path) == 0;
    }
    if (!ok)
        remove(tmp);
    free(buf);
}
