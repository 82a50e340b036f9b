/* Wrapped byte sources: random reads through gzip, ZIP and CAB wrappers
 * (made by the system's tools) equal the plain bytes; the index cache is
 * used, and rebuilt when damaged; broken wrappers fail with one line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ctx.h"
#include "source.h"

#define PLAIN_SIZE (9u << 20)

static char dir[256];
static uint8_t *plain;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* Pages like a dump's: zeros, repeated structures, noise. */
static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/dl-wrap-test-XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp");
    plain = malloc(PLAIN_SIZE);
    memcpy(plain, "PAGEDU64", 8);
    for (size_t p = 4096; p < PLAIN_SIZE; p += 4096) {
        uint32_t kind = next_rand() % 3;
        for (size_t i = 0; i < 4096; i++)
            plain[p + i] = kind == 0   ? 0
                           : kind == 1 ? (uint8_t)("nt!KiBugCheck "[i % 14] + (p >> 12))
                                       : (uint8_t)next_rand();
    }
    char path[512];
    path_of(path, sizeof path, "MEMORY.DMP");
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(plain, 1, PLAIN_SIZE, f) == PLAIN_SIZE && fclose(f) == 0);
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
    free(plain);
}

static int sh(const char *fmt, const char *tool)
{
    char cmd[1024], which[128];
    snprintf(which, sizeof which, "command -v %s >/dev/null", tool);
    if (system(which) != 0)
        return -1;
    int n = snprintf(cmd, sizeof cmd, "cd '%s' && ", dir);
    snprintf(cmd + n, sizeof cmd - (size_t)n, "%s", fmt);
    return system(cmd);
}

static dl_status open_wrapped(dl_ctx *ctx, const char *name, int no_cache, dl_source **out, const char **wrapper)
{
    char path[512], cache[512];
    path_of(path, sizeof path, name);
    path_of(cache, sizeof cache, "cache");
    dl_open_options o = {.no_cache = no_cache, .cache_dir = cache};
    dl_source *file;
    dl_status st = dl_source_open_file(ctx, path, &file);
    if (st != DL_OK)
        return st;
    return dl_source_unwrap(ctx, file, &o, out, wrapper);
}

static void check_reads(const char *name, const char *kind, int no_cache)
{
    dl_ctx *ctx = dl_ctx_new();
    dl_source *s;
    const char *w;
    cr_assert_eq(open_wrapped(ctx, name, no_cache, &s, &w), DL_OK, "%s: %s", name, dl_ctx_error(ctx));
    cr_assert_str_eq(w, kind);
    cr_assert_eq(s->size, PLAIN_SIZE, "%s: size %llu", name, (unsigned long long)s->size);
    static uint8_t buf[70000];
    for (int i = 0; i < 3000; i++) {
        size_t len = i % 10 == 0 ? next_rand() % sizeof buf : 1 + next_rand() % 4096;
        uint64_t off = next_rand() % (PLAIN_SIZE - len + 1);
        if (i % 7 == 0)
            off = PLAIN_SIZE - len; /* the tail */
        cr_assert_eq(dl_source_read(s, ctx, off, buf, len), DL_OK, "%s: %s", name, dl_ctx_error(ctx));
        cr_assert(!memcmp(buf, plain + off, len), "%s: bytes differ at 0x%llx+%zu", name, (unsigned long long)off, len);
        const uint8_t *v = s->view ? s->view(s, off, 8 < len ? 8 : len) : NULL;
        if (v)
            cr_assert(!memcmp(v, plain + off, 8 < len ? 8 : len), "%s: view differs at 0x%llx", name,
                      (unsigned long long)off);
    }
    cr_expect_eq(dl_source_read(s, ctx, PLAIN_SIZE - 2, buf, 4), DL_ECORRUPT, "read past the end");
    dl_source_close(s);
    dl_ctx_free(ctx);
}

static int cached_indexes(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "exit $(ls '%s/cache' 2>/dev/null | grep -c zidx)", dir);
    return WEXITSTATUS(system(cmd));
}

TestSuite(wrappers, .init = setup, .fini = teardown);

Test(wrappers, gzip_and_its_index_cache)
{
    cr_assert_eq(sh("gzip -c MEMORY.DMP > d.gz", "gzip"), 0);
    check_reads("d.gz", "gzip", 1);
    cr_expect_eq(cached_indexes(), 0, "--no-cache wrote an index");
    check_reads("d.gz", "gzip", 0);
    cr_expect_eq(cached_indexes(), 1);
    check_reads("d.gz", "gzip", 0); /* from the cache */
    /* A damaged index is detected and rebuilt. */
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "for f in '%s'/cache/*.zidx; do printf 'XXXX' | dd of=\"$f\" bs=1 seek=200 conv=notrunc 2>/dev/null; done",
             dir);
    cr_assert_eq(system(cmd), 0);
    check_reads("d.gz", "gzip", 0);
}

