/* Loaded and unloaded modules against the forge's truth. */
#include <criterion/criterion.h>
#include <string.h>

#include "matrix.h"

static void expect_str(const char *got, const json_t *want, const char *what, const char *dump)
{
    if (json_is_null(want) || !want)
        cr_expect_null(got, "%s: %s should be null, got '%s'", dump, what, got ? got : "");
    else
        cr_expect(got && !strcmp(got, json_string_value(want)), "%s: %s '%s', expected '%s'", dump, what,
                  got ? got : "(null)", json_string_value(want));
}

Test(modules, loaded_and_unloaded)
{
    size_t n = 0;
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        json_t *truth = json_object_get(f->truth, "modules");
        if (f->defect || !truth || json_is_null(truth))
            continue;
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = open_forged(f, ctx);
        const dl_modules *m;
        dl_status st = dl_get_modules(d, &m);
        json_t *loaded = json_object_get(truth, "loaded"), *unloaded = json_object_get(truth, "unloaded");
        cr_assert_not_null(m, "%s", f->dump);
        cr_expect_eq(m->nloaded, json_array_size(loaded), "%s: %zu modules, expected %zu (%s)", f->dump, m->nloaded,
                     json_array_size(loaded), dl_ctx_error(ctx));
        for (size_t k = 0; k < m->nloaded && k < json_array_size(loaded); k++) {
            json_t *e = json_array_get(loaded, k);
            expect_str(m->loaded[k].name, json_object_get(e, "name"), "name", f->dump);
            expect_str(m->loaded[k].path, json_object_get(e, "path"), "path", f->dump);
            cr_expect_eq(m->loaded[k].base, jhex(json_object_get(e, "base")), "%s module %zu base", f->dump, k);
            cr_expect_eq(m->loaded[k].size, jhex(json_object_get(e, "size")), "%s module %zu size", f->dump, k);
        }
        if (json_is_null(unloaded)) {
            cr_expect_eq(m->unloaded_available, 0, "%s", f->dump);
        } else {
            cr_expect_eq(m->nunloaded, json_array_size(unloaded), "%s: unloaded count", f->dump);
            for (size_t k = 0; k < m->nunloaded && k < json_array_size(unloaded); k++) {
                json_t *e = json_array_get(unloaded, k);
                expect_str(m->unloaded[k].name, json_object_get(e, "name"), "unloaded name", f->dump);
                cr_expect_eq(m->unloaded[k].base, jhex(json_object_get(e, "base")), "%s", f->dump);
                cr_expect_eq(m->unloaded[k].size, jhex(json_object_get(e, "size")), "%s", f->dump);
                cr_expect_eq(m->unloaded[k].has_time, !json_is_null(json_object_get(e, "time")), "%s", f->dump);
            }
        }
        (void)st;
        dl_close(d);
        dl_ctx_free(ctx);
        n++;
    }
    cr_expect_gt(n, 20, "too few dumps with modules (%zu)", n);
}
