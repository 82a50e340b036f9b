/* Run the library over one dump for the chosen command. */
#include "cli.h"

static void worsen(result *r, dl_status st)
{
    if (st > r->status)
        r->status = st;
}

void analyse(const options *o, result *r)
{
    r->ctx = dl_ctx_new();
    if (!r->ctx) {
        r->status = DL_ECORRUPT;
        return;
    }
    dl_open_options oo = {.no_cache = o->no_cache, .raw_input = o->raw_input};
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
}
