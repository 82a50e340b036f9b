/* ZIP (APPNOTE): the central directory, found from the end-of-central-
 * directory record (and its ZIP64 form), lists the members; the dump is
 * the best-ranked member (dl_member_rank).
 * Stored members are a slice of the file, deflated ones inflate. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "inflate_index.h"

#define EOCD_MIN 22u
#define CDH_MIN 46u
#define MAX_SCAN 64 /* members whose first bytes we look at */

typedef struct member {
    uint64_t csize, usize, local;
    uint32_t crc;
    uint16_t flags, method;
    int is_dir;
    char name[64]; /* for messages, cut */
} member;

typedef struct zarg {
    dl_source *file;
    uint64_t data, csize, usize;
    uint32_t crc;
} zarg;

static dl_status rd(dl_source *f, dl_ctx *ctx, uint64_t off, void *buf, size_t len, const char *what)
{
    if (off > f->size || len > f->size - off)
        return dl_fail(ctx, DL_ECORRUPT, "ZIP: %s at offset 0x%llx passes the end of the file (0x%llx)", what,
                       (unsigned long long)off, (unsigned long long)f->size);
    return dl_source_read(f, ctx, off, buf, len);
}

/* Locate the end-of-central-directory record: the last 'PK\5\6' whose
 * comment reaches the end of the file. */
static dl_status find_eocd(dl_source *f, dl_ctx *ctx, uint64_t *at)
{
    uint64_t span = f->size < EOCD_MIN + 65535u ? f->size : EOCD_MIN + 65535u;
    uint8_t *b = malloc(span ? (size_t)span : 1);
    if (!b)
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    dl_status st = dl_source_read(f, ctx, f->size - span, b, (size_t)span);
    for (uint64_t i = span >= EOCD_MIN ? span - EOCD_MIN + 1 : 0; st == DL_OK && i-- > 0;)
        if (!memcmp(b + i, "PK\5\6", 4) && i + EOCD_MIN + dl_le16(b + i + 20) <= span) {
            *at = f->size - span + i;
            free(b);
            return DL_OK;
        }
    free(b);
    if (st != DL_OK)
        return st;
    return dl_fail(ctx, DL_ECORRUPT,
                   "ZIP: end of central directory not found in the last %llu bytes (truncated archive?)",
                   (unsigned long long)span);
}

static dl_status read_directory(dl_source *f, dl_ctx *ctx, uint64_t *cd_off, uint64_t *cd_size, uint64_t *count)
{
    uint64_t e = 0;
    dl_status st = find_eocd(f, ctx, &e);
    uint8_t b[56];
    if (st != DL_OK || (st = rd(f, ctx, e, b, EOCD_MIN, "end of central directory")) != DL_OK)
        return st;
    if (dl_le16(b + 4) != 0 || dl_le16(b + 6) != 0 || dl_le16(b + 8) != dl_le16(b + 10))
        return dl_fail(ctx, DL_EUNSUPPORTED, "unsupported compression: split (multi-disk) ZIP archive");
    *count = dl_le16(b + 10);
    *cd_size = dl_le32(b + 12);
    *cd_off = dl_le32(b + 16);
    /* ZIP64: a locator right before the EOCD points at the 64-bit record. */
    if (e >= 20 && (st = rd(f, ctx, e - 20, b, 20, "ZIP64 locator")) == DL_OK && !memcmp(b, "PK\6\7", 4)) {
        uint64_t r = dl_le64(b + 8);
        if ((st = rd(f, ctx, r, b, 56, "ZIP64 end of central directory")) != DL_OK)
            return st;
        if (memcmp(b, "PK\6\6", 4))
            return dl_fail(ctx, DL_ECORRUPT, "ZIP: no ZIP64 end of central directory at offset 0x%llx",
                           (unsigned long long)r);
        *count = dl_le64(b + 32);
        *cd_size = dl_le64(b + 40);
        *cd_off = dl_le64(b + 48);
    } else if (st != DL_OK) {
        return st;
    }
    if (*cd_off > f->size || *cd_size > f->size - *cd_off)
        return dl_fail(ctx, DL_ECORRUPT,
                       "ZIP: central directory (offset 0x%llx, %llu bytes) passes the end of the file",
                       (unsigned long long)*cd_off, (unsigned long long)*cd_size);
    if (*count == 0)
        return dl_fail(ctx, DL_ECORRUPT, "ZIP: the archive holds no members");
    if (*count > *cd_size / CDH_MIN)
        return dl_fail(ctx, DL_ECORRUPT, "ZIP: %llu members cannot fit a central directory of %llu bytes",
                       (unsigned long long)*count, (unsigned long long)*cd_size);
    return DL_OK;
}

