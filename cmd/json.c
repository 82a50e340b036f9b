/* --json: one compact object per dump (cli-contract.md "JSON"). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static json_t *hex(unsigned long long v)
{
    char b[24];
    snprintf(b, sizeof b, "0x%llx", v);
    return json_string(b);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *source_obj(const dl_info *in)
{
    json_t *s = json_object();
    json_object_set_new(s, "input", json_string(in->input));
    json_object_set_new(s, "wrapper", json_null());
    json_object_set_new(s, "cr3_from", in->has_physical_map ? json_string("header") : json_null());
    json_object_set_new(s, "kdbg_from", in->kdbg_valid ? json_string("header") : json_null());
    json_object_set_new(s, "kdbg_encoded", in->kdbg_valid ? json_false() : json_null());
    return s;
}

static json_t *format_obj(const dl_info *in)
{
    json_t *f = json_object();
    json_object_set_new(f, "signature", json_string(in->signature));
    json_object_set_new(f, "bits", json_integer(in->bits));
    json_object_set_new(f, "arch", json_string(arch_name(in->arch)));
    json_object_set_new(f, "dump_type", json_integer(in->dump_type));
    json_object_set_new(f, "dump_type_name", str_or_null(in->dump_type_name));
    json_object_set_new(f, "pages_present",
                        in->has_physical_map ? json_integer((json_int_t)in->pages_present) : json_null());
    return f;
}

static json_t *os_obj(const dl_info *in)
{
    json_t *o = json_object();
    json_object_set_new(o, "build", json_integer(in->minor_version));
    json_object_set_new(o, "checked", in->major_version == 0xC   ? json_true()
                                      : in->major_version == 0xF ? json_false()
                                                                 : json_null());
    json_object_set_new(o, "build_lab", str_or_null(in->build_lab));
    json_object_set_new(o, "processors", json_integer(in->processors));
    return o;
}

static json_t *bugcheck_obj(const dl_info *in)
{
    if (!in->has_bugcheck)
        return json_null();
    json_t *b = json_object();
    char code[16];
    snprintf(code, sizeof code, "0x%08x", in->bugcheck_code);
    json_object_set_new(b, "code", json_string(code));
    json_object_set_new(b, "name", str_or_null(dl_bugcheck_name(in->bugcheck_code)));
    json_t *p = json_array();
    for (int i = 0; i < 4; i++)
        json_array_append_new(p, hex(in->bugcheck_params[i]));
    json_object_set_new(b, "params", p);
    return b;
}

static json_t *time_or_null(int has, unsigned long long ft)
{
    char buf[32];
    return has && format_filetime(ft, buf, 1) ? json_string(buf) : json_null();
}

static json_t *modules_obj(const dl_modules *m)
{
    if (!m)
        return json_null();
    json_t *o = json_object(), *loaded = json_array();
    for (size_t i = 0; i < m->nloaded; i++) {
        const dl_module *x = &m->loaded[i];
        json_t *e = json_object();
        json_object_set_new(e, "name", str_or_null(x->name));
        json_object_set_new(e, "path", str_or_null(x->path));
        json_object_set_new(e, "base", hex(x->base));
        json_object_set_new(e, "size", json_integer((json_int_t)x->size));
        json_array_append_new(loaded, e);
    }
    json_object_set_new(o, "loaded", loaded);
    if (!m->unloaded_available) {
        json_object_set_new(o, "unloaded", json_null());
    } else {
        json_t *un = json_array();
        for (size_t i = 0; i < m->nunloaded; i++) {
            const dl_unloaded *x = &m->unloaded[i];
            json_t *e = json_object();
            json_object_set_new(e, "name", str_or_null(x->name));
            json_object_set_new(e, "base", hex(x->base));
            json_object_set_new(e, "size", json_integer((json_int_t)x->size));
            json_object_set_new(e, "time", time_or_null(x->has_time, x->time));
            json_array_append_new(un, e);
        }
        json_object_set_new(o, "unloaded", un);
    }
    return o;
}

static json_t *warnings_arr(const dl_ctx *ctx)
{
    json_t *w = json_array();
    for (size_t i = 0; i < dl_ctx_warning_count(ctx); i++) {
        const dl_warning *x = dl_ctx_warning(ctx, i);
        json_t *e = json_object();
        json_object_set_new(e, "code", json_string(x->code));
        json_object_set_new(e, "message", json_string(x->message));
        json_array_append_new(w, e);
    }
    return w;
}

void print_json(FILE *out, const options *o, const result *r)
{
    json_t *root = json_object();
    json_object_set_new(root, "schema", json_string("dumpleak/1"));
    json_object_set_new(root, "file", json_string(r->path));
    if (!r->dump) {
        json_t *err = json_object();
        json_object_set_new(err, "code", json_integer(r->status));
        json_object_set_new(err, "message", json_string(dl_ctx_error(r->ctx)));
        json_object_set_new(root, "error", err);
    } else {
        const dl_info *in = dl_get_info(r->dump);
        json_object_set_new(root, "source", source_obj(in));
        json_object_set_new(root, "format", format_obj(in));
        json_object_set_new(root, "os", os_obj(in));
        json_object_set_new(root, "bugcheck", bugcheck_obj(in));
        if (o->cmd == CMD_MODULES || o->cmd == CMD_MAIN)
            json_object_set_new(root, "modules", modules_obj(r->modules));
    }
    json_object_set_new(root, "warnings", r->ctx ? warnings_arr(r->ctx) : json_array());
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (s) {
        fputs(s, out);
        fputc('\n', out);
        free(s);
    }
    json_decref(root);
}
