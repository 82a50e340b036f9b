/* Random access into deflate-compressed data: gzip members, a ZIP member,
 * the MSZIP blocks of a CAB folder.  One pass inflates the whole stream and
 * keeps a checkpoint (input position, bit offset, last 32 KiB of output,
 * deflated) every few MiB; a read then restarts raw inflate at the nearest
 * checkpoint, so it inflates at most one span.  Recently inflated 32 KiB
 * chunks are cached.  The checkpoints are saved in the cache directory so
 * that the next run over the same file skips the pass. */
#ifndef DL_INFLATE_INDEX_H
#define DL_INFLATE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "source.h"

#define DL_ZUNIT_OPEN UINT64_MAX

/* A stream is a run of units, each a raw deflate stream (or stored bytes)
 * framed by the wrapper: gzip members, CAB CFDATA blocks, one ZIP member. */
typedef struct dl_zunit {
    uint64_t in_off;   /* first compressed byte, file offset */
    uint64_t in_len;   /* compressed bytes the unit may use */
    uint64_t out_len;  /* bytes it must inflate to, or DL_ZUNIT_OPEN */
    uint32_t index;    /* member / block number */
    uint8_t stored;    /* bytes stored as they are */
    uint8_t keep_dict; /* the output before the unit is its dictionary (MSZIP) */
} dl_zunit;

typedef struct dl_zframing {
    const char *name;   /* "gzip", "ZIP", "CAB": starts every message */
    uint64_t stream_id; /* tells streams of one file apart in the cache key */
    /* The unit after prev (NULL: the first), whose data ended at file
     * offset end; *more = 0 when the stream is complete. */
    dl_status (*next)(void *arg, dl_ctx *ctx, const dl_zunit *prev, uint64_t end, dl_zunit *u, int *more);
    /* Indexing pass only (may be NULL): unit u ended at end after
     * inflating out bytes whose CRC-32 is crc. */
    dl_status (*check)(void *arg, dl_ctx *ctx, const dl_zunit *u, uint64_t end, uint32_t crc, uint64_t out);
    void *arg; /* owned: freed with free() */
} dl_zframing;

typedef struct dl_zpoint {
    uint64_t out;  /* stream offset inflated from here */
    uint64_t in;   /* next compressed byte, file offset */
    uint64_t uout; /* output of the unit before this point */
    dl_zunit unit; /* unit being inflated */
    uint8_t bits;  /* bits of byte in-1 not yet consumed */
    uint8_t fresh; /* at the start of the unit */
    uint32_t wraw; /* window bytes: min(32 KiB, out) */
    uint32_t wlen; /* deflated window bytes */
    uint8_t *wz;   /* deflated window */
} dl_zpoint;

typedef struct dl_zindex {
    dl_zpoint *pt;
    size_t n, cap;
    uint64_t size; /* inflated bytes of the stream */
} dl_zindex;

#define DL_ZWINDOW 32768u

/* Byte source over the inflated stream, indexed now or from the cache.
 * Takes ownership of fr->arg always, and of file when own_file (also on
 * error). */
dl_status dl_zsource_open(dl_ctx *ctx, dl_source *file, int own_file, const dl_zframing *fr,
                          const dl_open_options *opts, dl_source **out);

/* Source over [off, off + size) of parent, closing parent (and also, when
 * not NULL) with it; closes both on error. */
dl_status dl_slice_open(dl_ctx *ctx, dl_source *parent, dl_source *also, uint64_t off, uint64_t size, dl_source **out);

/* Inflate the first bytes of raw deflate data at [off, off + avail) of
 * file into buf; returns how many came out (0 on any failure). */
size_t dl_inflate_peek(dl_ctx *ctx, dl_source *file, uint64_t off, uint64_t avail, void *buf, size_t len);

/* Index cache (inflate_store.c). */
typedef struct dl_zkey {
    uint64_t file_size, mtime, stream_id;
    uint32_t head_crc; /* CRC-32 of the first MiB */
    char kind[8];
} dl_zkey;

/* Cache file for this stream into path; 0 when there is none (no_cache,
 * no path, no home). */
int dl_zcache_path(dl_ctx *ctx, const dl_open_options *opts, dl_source *file, const dl_zframing *fr, dl_zkey *key,
                   char *path, size_t cap);
/* 0 when path holds a sound index for key over a file of file_size bytes. */
int dl_zcache_load(const char *path, const dl_zkey *key, uint64_t file_size, dl_zindex *ix);
void dl_zcache_save(const char *path, const dl_zkey *key, const dl_zindex *ix);
void dl_zindex_free(dl_zindex *ix);

/* Wrapper readers: take ownership of file. */
dl_status dl_unwrap_gzip(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out);
dl_status dl_unwrap_zip(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out);
dl_status dl_unwrap_cab(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out);

/* How a member's first bytes (DL_PEEK of them) rank as the dump: 2 a crash
 * dump signature, 1 another input dumpleak recognises (so its own error
 * shows), 0 anything else.  Ties go to the first member, rank 0 to the
 * largest (notes and manifests are small). */
#define DL_PEEK 16
int dl_member_rank(const uint8_t *p, size_t n);

#endif
