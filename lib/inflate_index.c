/* Inflating byte source: indexing pass, checkpoint restarts, chunk cache. */
#define ZLIB_CONST
#include "inflate_index.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ctx.h"

/* Output between checkpoints: a miss inflates at most this.  Larger inputs
 * space them wider so the index stays near 2048 windows (tens of MiB). */
#define SPAN_MIN (1u << 20)
#define CHUNK 32768u /* cache unit; <= the window so a restart can fill a chunk's head */
#define SETS 256u    /* 4-way cache of 32 MiB at most */
#define WAYS 4u
#define INBUF 65536u
#define PROGRESS_STEP (64u << 20)

typedef struct cursor {
    z_stream z;
    int zinit;
    int active; /* positioned in a unit */
    int eos;    /* the framing said the stream is over */
    int udone;  /* current unit ended */
    dl_zunit u;
    uint64_t feed; /* file offset after the bytes handed to zlib */
    uint64_t out;  /* stream offset of the next output byte */
    uint64_t uout; /* output of the current unit */
    uint32_t crc;  /* of the current unit (indexing pass) */
    uint8_t inbuf[INBUF];
    uint8_t chunk[CHUNK];
    uint8_t win[DL_ZWINDOW];
} cursor;

typedef struct slot {
    uint64_t id; /* chunk number + 1; 0 when empty */
    uint64_t tick;
    uint32_t len;
    uint8_t *buf;
} slot;

typedef struct zsource {
    dl_source base;
    dl_source *file;
    int own_file;
    dl_zframing fr;
    dl_zindex ix;
    cursor *c;
    slot slots[SETS * WAYS];
    uint64_t tick;
} zsource;

enum { EV_NONE, EV_UNIT, EV_BLOCK };

static uint64_t pos(const cursor *c)
{
    return c->feed - c->z.avail_in;
}

static dl_status zfail(zsource *zs, dl_ctx *ctx, const cursor *c, int ret)
{
    return dl_fail(ctx, DL_ECORRUPT, "%s: invalid deflate data in %s %u near offset 0x%llx: %s", zs->fr.name,
                   zs->fr.name[0] == 'C' ? "block" : "member", c->u.index, (unsigned long long)pos(c),
                   c->z.msg             ? c->z.msg
                   : ret == Z_NEED_DICT ? "needs a dictionary"
                                        : "inflate failed");
}

static dl_status cursor_zinit(zsource *zs, dl_ctx *ctx, cursor *c)
{
    if (c->zinit)
        return inflateReset(&c->z) == Z_OK ? DL_OK : dl_fail(ctx, DL_ECORRUPT, "%s: inflate reset failed", zs->fr.name);
    memset(&c->z, 0, sizeof c->z);
    if (inflateInit2(&c->z, -15) != Z_OK)
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    c->zinit = 1;
    return DL_OK;
}

/* Enter unit u at its start; the dictionary is zlib's current window. */
static dl_status enter_unit(zsource *zs, dl_ctx *ctx, cursor *c, const dl_zunit *u, const uint8_t *dict, uInt dlen)
{
    if (u->in_off > zs->file->size || u->in_len > zs->file->size - u->in_off)
        return dl_fail(ctx, DL_ECORRUPT, "%s: data of part %u passes the end of the file (offset 0x%llx, %llu bytes)",
                       zs->fr.name, u->index, (unsigned long long)u->in_off, (unsigned long long)u->in_len);
    uInt glen = 0;
    if (!u->stored && u->keep_dict && !dict && c->zinit && c->active) {
        /* MSZIP: the next block sees the previous 32 KiB of output. */
        if (inflateGetDictionary(&c->z, c->win, &glen) != Z_OK)
            glen = 0;
        dict = c->win;
        dlen = glen;
    }
    c->u = *u;
    c->feed = u->in_off;
    c->z.avail_in = 0;
    c->uout = 0;
    c->udone = 0;
    c->crc = crc32(0, NULL, 0);
    c->active = 1;
    if (u->stored)
        return DL_OK;
    dl_status st = cursor_zinit(zs, ctx, c);
    if (st == DL_OK && u->keep_dict && dict && dlen && inflateSetDictionary(&c->z, dict, dlen) != Z_OK)
        st = dl_fail(ctx, DL_ECORRUPT, "%s: cannot set the dictionary of block %u", zs->fr.name, u->index);
    return st;
}

