/* Microsoft cabinet ([MS-CAB]): CFHEADER, CFFOLDERs, CFFILEs; each folder
 * is one stream of CFDATA blocks, MSZIP ('CK' + raw deflate, <= 32 KiB out,
 * the previous output as dictionary) or stored.  The dump is the best-
 * ranked file (dl_member_rank). */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "inflate_index.h"

#define HDR 36u
#define FILE_MIN 17u /* CFFILE with a one-byte name */
#define MSZIP_MAX 32768u

typedef struct folder {
    uint32_t start; /* first CFDATA */
    uint16_t ndata;
    uint16_t type; /* typeCompress & 0xF */
} folder;

typedef struct cfile {
    uint32_t size, uoff;
    uint16_t folder;
    char name[64];
} cfile;

typedef struct cab {
    dl_source *file;
    uint32_t start;
    uint16_t ndata, folder;
    uint8_t data_resv;
    int mszip;
} cab;

static const char *type_name(uint16_t t)
{
    static const char *const names[] = {"none", "MSZIP", "Quantum", "LZX"};
    return t < 4 ? names[t] : "unknown";
}

static dl_status rd(dl_source *f, dl_ctx *ctx, uint64_t off, void *buf, size_t len, const char *what)
{
    if (off > f->size || len > f->size - off)
        return dl_fail(ctx, DL_ECORRUPT, "CAB: %s at offset 0x%llx passes the end of the file (0x%llx)", what,
                       (unsigned long long)off, (unsigned long long)f->size);
    return dl_source_read(f, ctx, off, buf, len);
}

static dl_status cab_next(void *arg, dl_ctx *ctx, const dl_zunit *prev, uint64_t end, dl_zunit *u, int *more)
{
    cab *c = arg;
    (void)end;
    uint32_t i = prev ? prev->index + 1 : 0;
    *more = 0;
    if (i >= c->ndata)
        return DL_OK;
    /* The next block follows the previous one's data, wherever inflate stopped. */
    uint64_t h = prev ? prev->in_off + prev->in_len : c->start;
    uint8_t b[8];
    dl_status st = rd(c->file, ctx, h, b, 8, "data block header");
    if (st != DL_OK)
        return st;
    uint16_t clen = dl_le16(b + 4), ulen = dl_le16(b + 6);
    uint64_t data = h + 8 + c->data_resv;
    if (data > c->file->size || clen > c->file->size - data)
        return dl_fail(ctx, DL_ECORRUPT,
                       "CAB: block %u of folder %u (offset 0x%llx, %u bytes) passes the end of the file", i, c->folder,
                       (unsigned long long)h, clen);
    if (ulen == 0 || ulen > MSZIP_MAX || (!c->mszip && ulen != clen))
        return dl_fail(ctx, DL_ECORRUPT, "CAB: block %u of folder %u at offset 0x%llx declares %u bytes", i, c->folder,
                       (unsigned long long)h, ulen);
    memset(u, 0, sizeof *u);
    u->index = i;
    u->out_len = ulen;
    if (c->mszip) {
        uint8_t ck[2];
        if (clen < 2 || (st = dl_source_read(c->file, ctx, data, ck, 2)) != DL_OK || ck[0] != 'C' || ck[1] != 'K')
            return st != DL_OK ? st
                               : dl_fail(ctx, DL_ECORRUPT, "CAB: block %u of folder %u at offset 0x%llx lacks its 'CK'",
                                         i, c->folder, (unsigned long long)h);
        u->in_off = data + 2;
        u->in_len = clen - 2u;
        u->keep_dict = i > 0;
    } else {
        u->in_off = data;
        u->in_len = clen;
        u->stored = 1;
    }
    *more = 1;
    return DL_OK;
}

/* Skip a NUL-terminated string at *off (at most 256 bytes, per the spec),
 * copying a printable prefix into name when given. */
