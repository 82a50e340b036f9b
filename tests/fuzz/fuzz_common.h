/* Shared by the libFuzzer targets.  dl_open takes a path, so every input is
 * served from a memfd as /proc/self/fd/N: no disk traffic, nothing left
 * behind, one file per process so parallel fuzzers never collide. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dumpleak.h"

/* A broken invariant is a lie the analyzer would print: make it a crash so
 * libFuzzer keeps the input. */
#define FZ_ASSERT(cond)                                                                                                \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                               \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* UBSan checks are built recoverable only so that known, not yet fixed
 * findings can be suppressed (FUZZ_KNOWN=1); anything else still halts. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

typedef struct fz_file {
    int fd;
    char path[64];
} fz_file;

static inline void fz_file_open(fz_file *f, const char *name)
{
    f->fd = memfd_create(name, MFD_CLOEXEC);
    if (f->fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

static inline void fz_pwrite(fz_file *f, const void *p, size_t n, uint64_t off)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = pwrite(f->fd, b, n, (off_t)off);
        if (w <= 0) {
            perror("pwrite");
            abort();
        }
        b += w, n -= (size_t)w, off += (uint64_t)w;
    }
}

/* Replace the whole content (ftruncate to 0 first drops old pages). */
static inline void fz_file_set(fz_file *f, const uint8_t *p, size_t n)
{
    if (ftruncate(f->fd, 0) != 0 || ftruncate(f->fd, (off_t)n) != 0)
        abort();
    fz_pwrite(f, p, n, 0);
}

/* DUMPLEAK_FUZZ_SAVE=FILE: copy the dump a target built from its input to
 * FILE, so a finding becomes a plain dump for testdata/regress. */
static inline void fz_maybe_save(fz_file *f)
{
    const char *out = getenv("DUMPLEAK_FUZZ_SAVE");
    if (!out)
        return;
    FILE *o = fopen(out, "wb");
    if (!o) {
        perror(out);
        return;
    }
    off_t size = lseek(f->fd, 0, SEEK_END);
    uint8_t buf[65536];
    for (off_t off = 0; off < size;) {
        ssize_t r = pread(f->fd, buf, sizeof buf, off);
        if (r <= 0)
            break;
        static const uint8_t zeros[sizeof buf];
        if (!memcmp(buf, zeros, (size_t)r)) /* keep it sparse */
            fseeko(o, off + r, SEEK_SET);
        else if (fseeko(o, off, SEEK_SET) || fwrite(buf, 1, (size_t)r, o) != (size_t)r)
            break;
        off += r;
    }
    if (ftruncate(fileno(o), size) != 0)
        perror("ftruncate");
    fclose(o);
}

static inline size_t fz_strlen(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Strings the CLI prints must be valid UTF-8 (JSON output depends on it). */
static inline int fz_utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (p && *p) {
        int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0)
            return 0;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return 0;
    }
    return 1;
}

/* Touch every warning and the error so ASan sees them as readable. */
static inline void fz_touch_ctx(dl_ctx *ctx)
{
    volatile size_t sink = fz_strlen(dl_ctx_error(ctx));
    size_t n = dl_ctx_warning_count(ctx);
    for (size_t i = 0; i < n; i++) {
        const dl_warning *w = dl_ctx_warning(ctx, i);
        FZ_ASSERT(w && w->code && w->message);
        sink += strlen(w->code) + strlen(w->message);
    }
    FZ_ASSERT(dl_ctx_warning(ctx, n) == NULL);
    (void)sink;
}

static inline int fz_has_warning(dl_ctx *ctx, const char *code)
{
    for (size_t i = 0; i < dl_ctx_warning_count(ctx); i++)
        if (!strcmp(dl_ctx_warning(ctx, i)->code, code))
            return 1;
    return 0;
}

/* Header facts and the physical map: every field readable, extents sorted,
 * disjoint, inside the file and adding up to pages_present. */
static inline void fz_check_info(dl_dump *d, uint64_t file_size)
{
    const dl_info *in = dl_get_info(d);
    FZ_ASSERT(in);
    volatile size_t sink = fz_strlen(in->input) + fz_strlen(in->wrapper) + fz_strlen(in->signature) +
                           fz_strlen(in->comment) + fz_strlen(in->dump_type_name) + fz_strlen(in->build_lab) +
                           fz_strlen(dl_bugcheck_name(in->bugcheck_code));
    (void)sink;
    FZ_ASSERT(in->bits == 32 || in->bits == 64);
    FZ_ASSERT(fz_utf8_ok(in->comment) && fz_utf8_ok(in->build_lab));
    size_t n = dl_extent_count(d);
    uint64_t pages = 0, end_pfn = 0;
    for (size_t i = 0; i < n; i++) {
        dl_extent e;
        FZ_ASSERT(dl_extent_get(d, i, &e) == DL_OK);
        FZ_ASSERT(e.pages > 0);
        FZ_ASSERT(i == 0 || e.pfn >= end_pfn);
        end_pfn = e.pfn + e.pages;
        if (!in->wrapper) /* a wrapped dump's offsets are in the inner stream */
            FZ_ASSERT(e.file_offset <= file_size && e.pages <= (file_size - e.file_offset) / 4096);
        pages += e.pages;
    }
    dl_extent e;
    FZ_ASSERT(dl_extent_get(d, n, &e) != DL_OK);
    if (in->has_physical_map)
        FZ_ASSERT(pages == in->pages_present);
}

#endif