/* Hand zlib the next piece of the unit's input; 0 when none is left. */
static int refill(zsource *zs, dl_ctx *ctx, cursor *c, dl_status *st)
{
    uint64_t end = c->u.in_off + c->u.in_len, p = pos(c);
    if (p >= end)
        return 0;
    uint64_t n = end - p;
    const uint8_t *v = zs->file->view ? zs->file->view(zs->file, p, (size_t)(n < (1u << 20) ? n : (1u << 20))) : NULL;
    if (v) {
        if (n > (1u << 20))
            n = 1u << 20;
    } else {
        if (n > INBUF)
            n = INBUF;
        *st = dl_source_read(zs->file, ctx, p, c->inbuf, (size_t)n);
        if (*st != DL_OK)
            return 0;
        v = c->inbuf;
    }
    c->z.next_in = v;
    c->z.avail_in = (uInt)n;
    c->feed = p + n;
    return 1;
}

/* Inflate up to n bytes into dst; *got says how many came.  Stops early on
 * an event when events is set (indexing), and at the stream's end. */
static dl_status advance(zsource *zs, dl_ctx *ctx, cursor *c, uint8_t *dst, size_t n, int events, size_t *got, int *ev)
{
    *got = 0;
    *ev = EV_NONE;
    while (n) {
        if (c->udone) {
            dl_zunit nu;
            int more = 0;
            dl_status st = zs->fr.next(zs->fr.arg, ctx, &c->u, pos(c), &nu, &more);
            if (st != DL_OK)
                return st;
            if (!more) {
                c->eos = 1;
                return DL_OK;
            }
            if ((st = enter_unit(zs, ctx, c, &nu, NULL, 0)) != DL_OK)
                return st;
            if (events) {
                *ev = EV_UNIT;
                return DL_OK;
            }
        }
        size_t k;
        if (c->u.stored) {
            uint64_t left = c->u.in_len - c->uout;
            k = left < n ? (size_t)left : n;
            dl_status st = dl_source_read(zs->file, ctx, c->feed, dst, k);
            if (st != DL_OK)
                return st;
            c->feed += k;
            if (k == left)
                c->udone = 1;
        } else {
            if (c->z.avail_in == 0) {
                dl_status st = DL_OK;
                if (!refill(zs, ctx, c, &st)) {
                    if (st != DL_OK)
                        return st;
                    /* Input spent: fine only if the unit's size is reached
                     * (an encoder that flushed instead of ending the stream). */
                    if (c->u.out_len == DL_ZUNIT_OPEN || c->uout != c->u.out_len)
                        return dl_fail(ctx, DL_ECORRUPT, "%s: compressed data of %s %u truncated at offset 0x%llx",
                                       zs->fr.name, zs->fr.name[0] == 'C' ? "block" : "member", c->u.index,
                                       (unsigned long long)pos(c));
                    c->udone = 1;
                }
            }
            k = 0;
            if (!c->udone) {
                c->z.next_out = dst;
                c->z.avail_out = (uInt)n;
                int ret = inflate(&c->z, events ? Z_BLOCK : Z_NO_FLUSH);
                k = n - c->z.avail_out;
                if (ret == Z_STREAM_END)
                    c->udone = 1;
                else if (ret != Z_OK && ret != Z_BUF_ERROR)
                    return zfail(zs, ctx, c, ret);
            }
        }
        if (events)
            c->crc = crc32(c->crc, dst, (uInt)k);
        c->uout += k;
        c->out += k;
        *got += k;
        dst += k;
        n -= k;
        if (c->u.out_len != DL_ZUNIT_OPEN && (c->uout > c->u.out_len || (c->udone && c->uout != c->u.out_len)))
            return dl_fail(ctx, DL_ECORRUPT,
                           "%s: %s %u inflates to %s bytes than the %llu it declares (data at 0x%llx)", zs->fr.name,
                           zs->fr.name[0] == 'C' ? "block" : "member", c->u.index,
                           c->uout > c->u.out_len ? "more" : "fewer", (unsigned long long)c->u.out_len,
                           (unsigned long long)c->u.in_off);
        if (c->udone && events && zs->fr.check) {
            dl_status st = zs->fr.check(zs->fr.arg, ctx, &c->u, pos(c), c->crc, c->uout);
            if (st != DL_OK)
                return st;
        }
        if (events && !c->u.stored && (c->z.data_type & 128) && !(c->z.data_type & 64) && !c->udone) {
            *ev = EV_BLOCK;
            return DL_OK;
        }
        if (events && c->u.stored) {
            *ev = EV_BLOCK;
            return DL_OK;
        }
    }
    return DL_OK;
}

