/* Tag descriptions.  pooltag.txt format (windbg-output.md §1.5): lines
 * "<Tag> - <binary> - <Description>" (or "<Tag> - <Description>"), "rem" and
 * "//" comments, '?'/'*' wildcards in the tag.  Microsoft's file is never
 * bundled: users point at their own copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "dumpleak.h"
#include "platform.h"

/* A longer file is not a pooltag.txt (Microsoft's is ~5000 lines). */
#define MAX_TAGDB_LINES 200000u

typedef struct tag_entry {
    char tag[17]; /* pattern as written, padded to 4 */
    char *binary, *description;
    int wildcard;
} tag_entry;

struct dl_tagdb {
    tag_entry *e;
    size_t n, cap;
};

/* Well-known Windows tags, written from public documentation (Windows
 * Internals, learn.microsoft.com pool-tag pages). */
static const struct {
    const char *tag, *binary, *description;
} builtin[] = {
    {"Thre", "nt!ps", "Thread objects"},
    {"Proc", "nt!ps", "Process objects"},
    {"File", "nt!io", "File objects"},
    {"Irp ", "nt!io", "I/O request packets"},
    {"MmSt", "nt!mm", "Memory-manager section and segment structures"},
    {"MmCa", "nt!mm", "Memory-manager control areas"},
    {"Toke", "nt!se", "Token objects"},
    {"Even", "nt", "Event objects"},
    {"Muta", "nt", "Mutant objects"},
    {"Sema", "nt", "Semaphore objects"},
    {"ObNm", "nt!ob", "Object names"},
    {"ObDi", "nt!ob", "Object directories"},
    {"Key ", "nt!cm", "Registry key objects"},
    {"CM*", "nt!cm", "Configuration manager (registry)"},
    {"Pool", "nt", "Pool tables (tracker and big-page tables)"},
    {"None", "<unknown>", "Untagged allocations (ExAllocatePool / ExAllocatePoolWithQuota callers)"},
    {"Ddk ", "<unknown>", "Default tag of drivers built with ntddk.h calling ExAllocatePool"},
    {"Wdm ", "<unknown>", "Default tag of WDM drivers calling ExAllocatePool"},
    {"FxDr", "wdf01000.sys", "KMDF default driver pool tag"},
    {"Ntf*", "ntfs.sys", "NTFS file system"},
    {"MdlP", "nt!io", "MDL pool"},
};

static int add(dl_tagdb *db, const char *tag, const char *binary, const char *desc)
{
    if (db->n == db->cap) {
        size_t ncap = db->cap ? db->cap * 2 : 64;
        tag_entry *n = realloc(db->e, ncap * sizeof *n);
        if (!n)
            return 0;
        db->e = n;
        db->cap = ncap;
    }
    tag_entry *e = &db->e[db->n];
    memset(e, 0, sizeof *e);
    snprintf(e->tag, sizeof e->tag, "%s", tag);
    e->wildcard = strpbrk(tag, "*?") != NULL;
    if (!e->wildcard)
        while (strlen(e->tag) < 4)
            strcat(e->tag, " ");
    e->binary = binary ? strdup(binary) : NULL;
    e->description = desc ? strdup(desc) : NULL;
    db->n++;
    return 1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

static void parse_line(dl_tagdb *db, char *line)
{
    if (!strncmp(line, "rem", 3) || !strncmp(line, "//", 2))
        return;
    char *sep = strstr(line, " - ");
    if (!sep || sep == line || sep - line > 8)
        return;
    *sep = 0;
    char tag[9];
    size_t tl = (size_t)(sep - line);
    memcpy(tag, line, tl);
    tag[tl] = 0;
    /* Trailing spaces of the tag column are significant only up to 4 bytes. */
    while (tl > 4 && tag[tl - 1] == ' ')
        tag[--tl] = 0;
    char *rest = sep + 3, *sep2 = strstr(rest, " - ");
    if (sep2) {
        *sep2 = 0;
        add(db, tag, trim(rest), trim(sep2 + 3));
    } else {
        add(db, tag, NULL, trim(rest));
    }
}

dl_status dl_tagdb_load(dl_ctx *ctx, const char *path, dl_tagdb **out)
{
    dl_tagdb *db = calloc(1, sizeof *db);
    *out = NULL;
    if (!db)
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    if (path && *path) {
        FILE *f = dl_platform_fopen(path, "rb");
        if (!f) {
            dl_tagdb_free(db);
            return dl_fail(ctx, DL_EUSAGE, "cannot read pooltag file %s", path);
        }
        char line[1024];
        size_t lines = 0;
        while (fgets(line, sizeof line, f) && lines++ < MAX_TAGDB_LINES)
            parse_line(db, line);
        fclose(f);
    }
    /* Built-ins after the user's file: the file wins. */
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        add(db, builtin[i].tag, builtin[i].binary, builtin[i].description);
    *out = db;
    return DL_OK;
}

void dl_tagdb_free(dl_tagdb *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->n; i++) {
        free(db->e[i].binary);
        free(db->e[i].description);
    }
    free(db->e);
    free(db);
}

int dl_tagdb_lookup(const dl_tagdb *db, uint32_t key, const char **description, const char **binary)
{
    char t[17];
    dl_format_tag(key, t);
    /* Exact entries first, then wildcard ones, each in file order. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; db && i < db->n; i++) {
            const tag_entry *e = &db->e[i];
            if (e->wildcard != pass || !(pass ? dl_tag_match(e->tag, t) : !strcmp(e->tag, t)))
                continue;
            if (description)
                *description = e->description;
            if (binary)
                *binary = e->binary && strcmp(e->binary, "<unknown>") ? e->binary : NULL;
            return 1;
        }
    return 0;
}

int dl_tag_match(const char *p, const char *t)
{
    /* Iterative glob with backtracking to the last '*'. */
    const char *star = NULL, *resume = NULL;
    while (*t) {
        if (*p == '*') {
            star = p++;
            resume = t;
        } else if (*p && (*p == '?' || *p == *t)) {
            p++;
            t++;
        } else if (star) {
            p = star + 1;
            t = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == 0;
}

int dl_parse_tag(const char *s, uint32_t *key)
{
    uint32_t k = 0;
    int n = 0;
    while (*s && n < 5) {
        unsigned c;
        if (s[0] == '\\' && s[1] == '\\') {
            c = '\\';
            s += 2;
        } else if (s[0] == '\\' && s[1] == 'x' && s[2] && s[3]) {
            char hexs[3] = {s[2], s[3], 0};
            char *end;
            c = (unsigned)strtoul(hexs, &end, 16);
            if (*end)
                return 0;
            s += 4;
        } else {
            c = (unsigned char)*s++;
        }
        if (n < 4)
            k |= (uint32_t)c << (8 * n);
        n++;
    }
    if (n != 4 || *s)
        return 0;
    *key = k;
    return 1;
}
