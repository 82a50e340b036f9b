/* Run the library over one dump for the chosen command. */
#include <string.h>

#include "cli.h"

static void worsen(result *r, dl_status st)
{
    if (st > r->status)
        r->status = st;
}

/* --tag: a literal tag, or a pattern over the pool's tags. */
static dl_status find_suspects(const options *o, result *r)
{
    dl_suspect_options so = {.tagdb = o->tagdb, .drivers_dir = o->drivers, .top_per_pool = o->cmd == CMD_MAIN ? 3 : 5};
    if (o->top > 0 && o->cmd == CMD_SUSPECT)
        so.top_per_pool = (unsigned)o->top;
    uint32_t keys[64];
    size_t n = 0;
    if (o->tag) {
        if (dl_parse_tag(o->tag, &keys[0]) && !strpbrk(o->tag, "*?")) {
            n = 1;
        } else {
            const dl_pool *pool;
            dl_get_pool(r->dump, &pool);
            for (size_t i = 0; pool && i < pool->ntags && n < 64; i++) {
                char t[17];
                dl_format_tag(pool->tags[i].key, t);
                if (!pool->tags[i].overflow && dl_tag_match(o->tag, t))
                    keys[n++] = pool->tags[i].key;
            }
        }
        so.keys = keys;
        so.nkeys = n;
    }
    dl_status st = dl_find_suspects(r->dump, &so, &r->suspects);
    return st;
}

void analyse(const options *o, result *r)
{
    r->ctx = dl_ctx_new();
    if (!r->ctx) {
        r->status = DL_ECORRUPT;
        return;
    }
    dl_open_options oo = {.no_cache = o->no_cache, .raw_input = o->raw_input};
    /* With -j, several dumps would draw over each other's progress line. */
    if (o->jobs == 1 && cli_stderr_is_tty())
        oo.progress = cli_progress;
    r->status = dl_open(r->ctx, r->path, &oo, &r->dump);
    if (r->status != DL_OK) {
        r->dump = NULL;
        return;
    }
    if (o->cmd == CMD_MODULES || o->cmd == CMD_MAIN)
        worsen(r, dl_get_modules(r->dump, &r->modules));
    if (o->cmd == CMD_VM || o->cmd == CMD_MAIN)
        worsen(r, dl_get_vm(r->dump, &r->vm));
    if (o->cmd == CMD_POOL || o->cmd == CMD_MAIN)
        worsen(r, dl_get_pool(r->dump, &r->pool));
    if (o->cmd == CMD_BIGPOOL || o->cmd == CMD_MAIN)
        worsen(r, dl_get_bigpool(r->dump, &r->bigpool));
    if (o->cmd == CMD_SUSPECT || o->cmd == CMD_MAIN)
        worsen(r, find_suspects(o, r));
}
