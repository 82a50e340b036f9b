/* Hostile input: the forge's defects, and every good dump truncated at
 * its structure boundaries and corrupted byte by byte in the header. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "matrix.h"

Test(bad, forge_defects_give_their_exit_code)
{
    size_t n = 0;
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        if (!f->defect)
            continue;
        json_t *expect = json_object_get(f->truth, "expect");
        int want = (int)json_integer_value(json_object_get(expect, "exit"));
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = NULL;
        dl_status st = dl_open(ctx, f->dump, NULL, &d);
        /* Wrapped dumps are read through the wrapper byte source now. */
        int wrapper = !strcmp(f->defect, "gzip") || !strcmp(f->defect, "zip") || !strcmp(f->defect, "cab");
        if (wrapper && st == DL_OK) {
            cr_expect_str_eq(dl_get_info(d)->wrapper, f->defect, "%s: wrapper not reported", f->dump);
        } else if (want >= 3) {
            cr_expect_eq(st, want, "%s (%s): open gave %d, expected %d: %s", f->dump, f->defect, st, want,
                         dl_ctx_error(ctx));
            cr_expect(strlen(dl_ctx_error(ctx)) > 0 && !strchr(dl_ctx_error(ctx), '\n'), "%s: one-line message",
                      f->dump);
        } else if (st == DL_OK) {
            const dl_modules *m;
            dl_get_modules(d, &m); /* must not crash; partial results allowed */
        }
        dl_close(d);
        dl_ctx_free(ctx);
        n++;
    }
    cr_expect_gt(n, 5, "too few defects in the matrix (%zu)", n);
}

static char *copy_prefix(const char *src, off_t len)
{
    static int seq;
    char *path = malloc(64);
    snprintf(path, 64, "/tmp/dl-trunc-%d-%d.dmp", (int)getpid(), seq++);
    int in = open(src, O_RDONLY), out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(in >= 0 && out >= 0);
    char buf[65536];
    off_t done = 0;
    while (done < len) {
        ssize_t want = len - done < (off_t)sizeof buf ? (ssize_t)(len - done) : (ssize_t)sizeof buf;
        ssize_t r = read(in, buf, (size_t)want);
        if (r <= 0)
            break;
        cr_assert_eq(write(out, buf, (size_t)r), r);
        done += r;
    }
    close(in);
    close(out);
    return path;
}

/* Open and walk everything; the only requirement is a clean status. */
static dl_status exercise(const char *path)
{
    dl_ctx *ctx = dl_ctx_new();
    dl_dump *d = NULL;
    dl_status st = dl_open(ctx, path, NULL, &d);
    if (st == DL_OK) {
        const dl_modules *m;
        dl_get_modules(d, &m);
        uint8_t b[64];
        dl_read_virt(d, dl_get_info(d)->kdbg_address, b, sizeof b);
    } else {
        cr_expect(st == DL_ECORRUPT || st == DL_EUNSUPPORTED, "%s: status %d", path, st);
        cr_expect(strlen(dl_ctx_error(ctx)) > 0, "%s: empty message", path);
    }
    dl_close(d);
    dl_ctx_free(ctx);
    return st;
}

Test(bad, truncation_at_structure_boundaries)
{
    const char *seen[16];
    size_t nseen = 0;
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        if (f->defect)
            continue;
        /* One dump per (arch, type) is enough. */
        char key[32];
        snprintf(key, sizeof key, "%s/%d", f->arch, f->type);
        int dup = 0;
        for (size_t k = 0; k < nseen; k++)
            dup |= !strcmp(seen[k], key);
        if (dup || nseen == 16)
            continue;
        seen[nseen++] = strdup(key);
        struct stat sb;
        cr_assert_eq(stat(f->dump, &sb), 0);
        int hs = f->arch[1] == '8' ? 0x1000 : 0x2000; /* x86* vs x64/arm64 */
        off_t cuts[] = {0,
                        1,
                        4,
                        7,
                        8,
                        0x20,
                        0x88,
                        0x400,
                        hs - 1,
                        hs,
                        hs + 4,
                        hs + 0x20,
                        hs + 0x38,
                        hs + 0x80,
                        hs + 0x1000,
                        hs + 0x3000,
                        sb.st_size / 2,
                        sb.st_size - 4096,
                        sb.st_size - 1};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            if (cuts[c] < 0 || cuts[c] >= sb.st_size)
                continue;
            char *p = copy_prefix(f->dump, cuts[c]);
            dl_status st = exercise(p);
            if (cuts[c] < hs)
                cr_expect_eq(st, DL_ECORRUPT, "%s cut at %lld: %d", f->dump, (long long)cuts[c], st);
            unlink(p);
            free(p);
        }
    }
    for (size_t k = 0; k < nseen; k++)
        free((char *)seen[k]);
    cr_expect_gt(nseen, 5);
}

/* Flip bytes of the header and the body header: never a crash. */
Test(bad, header_bit_flips)
{
    unsigned seed = 12345;
    size_t done = 0;
    for (size_t i = 0; i < matrix_count() && done < 12; i++) {
        const forged *f = matrix_get(i);
        struct stat sb;
        if (f->defect || stat(f->dump, &sb) || sb.st_size > (64 << 20))
            continue;
        done++;
        for (int round = 0; round < 40; round++) {
            char *p = copy_prefix(f->dump, sb.st_size);
            int fd = open(p, O_RDWR);
            for (int k = 0; k < 4; k++) {
                seed = seed * 1103515245u + 12345u;
                off_t at = (off_t)((seed >> 8) % 0x2100u);
                uint8_t v = (uint8_t)(seed >> 3);
                cr_assert_eq(pwrite(fd, &v, 1, at), 1);
            }
            close(fd);
            exercise(p);
            unlink(p);
            free(p);
        }
    }
}
