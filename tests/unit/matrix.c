#include "matrix.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static forged *entries;
static size_t nentries;
static int loaded;
static json_t *index_json;

static void unload(void);

static void load(void)
{
    if (loaded)
        return;
    loaded = 1;
    /* Registered after LeakSanitizer's own exit hook, so it runs first. */
    atexit(unload);
    const char *dir = getenv("DUMPLEAK_MATRIX");
    if (!dir)
        dir = "build/matrix";
    char path[512];
    snprintf(path, sizeof path, "%s/index.json", dir);
    json_error_t err;
    json_t *idx = json_load_file(path, 0, &err);
    if (!idx)
        cr_assert_fail("cannot load %s: %s (run make check)", path, err.text);
    index_json = idx;
    json_t *list = json_is_array(idx) ? idx : json_object_get(idx, "dumps");
    nentries = json_array_size(list);
    entries = calloc(nentries, sizeof *entries);
    for (size_t i = 0; i < nentries; i++) {
        json_t *e = json_array_get(list, i);
        forged *f = &entries[i];
        snprintf(f->dump, sizeof f->dump, "%s/%s", dir, json_string_value(json_object_get(e, "dump")));
        snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(e, "truth")));
        f->truth = json_load_file(path, 0, &err);
        cr_assert(f->truth, "cannot load truth %s: %s", path, err.text);
        f->arch = jstr(f->truth, "arch");
        f->defect = jstr(f->truth, "defect");
        f->scenario = jstr(f->truth, "scenario");
        f->type = (int)json_integer_value(json_object_get(f->truth, "type"));
        f->build = (int)json_integer_value(json_object_get(f->truth, "build"));
    }
}

/* Forked test processes exit through here: give the truths back so
 * LeakSanitizer reports only the library's leaks. */
static void unload(void)
{
    for (size_t i = 0; i < nentries; i++)
        json_decref(entries[i].truth);
    free(entries);
    entries = NULL;
    nentries = 0;
    json_decref(index_json);
    index_json = NULL;
}

size_t matrix_count(void)
{
    load();
    return nentries;
}

const forged *matrix_get(size_t i)
{
    load();
    return i < nentries ? &entries[i] : NULL;
}

uint64_t jhex(const json_t *v)
{
    if (json_is_integer(v))
        return (uint64_t)json_integer_value(v);
    const char *s = json_string_value(v);
    return s ? strtoull(s, NULL, 0) : 0;
}

const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

dl_dump *open_forged(const forged *f, dl_ctx *ctx)
{
    dl_dump *d = NULL;
    dl_status st = dl_open(ctx, f->dump, NULL, &d);
    cr_assert_eq(st, DL_OK, "%s: open failed (%d): %s", f->dump, st, dl_ctx_error(ctx));
    return d;
}