static cursor *cursor_get(zsource *zs, dl_ctx *ctx)
{
    if (!zs->c) {
        zs->c = calloc(1, sizeof *zs->c);
        if (!zs->c)
            dl_fail(ctx, DL_ECORRUPT, "out of memory");
    }
    return zs->c;
}

/* ---- indexing pass ---- */

static dl_status add_point(zsource *zs, dl_ctx *ctx, cursor *c, const uint8_t *ring, int fresh, z_stream *dz)
{
    dl_zindex *ix = &zs->ix;
    if (ix->n == ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : 64;
        dl_zpoint *p = realloc(ix->pt, cap * sizeof *p);
        if (!p)
            return dl_fail(ctx, DL_ECORRUPT, "out of memory");
        ix->pt = p;
        ix->cap = cap;
    }
    dl_zpoint *p = &ix->pt[ix->n];
    memset(p, 0, sizeof *p);
    p->out = c->out;
    p->in = pos(c);
    p->uout = c->uout;
    p->unit = c->u;
    p->fresh = (uint8_t)fresh;
    p->bits = fresh || c->u.stored ? 0 : (uint8_t)(c->z.data_type & 7);
    p->wraw = c->out < DL_ZWINDOW ? (uint32_t)c->out : DL_ZWINDOW;
    /* Unroll the ring: the window is the last wraw bytes of output. */
    uint32_t r = (uint32_t)(c->out % DL_ZWINDOW);
    if (c->out >= DL_ZWINDOW) {
        memcpy(c->win, ring + r, DL_ZWINDOW - r);
        memcpy(c->win + (DL_ZWINDOW - r), ring, r);
    } else {
        memcpy(c->win, ring, p->wraw);
    }
    if (p->wraw) {
        uLong bound = deflateBound(dz, p->wraw);
        p->wz = malloc(bound);
        if (!p->wz || deflateReset(dz) != Z_OK)
            return dl_fail(ctx, DL_ECORRUPT, "out of memory");
        dz->next_in = c->win;
        dz->avail_in = p->wraw;
        dz->next_out = p->wz;
        dz->avail_out = (uInt)bound;
        if (deflate(dz, Z_FINISH) != Z_STREAM_END) {
            free(p->wz);
            return dl_fail(ctx, DL_ECORRUPT, "%s: cannot compress a checkpoint window", zs->fr.name);
        }
        p->wlen = (uint32_t)(bound - dz->avail_out);
    }
    ix->n++;
    return DL_OK;
}

static dl_status build(zsource *zs, dl_ctx *ctx, const dl_open_options *opts)
{
    cursor *c = cursor_get(zs, ctx);
    if (!c)
        return DL_ECORRUPT;
    uint8_t *ring = malloc(DL_ZWINDOW);
    z_stream dz;
    memset(&dz, 0, sizeof dz);
    if (!ring || deflateInit2(&dz, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(ring);
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    }
    dl_zunit first;
    int more = 0;
    dl_status st = zs->fr.next(zs->fr.arg, ctx, NULL, 0, &first, &more);
    if (st == DL_OK && !more) /* an empty member: no points, nothing to read */
        c->eos = 1;
    if (st == DL_OK && more)
        st = enter_unit(zs, ctx, c, &first, NULL, 0);
    if (st == DL_OK && more)
        st = add_point(zs, ctx, c, ring, 1, &dz);
    uint64_t last = 0, shown = 0, span = zs->file->size / 512 > SPAN_MIN ? zs->file->size / 512 : SPAN_MIN;
    while (st == DL_OK && !c->eos) {
        size_t r = (size_t)(c->out % DL_ZWINDOW), got;
        int ev;
        st = advance(zs, ctx, c, ring + r, DL_ZWINDOW - r, 1, &got, &ev);
        if (st != DL_OK || c->eos)
            break;
        if (ev != EV_NONE && c->out - last >= span) {
            st = add_point(zs, ctx, c, ring, ev == EV_UNIT, &dz);
            last = c->out;
        }
        if (opts->progress && pos(c) - shown >= PROGRESS_STEP) {
            shown = pos(c);
            opts->progress(opts->progress_arg, zs->fr.name, shown, zs->file->size);
        }
    }
    if (st == DL_OK && opts->progress)
        opts->progress(opts->progress_arg, zs->fr.name, zs->file->size, zs->file->size);
    zs->ix.size = c->out;
    c->active = 0;
    deflateEnd(&dz);
    free(ring);
    return st;
}

/* ---- reads ---- */

/* Last checkpoint before end. */
static const dl_zpoint *find_point(const dl_zindex *ix, uint64_t end)
{
    size_t lo = 0, hi = ix->n; /* pt[0].out == 0 < end */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->pt[mid].out < end)
            lo = mid;
        else
            hi = mid;
    }
    return &ix->pt[lo];
}