Test(wrappers, gzip_multi_member)
{
    cr_assert_eq(
        sh("head -c 3000001 MEMORY.DMP | gzip -c > m.gz && tail -c +3000002 MEMORY.DMP | gzip -1 -c >> m.gz", "gzip"),
        0);
    check_reads("m.gz", "gzip", 0);
}

Test(wrappers, zip_deflate_stored_zip64)
{
    if (sh("true", "zip") != 0)
        cr_skip_test("zip is not installed");
    cr_assert_eq(sh("echo note > a.txt && zip -q a.zip a.txt MEMORY.DMP && zip -q -0 s.zip a.txt MEMORY.DMP && "
                    "zip -q -fz z.zip a.txt MEMORY.DMP && zip -q - MEMORY.DMP < /dev/null > p.zip",
                    "zip"),
                 0);
    check_reads("a.zip", "zip", 0);
    check_reads("s.zip", "zip", 0);
    check_reads("z.zip", "zip", 0);
    check_reads("p.zip", "zip", 0); /* streamed: data descriptor */
}

Test(wrappers, cab_mszip_and_stored)
{
    if (sh("true", "gcab") != 0)
        cr_skip_test("gcab is not installed");
    cr_assert_eq(sh("echo note > a.txt && gcab -c -z -n c.cab a.txt MEMORY.DMP && gcab -c -n n.cab MEMORY.DMP", "gcab"),
                 0);
    check_reads("c.cab", "cab", 0);
    check_reads("n.cab", "cab", 0);
}

static void expect_broken(const char *name, const uint8_t *data, size_t len, dl_status want)
{
    char path[512];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(data, 1, len, f) == len && fclose(f) == 0);
    dl_ctx *ctx = dl_ctx_new();
    dl_source *s = NULL;
    const char *w = NULL;
    dl_status st = open_wrapped(ctx, name, 1, &s, &w);
    cr_expect_eq(st, want, "%s: status %d (%s)", name, st, dl_ctx_error(ctx));
    cr_expect(s == NULL && w == NULL);
    const char *msg = dl_ctx_error(ctx);
    cr_expect(msg && *msg && !strchr(msg, '\n'), "%s: one line wanted: %s", name, msg);
    dl_ctx_free(ctx);
}

Test(wrappers, hostile_wrappers)
{
    uint8_t b[256];
    memset(b, 0, sizeof b);
    memcpy(b, "\x1f\x8b\x08\x00", 4);
    expect_broken("hdr.gz", b, 6, DL_ECORRUPT);
    expect_broken("nodata.gz", b, 10, DL_ECORRUPT);
    b[2] = 9;
    expect_broken("method.gz", b, 20, DL_EUNSUPPORTED);
    b[2] = 8;
    b[3] = 8; /* FNAME, never terminated */
    memset(b + 10, 'a', 100);
    expect_broken("name.gz", b, 110, DL_ECORRUPT);
    memset(b, 0, sizeof b);
    memcpy(b, "PK\3\4", 4);
    expect_broken("noeocd.zip", b, 64, DL_ECORRUPT);
    /* An EOCD claiming 65535 members in a 46-byte directory. */
    memcpy(b + 64, "PK\5\6\0\0\0\0\xff\xff\xff\xff\x2e\0\0\0\0\0\0\0\0\0", 22);
    expect_broken("count.zip", b, 86, DL_ECORRUPT);
    memset(b, 0, sizeof b);
    memcpy(b, "MSCF", 4);
    b[26] = 0xff, b[27] = 0xff, b[28] = 0xff, b[29] = 0xff; /* 65535 folders and files */
    expect_broken("count.cab", b, 64, DL_ECORRUPT);
    b[30] = 2; /* a next cabinet */
    expect_broken("multi.cab", b, 64, DL_EUNSUPPORTED);
}

Test(wrappers, plain_passes_through)
{
    dl_ctx *ctx = dl_ctx_new();
    char path[512];
    path_of(path, sizeof path, "MEMORY.DMP");
    dl_source *file, *s;
    const char *w = "x";
    cr_assert_eq(dl_source_open_file(ctx, path, &file), DL_OK);
    dl_open_options o = {.no_cache = 1};
    cr_assert_eq(dl_source_unwrap(ctx, file, &o, &s, &w), DL_OK);
    cr_expect(s == file && w == NULL);
    dl_source_close(s);
    dl_ctx_free(ctx);
}
