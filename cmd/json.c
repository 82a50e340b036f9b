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
    json_object_set_new(s, "wrapper", str_or_null(in->wrapper));
    json_object_set_new(s, "cr3_from", str_or_null(in->cr3_from));
    json_object_set_new(s, "kdbg_from", str_or_null(in->kdbg_from));
    json_object_set_new(s, "kdbg_encoded", in->kdbg_valid ? json_boolean(in->kdbg_encoded) : json_null());
    return s;
}

static json_t *format_obj(const dl_info *in)
{
    json_t *f = json_object();
    json_object_set_new(f, "signature", str_or_null(in->signature));
    json_object_set_new(f, "bits", json_integer(in->bits));
    json_object_set_new(f, "arch", json_string(arch_name(in->arch)));
    json_object_set_new(f, "dump_type", in->has_dump_type ? json_integer(in->dump_type) : json_null());
    json_object_set_new(f, "dump_type_name", str_or_null(in->dump_type_name));
    json_object_set_new(f, "pages_present",
                        in->has_physical_map ? json_integer((json_int_t)in->pages_present) : json_null());
    return f;
}

static json_t *os_obj(const dl_info *in)
{
    json_t *o = json_object();
    json_object_set_new(o, "build", json_integer(in->minor_version));
    json_object_set_new(o, "checked",
                        in->major_version == 0xC   ? json_true()
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
    return has && dl_format_filetime(ft, buf, 1) ? json_string(buf) : json_null();
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

static json_t *vm_value(const dl_vm_value *v)
{
    return v->known ? json_integer((json_int_t)v->v) : json_null();
}

static json_t *vm_obj(const dl_vm *vm)
{
    if (!vm)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "page_size", json_integer(4096));
    const struct {
        const char *name;
        const dl_vm_value *v;
    } lines[] = {
        {"physical_pages", &vm->physical_pages},
        {"available_pages", &vm->available_pages},
        {"resavail_pages", &vm->resavail_pages},
        {"modified_pages", &vm->modified_pages},
        {"nonpaged_pool_pages", &vm->nonpaged_pool_pages},
        {"nonpaged_pool_nx_pages", &vm->nonpaged_pool_nx_pages},
        {"nonpaged_pool_max_pages", &vm->nonpaged_pool_max_pages},
        {"paged_pool_pages", &vm->paged_pool_pages},
        {"paged_pool_max_pages", &vm->paged_pool_max_pages},
        {"committed_pages", &vm->committed_pages},
        {"commit_limit_pages", &vm->commit_limit_pages},
        {"shared_commit_pages", &vm->shared_commit_pages},
        {"driver_commit_pages", &vm->driver_commit_pages},
        {"process_commit_pages", &vm->process_commit_pages},
        {"paged_pool_commit_pages", &vm->paged_pool_commit_pages},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        json_object_set_new(o, lines[i].name, vm_value(lines[i].v));
    json_object_set_new(o, "usage_source", str_or_null(vm->usage_source));
    return o;
}

static json_t *counts_obj(const dl_pool_counts *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "allocs", json_integer((json_int_t)c->allocs));
    json_object_set_new(o, "frees", json_integer((json_int_t)c->frees));
    json_object_set_new(o, "diff", json_integer(counts_diff(c)));
    json_object_set_new(o, "bytes", json_integer((json_int_t)c->bytes));
    return o;
}

static json_t *tag_string(uint32_t key)
{
    char t[17];
    dl_format_tag(key, t);
    return json_string(t);
}

static json_t *tag_obj(const options *opt, const dl_pool_tag *t)
{
    const char *desc = NULL, *binary = NULL;
    if (!t->overflow)
        dl_tagdb_lookup(opt->tagdb, t->key, &desc, &binary);
    json_t *o = json_object();
    char key[16];
    snprintf(key, sizeof key, "0x%08x", t->key);
    json_object_set_new(o, "tag", t->overflow ? json_string("(overflow)") : tag_string(t->key));
    json_object_set_new(o, "key", t->overflow ? json_null() : json_string(key));
    json_object_set_new(o, "nonpaged", counts_obj(&t->nonpaged));
    json_object_set_new(o, "paged", counts_obj(&t->paged));
    json_object_set_new(o, "description", str_or_null(desc));
    json_object_set_new(o, "binary", str_or_null(binary));
    return o;
}

/* The main job lists the top tags of each pool; `pool` every selected tag. */
static json_t *pool_obj(const options *o, const dl_pool *pool)
{
    if (!pool)
        return json_null();
    json_t *p = json_object(), *tags = json_array();
    json_object_set_new(p, "source", json_string("tracker"));
    json_object_set_new(p, "processors_summed", json_integer(pool->processors_summed));
    if (o->cmd == CMD_MAIN) {
        options by = *o;
        tag_view np, pg;
        by.sort = "nonpaged";
        select_tags(&by, pool, 20, &np);
        by.sort = "paged";
        select_tags(&by, pool, 20, &pg);
        for (size_t i = 0; i < np.n; i++)
            json_array_append_new(tags, tag_obj(o, &pool->tags[np.idx[i]]));
        for (size_t i = 0; i < pg.n; i++) {
            int dup = 0;
            for (size_t k = 0; k < np.n; k++)
                dup |= np.idx[k] == pg.idx[i];
            if (!dup)
                json_array_append_new(tags, tag_obj(o, &pool->tags[pg.idx[i]]));
        }
        free(np.idx);
        free(pg.idx);
    } else {
        tag_view v;
        select_tags(o, pool, 0, &v);
        for (size_t i = 0; i < v.n; i++)
            json_array_append_new(tags, tag_obj(o, &pool->tags[v.idx[i]]));
        free(v.idx);
    }
    json_object_set_new(p, "tags", tags);
    json_t *totals = json_object();
    json_object_set_new(totals, "nonpaged", counts_obj(&pool->total_nonpaged));
    json_object_set_new(totals, "paged", counts_obj(&pool->total_paged));
    json_object_set_new(p, "totals", totals);
    return p;
}

static json_t *bigpool_obj(const options *o, const dl_bigpool *b)
{
    if (!b)
        return json_null();
    json_t *obj = json_object(), *arr = json_array();
    tag_view v;
    select_bigpool(o, b, &v);
    for (size_t i = 0; i < v.n; i++) {
        const dl_bigpool_entry *e = &b->entries[v.idx[i]];
        char t[17];
        dl_format_tag(e->key, t);
        json_t *x = json_object();
        json_object_set_new(x, "va", hex(e->va));
        json_object_set_new(x, "tag", json_string(t));
        json_object_set_new(x, "bytes", json_integer((json_int_t)e->bytes));
        json_object_set_new(x, "pool", str_or_null(pool_type_name(e->pool)));
        json_object_set_new(x, "free", json_boolean(e->free));
        json_array_append_new(arr, x);
    }
    free(v.idx);
    json_object_set_new(obj, "entries", arr);
    return obj;
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
        if (o->cmd == CMD_VM || o->cmd == CMD_MAIN)
            json_object_set_new(root, "vm", vm_obj(r->vm));
        if (o->cmd == CMD_POOL || o->cmd == CMD_MAIN)
            json_object_set_new(root, "pool", pool_obj(o, r->pool));
        if (o->cmd == CMD_BIGPOOL || o->cmd == CMD_MAIN)
            json_object_set_new(root, "bigpool", bigpool_obj(o, r->bigpool));
        if (o->cmd == CMD_MODULES || o->cmd == CMD_MAIN)
            json_object_set_new(root, "modules", modules_obj(r->modules));
        if (o->cmd == CMD_SUSPECT || o->cmd == CMD_MAIN)
            json_object_set_new(root, "suspects", suspects_json(r));
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