static dl_status restart(zsource *zs, dl_ctx *ctx, cursor *c, const dl_zpoint *p)
{
    c->active = 0;
    c->eos = 0;
    if (p->wraw) {
        z_stream t;
        memset(&t, 0, sizeof t);
        if (inflateInit2(&t, -15) != Z_OK)
            return dl_fail(ctx, DL_ECORRUPT, "out of memory");
        t.next_in = p->wz;
        t.avail_in = p->wlen;
        t.next_out = c->win;
        t.avail_out = DL_ZWINDOW;
        int ret = inflate(&t, Z_FINISH);
        uint32_t wl = DL_ZWINDOW - t.avail_out;
        inflateEnd(&t);
        if (ret != Z_STREAM_END || wl != p->wraw)
            return dl_fail(ctx, DL_ECORRUPT, "%s: checkpoint window at 0x%llx is damaged", zs->fr.name,
                           (unsigned long long)p->out);
    }
    dl_status st = enter_unit(zs, ctx, c, &p->unit, c->win, p->wraw);
    if (st != DL_OK || p->fresh)
        return st;
    c->feed = p->in;
    c->uout = p->uout;
    if (p->unit.stored)
        return DL_OK;
    /* enter_unit only set a dictionary for MSZIP units: mid-unit, always. */
    if (!p->unit.keep_dict && p->wraw && inflateSetDictionary(&c->z, c->win, p->wraw) != Z_OK)
        return dl_fail(ctx, DL_ECORRUPT, "%s: cannot restore the window at 0x%llx", zs->fr.name,
                       (unsigned long long)p->out);
    if (p->bits) {
        uint8_t b;
        if ((st = dl_source_read(zs->file, ctx, p->in - 1, &b, 1)) != DL_OK)
            return st;
        if (inflatePrime(&c->z, p->bits, b >> (8 - p->bits)) != Z_OK)
            return dl_fail(ctx, DL_ECORRUPT, "%s: cannot restart at 0x%llx", zs->fr.name, (unsigned long long)p->out);
    }
    return DL_OK;
}

static slot *cache_find(zsource *zs, uint64_t k)
{
    slot *set = &zs->slots[(k % SETS) * WAYS];
    for (unsigned w = 0; w < WAYS; w++)
        if (set[w].id == k + 1) {
            set[w].tick = ++zs->tick;
            return &set[w];
        }
    return NULL;
}

static slot *cache_put(zsource *zs, uint64_t k, const uint8_t *data, uint32_t len)
{
    slot *set = &zs->slots[(k % SETS) * WAYS], *v = &set[0];
    for (unsigned w = 0; w < WAYS; w++) {
        if (set[w].id == k + 1) {
            v = &set[w];
            break;
        }
        if (set[w].tick < v->tick)
            v = &set[w];
    }
    if (!v->buf && !(v->buf = malloc(CHUNK)))
        return NULL;
    memcpy(v->buf, data, len);
    v->id = k + 1;
    v->len = len;
    v->tick = ++zs->tick;
    return v;
}

/* Inflate chunk k (and cache the chunks passed on the way). */
static dl_status load_chunk(zsource *zs, dl_ctx *ctx, uint64_t k, slot **out)
{
    cursor *c = cursor_get(zs, ctx);
    if (!c)
        return DL_ECORRUPT;
    uint64_t start = k * CHUNK, end = start + CHUNK < zs->ix.size ? start + CHUNK : zs->ix.size;
    const dl_zpoint *p = find_point(&zs->ix, end);
    dl_status st = DL_OK;
    if (!c->active || c->out > start || c->out < p->out) {
        if ((st = restart(zs, ctx, c, p)) != DL_OK) {
            c->active = 0;
            return st;
        }
        c->out = p->out;
    }
    for (;;) {
        uint64_t j = c->out / CHUNK, s = j * CHUNK, e = s + CHUNK < zs->ix.size ? s + CHUNK : zs->ix.size;
        size_t head = (size_t)(c->out - s), got;
        if (head) /* just restarted mid-chunk: its head is the window's tail */
            memcpy(c->chunk, c->win + (p->wraw - head), head);
        int ev;
        st = advance(zs, ctx, c, c->chunk + head, (size_t)(e - c->out), 0, &got, &ev);
        if (st == DL_OK && c->out != e)
            st = dl_fail(ctx, DL_ECORRUPT, "%s: stream ends at 0x%llx, before its indexed size 0x%llx", zs->fr.name,
                         (unsigned long long)c->out, (unsigned long long)zs->ix.size);
        if (st != DL_OK) {
            c->active = 0;
            return st;
        }
        slot *sl = cache_put(zs, j, c->chunk, (uint32_t)(e - s));
        if (!sl)
            return dl_fail(ctx, DL_ECORRUPT, "out of memory");
        if (j == k) {
            *out = sl;
            return DL_OK;
        }
    }
}