static dl_status skip_sz(dl_source *f, dl_ctx *ctx, uint64_t *off, char *name, size_t cap)
{
    uint8_t b[257];
    size_t n = f->size - *off < sizeof b ? (size_t)(f->size - *off) : sizeof b;
    dl_status st = *off > f->size ? DL_ECORRUPT : dl_source_read(f, ctx, *off, b, n);
    const uint8_t *z = st == DL_OK ? memchr(b, 0, n) : NULL;
    if (!z)
        return st != DL_OK && st != DL_ECORRUPT
                   ? st
                   : dl_fail(ctx, DL_ECORRUPT, "CAB: unterminated name at offset 0x%llx", (unsigned long long)*off);
    size_t len = (size_t)(z - b);
    if (name) {
        size_t k = len < cap - 1 ? len : cap - 1;
        for (size_t i = 0; i < k; i++)
            name[i] = b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' ? (char)b[i] : '?';
        name[k] = 0;
    }
    *off += len + 1;
    return DL_OK;
}

typedef struct layout {
    folder *folders;
    cfile *files;
    uint16_t nfolders, nfiles;
    uint8_t data_resv;
} layout;

static dl_status parse(dl_source *f, dl_ctx *ctx, layout *L)
{
    uint8_t h[HDR + 4];
    dl_status st = rd(f, ctx, 0, h, HDR, "header");
    if (st != DL_OK)
        return st;
    uint16_t flags = dl_le16(h + 30);
    if (flags & 3)
        return dl_fail(ctx, DL_EUNSUPPORTED, "unsupported compression: multi-part cabinet (set %u, part %u)",
                       dl_le16(h + 32), dl_le16(h + 34));
    L->nfolders = dl_le16(h + 26);
    L->nfiles = dl_le16(h + 28);
    uint32_t coff_files = dl_le32(h + 16);
    uint64_t off = HDR;
    uint16_t hdr_resv = 0;
    uint8_t folder_resv = 0;
    if (flags & 4) {
        if ((st = rd(f, ctx, HDR, h + HDR, 4, "reserve sizes")) != DL_OK)
            return st;
        hdr_resv = dl_le16(h + HDR);
        folder_resv = h[HDR + 2];
        L->data_resv = h[HDR + 3];
        off += 4 + (uint64_t)hdr_resv;
    }
    if (L->nfolders == 0 || L->nfiles == 0)
        return dl_fail(ctx, DL_ECORRUPT, "CAB: the cabinet holds %u folders and %u files", L->nfolders, L->nfiles);
    if (f->size < off || (f->size - off) / (8u + folder_resv) < L->nfolders || coff_files > f->size ||
        (f->size - coff_files) / FILE_MIN < L->nfiles)
        return dl_fail(ctx, DL_ECORRUPT, "CAB: %u folders and %u files cannot fit a file of %llu bytes", L->nfolders,
                       L->nfiles, (unsigned long long)f->size);
    L->folders = calloc(L->nfolders, sizeof *L->folders);
    L->files = calloc(L->nfiles, sizeof *L->files);
    if (!L->folders || !L->files)
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    for (uint16_t i = 0; i < L->nfolders; i++, off += 8u + folder_resv) {
        uint8_t b[8];
        if ((st = rd(f, ctx, off, b, 8, "folder entry")) != DL_OK)
            return st;
        L->folders[i] = (folder){.start = dl_le32(b), .ndata = dl_le16(b + 4), .type = dl_le16(b + 6) & 0xF};
    }
    off = coff_files;
    for (uint16_t i = 0; i < L->nfiles; i++) {
        uint8_t b[16];
        cfile *c = &L->files[i];
        if ((st = rd(f, ctx, off, b, 16, "file entry")) != DL_OK)
            return st;
        c->size = dl_le32(b);
        c->uoff = dl_le32(b + 4);
        c->folder = dl_le16(b + 8);
        off += 16;
        if ((st = skip_sz(f, ctx, &off, c->name, sizeof c->name)) != DL_OK)
            return st;
        if (c->folder >= 0xFFFD)
            return dl_fail(ctx, DL_EUNSUPPORTED, "unsupported compression: file \"%s\" continues in another cabinet",
                           c->name);
        if (c->folder >= L->nfolders)
            return dl_fail(ctx, DL_ECORRUPT, "CAB: file \"%s\" names folder %u of %u", c->name, c->folder, L->nfolders);
    }
    return DL_OK;
}