/* Parse the central-directory header at *off into m; *off moves past it. */
static dl_status parse_entry(dl_source *f, dl_ctx *ctx, uint64_t *off, uint64_t cd_end, member *m)
{
    uint8_t h[CDH_MIN];
    if (cd_end - *off < CDH_MIN)
        return dl_fail(ctx, DL_ECORRUPT, "ZIP: central directory truncated at offset 0x%llx", (unsigned long long)*off);
    dl_status st = dl_source_read(f, ctx, *off, h, CDH_MIN);
    if (st != DL_OK)
        return st;
    if (memcmp(h, "PK\1\2", 4))
        return dl_fail(ctx, DL_ECORRUPT, "ZIP: bad central directory header at offset 0x%llx",
                       (unsigned long long)*off);
    uint16_t nlen = dl_le16(h + 28), xlen = dl_le16(h + 30), clen = dl_le16(h + 32);
    uint64_t var = *off + CDH_MIN;
    if (cd_end - var < (uint64_t)nlen + xlen + clen)
        return dl_fail(ctx, DL_ECORRUPT, "ZIP: central directory entry at offset 0x%llx passes its end",
                       (unsigned long long)*off);
    memset(m, 0, sizeof *m);
    m->flags = dl_le16(h + 8);
    m->method = dl_le16(h + 10);
    m->crc = dl_le32(h + 16);
    m->csize = dl_le32(h + 20);
    m->usize = dl_le32(h + 24);
    m->local = dl_le32(h + 42);
    uint8_t name[sizeof m->name];
    size_t keep = nlen < sizeof name - 1 ? nlen : sizeof name - 1;
    if ((st = dl_source_read(f, ctx, var, name, keep)) != DL_OK)
        return st;
    for (size_t i = 0; i < keep; i++)
        m->name[i] = name[i] >= 0x20 && name[i] < 0x7f && name[i] != '"' ? (char)name[i] : '?';
    if (nlen) {
        uint8_t last;
        if ((st = dl_source_read(f, ctx, var + nlen - 1, &last, 1)) != DL_OK)
            return st;
        m->is_dir = last == '/';
    }
    /* ZIP64 extra (0x0001): the 64-bit values of the fields set to ~0. */
    uint64_t x = var + nlen, xend = x + xlen;
    while (xend - x >= 4) {
        uint8_t t[4], v[24];
        if ((st = dl_source_read(f, ctx, x, t, 4)) != DL_OK)
            return st;
        uint16_t id = dl_le16(t), sz = dl_le16(t + 2);
        if (xend - x - 4 < sz)
            return dl_fail(ctx, DL_ECORRUPT, "ZIP: extra field at offset 0x%llx passes its entry",
                           (unsigned long long)x);
        if (id == 1) {
            size_t n = sz < sizeof v ? sz : sizeof v, at = 0;
            if ((st = dl_source_read(f, ctx, x + 4, v, n)) != DL_OK)
                return st;
            uint64_t *fields[] = {&m->usize, &m->csize, &m->local};
            uint64_t full[] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
            for (int i = 0; i < 3; i++)
                if (*fields[i] == full[i]) {
                    if (n - at < 8)
                        return dl_fail(ctx, DL_ECORRUPT, "ZIP: ZIP64 extra field at offset 0x%llx too short",
                                       (unsigned long long)x);
                    *fields[i] = dl_le64(v + at);
                    at += 8;
                }
        }
        x += 4 + (uint64_t)sz;
    }
    *off = xend + clen;
    return DL_OK;
}

/* Where the member's data starts: after its local header. */
static dl_status data_offset(dl_source *f, dl_ctx *ctx, const member *m, uint64_t *data)
{
    uint8_t h[30];
    dl_status st = rd(f, ctx, m->local, h, sizeof h, "local header");
    if (st != DL_OK)
        return st;
    if (memcmp(h, "PK\3\4", 4))
        return dl_fail(ctx, DL_ECORRUPT, "ZIP: bad local header of \"%s\" at offset 0x%llx", m->name,
                       (unsigned long long)m->local);
    *data = m->local + 30 + dl_le16(h + 26) + dl_le16(h + 28);
    if (*data > f->size || m->csize > f->size - *data)
        return dl_fail(ctx, DL_ECORRUPT, "ZIP: data of \"%s\" (offset 0x%llx, %llu bytes) passes the end of the file",
                       m->name, (unsigned long long)*data, (unsigned long long)m->csize);
    return DL_OK;
}

static const char *method_name(uint16_t m)
{
    switch (m) {
    case 1:
        return "Shrink";
    case 6:
        return "Implode";
    case 9:
        return "Deflate64";
    case 12:
        return "bzip2";
    case 14:
        return "LZMA";
    case 93:
        return "Zstandard";
    case 95:
        return "XZ";
    case 98:
        return "PPMd";
    case 99:
        return "AES encryption";
    default:
        return NULL;
    }
}