static dl_status zs_read(dl_source *src, dl_ctx *ctx, uint64_t off, void *buf, size_t len)
{
    zsource *zs = (zsource *)src;
    if (off > src->size || len > src->size - off)
        return dl_fail(ctx, DL_ECORRUPT, "read of %zu bytes at offset 0x%llx passes the end of the file (0x%llx)", len,
                       (unsigned long long)off, (unsigned long long)src->size);
    uint8_t *dst = buf;
    while (len) {
        uint64_t k = off / CHUNK;
        slot *sl = cache_find(zs, k);
        if (!sl) {
            dl_status st = load_chunk(zs, ctx, k, &sl);
            if (st != DL_OK)
                return st;
        }
        size_t at = (size_t)(off % CHUNK), n = sl->len - at < len ? sl->len - at : len;
        memcpy(dst, sl->buf + at, n);
        dst += n;
        off += n;
        len -= n;
    }
    return DL_OK;
}

/* Only a cached chunk is lent: the pointer lives until the next call. */
static const uint8_t *zs_view(dl_source *src, uint64_t off, size_t len)
{
    zsource *zs = (zsource *)src;
    if (off > src->size || len > src->size - off || (off % CHUNK) + len > CHUNK)
        return NULL;
    slot *sl = cache_find(zs, off / CHUNK);
    return sl ? sl->buf + off % CHUNK : NULL;
}

static void zs_close(dl_source *src)
{
    zsource *zs = (zsource *)src;
    if (zs->c && zs->c->zinit)
        inflateEnd(&zs->c->z);
    free(zs->c);
    for (size_t i = 0; i < SETS * WAYS; i++)
        free(zs->slots[i].buf);
    dl_zindex_free(&zs->ix);
    free(zs->fr.arg);
    if (zs->own_file)
        dl_source_close(zs->file);
    free(zs);
}

dl_status dl_zsource_open(dl_ctx *ctx, dl_source *file, int own_file, const dl_zframing *fr,
                          const dl_open_options *opts, dl_source **out)
{
    zsource *zs = calloc(1, sizeof *zs);
    if (!zs) {
        free(fr->arg);
        if (own_file)
            dl_source_close(file);
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    }
    zs->file = file;
    zs->own_file = own_file;
    zs->fr = *fr;
    zs->base.read = zs_read;
    zs->base.view = zs_view;
    zs->base.close = zs_close;
    zs->base.path = file->path;
    dl_zkey key;
    char path[4096];
    int cached = dl_zcache_path(ctx, opts, file, fr, &key, path, sizeof path);
    if (!cached || dl_zcache_load(path, &key, file->size, &zs->ix) != 0) {
        dl_zindex_free(&zs->ix);
        dl_status st = build(zs, ctx, opts);
        if (st != DL_OK) {
            zs_close(&zs->base);
            return st;
        }
        if (cached)
            dl_zcache_save(path, &key, &zs->ix);
    }
    zs->base.size = zs->ix.size;
    *out = &zs->base;
    return DL_OK;
}

void dl_zindex_free(dl_zindex *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        free(ix->pt[i].wz);
    free(ix->pt);
    memset(ix, 0, sizeof *ix);
}

size_t dl_inflate_peek(dl_ctx *ctx, dl_source *file, uint64_t off, uint64_t avail, void *buf, size_t len)
{
    uint8_t in[4096];
    size_t n = avail < sizeof in ? (size_t)avail : sizeof in;
    if (off > file->size || n > file->size - off || dl_source_read(file, ctx, off, in, n) != DL_OK)
        return 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK)
        return 0;
    z.next_in = in;
    z.avail_in = (uInt)n;
    z.next_out = buf;
    z.avail_out = (uInt)len;
    inflate(&z, Z_SYNC_FLUSH);
    size_t got = len - z.avail_out;
    inflateEnd(&z);
    return got;
}