static dl_status open_folder(dl_ctx *ctx, dl_source *f, const dl_open_options *opts, const layout *L, uint16_t i,
                             dl_source **out)
{
    const folder *fo = &L->folders[i];
    if (fo->type != 0 && fo->type != 1)
        return dl_fail(ctx, DL_EUNSUPPORTED, "unsupported compression %s (CAB folder %u)", type_name(fo->type), i);
    cab *c = calloc(1, sizeof *c);
    if (!c)
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    *c = (cab){.file = f,
               .start = fo->start,
               .ndata = fo->ndata,
               .folder = i,
               .data_resv = L->data_resv,
               .mszip = fo->type == 1};
    dl_zframing fr = {.name = "CAB", .stream_id = fo->start, .next = cab_next, .arg = c};
    return dl_zsource_open(ctx, f, 0, &fr, opts, out);
}

static int in_folder(const dl_source *s, const cfile *c)
{
    return c->uoff <= s->size && c->size <= s->size - c->uoff;
}

/* Rank the files of every MSZIP/stored folder (see dl_member_rank); keep
 * the folder of the best one open. */
static dl_status choose(dl_ctx *ctx, dl_source *f, const dl_open_options *opts, const layout *L, dl_source **out)
{
    dl_source *best_src = NULL;
    const cfile *pick = NULL;
    int best = -1;
    dl_status st = DL_OK;
    for (uint16_t i = 0; i < L->nfiles && best < 2 && st == DL_OK; i++) {
        uint16_t fo = L->files[i].folder, t = L->folders[fo].type;
        int seen = 0;
        for (uint16_t j = 0; j < i; j++)
            seen |= L->files[j].folder == fo;
        if (seen || (t != 0 && t != 1))
            continue;
        dl_source *s = NULL;
        if ((st = open_folder(ctx, f, opts, L, fo, &s)) != DL_OK)
            break;
        int mine = 0;
        for (uint16_t j = i; j < L->nfiles && best < 2; j++) {
            const cfile *c = &L->files[j];
            uint8_t b[DL_PEEK];
            size_t n = c->size < sizeof b ? c->size : sizeof b;
            if (c->folder != fo || !in_folder(s, c))
                continue;
            int r = dl_source_read(s, ctx, c->uoff, b, n) == DL_OK ? dl_member_rank(b, n) : 0;
            dl_ctx_clear_error(ctx);
            if (r > best || (r == 0 && best == 0 && c->size > pick->size)) {
                best = r;
                pick = c;
                mine = 1;
            }
        }
        if (mine) {
            dl_source_close(best_src);
            best_src = s;
        } else {
            dl_source_close(s);
        }
    }
    if (st == DL_OK && !pick) /* only LZX/Quantum folders, or files outside their folder */
        st = open_folder(ctx, f, opts, L, L->files[0].folder, &best_src);
    if (st == DL_OK && !pick)
        st = dl_fail(ctx, DL_ECORRUPT,
                     "CAB: file \"%s\" (offset 0x%x, %u bytes) passes the end of folder %u (0x%llx bytes)",
                     L->files[0].name, L->files[0].uoff, L->files[0].size, L->files[0].folder,
                     (unsigned long long)best_src->size);
    if (st != DL_OK) {
        dl_source_close(best_src);
        dl_source_close(f);
        return st;
    }
    return dl_slice_open(ctx, best_src, f, pick->uoff, pick->size, out);
}

dl_status dl_unwrap_cab(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out)
{
    layout L = {0};
    dl_status st = parse(file, ctx, &L);
    if (st == DL_OK)
        st = choose(ctx, file, opts, &L, out); /* owns file */
    else
        dl_source_close(file);
    free(L.folders);
    free(L.files);
    return st;
}