static int rank(dl_source *f, dl_ctx *ctx, const member *m)
{
    uint64_t data;
    uint8_t b[DL_PEEK];
    size_t n = 0;
    if (m->is_dir || (m->flags & 1) || (m->method != 0 && m->method != 8) || data_offset(f, ctx, m, &data) != DL_OK) {
        dl_ctx_clear_error(ctx);
        return 0;
    }
    if (m->method == 0) {
        n = m->csize < sizeof b ? (size_t)m->csize : sizeof b;
        if (dl_source_read(f, ctx, data, b, n) != DL_OK)
            n = 0;
    } else {
        n = dl_inflate_peek(ctx, f, data, m->csize, b, sizeof b);
    }
    dl_ctx_clear_error(ctx);
    return dl_member_rank(b, n);
}

static dl_status z_next(void *arg, dl_ctx *ctx, const dl_zunit *prev, uint64_t end, dl_zunit *u, int *more)
{
    zarg *z = arg;
    (void)ctx;
    (void)end;
    *more = prev == NULL;
    memset(u, 0, sizeof *u);
    u->in_off = z->data;
    u->in_len = z->csize;
    u->out_len = z->usize;
    return DL_OK;
}

static dl_status z_check(void *arg, dl_ctx *ctx, const dl_zunit *u, uint64_t end, uint32_t crc, uint64_t out)
{
    zarg *z = arg;
    (void)u;
    (void)end;
    (void)out;
    if (crc != z->crc)
        return dl_fail(ctx, DL_ECORRUPT, "ZIP: CRC mismatch in the member at offset 0x%llx: data corrupt",
                       (unsigned long long)z->data);
    return DL_OK;
}

/* Check what the member needs, before handing file over. */
static dl_status member_ok(dl_ctx *ctx, dl_source *f, const member *m, uint64_t *data)
{
    const char *mn = method_name(m->method);
    if ((m->flags & 1) || m->method == 99)
        return dl_fail(ctx, DL_EUNSUPPORTED, "unsupported compression: encrypted ZIP member \"%s\"", m->name);
    if (m->method != 0 && m->method != 8)
        return mn ? dl_fail(ctx, DL_EUNSUPPORTED, "unsupported compression %s (ZIP method %u, member \"%s\")", mn,
                            m->method, m->name)
                  : dl_fail(ctx, DL_EUNSUPPORTED, "unsupported compression method %u (ZIP member \"%s\")", m->method,
                            m->name);
    dl_status st = data_offset(f, ctx, m, data);
    if (st == DL_OK && m->method == 0 && m->csize != m->usize)
        st = dl_fail(ctx, DL_ECORRUPT, "ZIP: stored member \"%s\" has sizes %llu and %llu", m->name,
                     (unsigned long long)m->csize, (unsigned long long)m->usize);
    return st;
}

dl_status dl_unwrap_zip(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out)
{
    uint64_t cd_off = 0, cd_size = 0, count = 0, off;
    dl_status st = read_directory(file, ctx, &cd_off, &cd_size, &count);
    member m, pick = {0};
    int best = -1;
    off = cd_off;
    for (uint64_t i = 0; st == DL_OK && i < count && best < 2; i++) {
        if ((st = parse_entry(file, ctx, &off, cd_off + cd_size, &m)) != DL_OK)
            break;
        if (m.is_dir)
            continue;
        int r = i < MAX_SCAN ? rank(file, ctx, &m) : 0;
        if (r > best || (r == 0 && best == 0 && m.usize > pick.usize)) {
            best = r;
            pick = m;
        }
    }
    if (st == DL_OK && best < 0)
        st = dl_fail(ctx, DL_ECORRUPT, "ZIP: the archive holds only directories");
    uint64_t data = 0;
    if (st == DL_OK)
        st = member_ok(ctx, file, &pick, &data);
    zarg *z = NULL;
    if (st == DL_OK && pick.method == 8 && !(z = calloc(1, sizeof *z)))
        st = dl_fail(ctx, DL_ECORRUPT, "out of memory");
    if (st != DL_OK) {
        dl_source_close(file);
        return st;
    }
    if (pick.method == 0)
        return dl_slice_open(ctx, file, NULL, data, pick.usize, out);
    *z = (zarg){.file = file, .data = data, .csize = pick.csize, .usize = pick.usize, .crc = pick.crc};
    dl_zframing fr = {.name = "ZIP", .stream_id = data, .next = z_next, .check = z_check, .arg = z};
    return dl_zsource_open(ctx, file, 1, &fr, opts, out);
}
