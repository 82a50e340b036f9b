/* Public entry points of the pool analyses; each result is computed once
 * and kept on the dump, with its status. */
#include <stdlib.h>

#include "ctx.h"
#include "pool.h"

static dl_status no_pool_data(dl_dump *d)
{
    if (d->triage || !d->info.has_physical_map) {
        dl_warn(d->ctx, "no-pool-data", "a triage dump holds no pool or memory-manager data");
        return DL_PARTIAL;
    }
    if (!d->kdbg.valid) {
        dl_warn(d->ctx, "no-kdbg", "no valid KDBG in this dump: pool and memory-manager data are not reachable");
        return DL_PARTIAL;
    }
    return DL_OK;
}

/* One analysis: where its result lives, how to compute and discard it. */
typedef struct analysis {
    void **slot;
    dl_status *status;
    size_t size;
    dl_status (*compute)(dl_dump *d, void *out);
    void (*discard)(void *out);
    const char *code, *what;
} analysis;

static dl_status run_once(dl_dump *d, const analysis *a)
{
    if (*a->slot || *a->status)
        return *a->status;
    dl_status st = no_pool_data(d);
    if (st == DL_OK) {
        void *r = calloc(1, a->size);
        if (!r)
            return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
        st = a->compute(d, r);
        if (st == DL_OK) {
            *a->slot = r;
        } else {
            dl_warn(d->ctx, a->code, "%s unavailable: %s", a->what, dl_ctx_error(d->ctx));
            a->discard(r);
            st = DL_PARTIAL;
        }
    }
    *a->status = st;
    return st;
}

static dl_status compute_pool(dl_dump *d, void *out)
{
    dl_pool *p = out;
    dl_status st = dl_pool_tracker(d, p);
    if (st != DL_OK)
        return st;
    for (size_t i = 0; i < p->ntags; i++) {
        const dl_pool_tag *t = &p->tags[i];
        p->total_nonpaged.allocs += t->nonpaged.allocs, p->total_nonpaged.frees += t->nonpaged.frees;
        p->total_nonpaged.bytes += t->nonpaged.bytes;
        p->total_paged.allocs += t->paged.allocs, p->total_paged.frees += t->paged.frees;
        p->total_paged.bytes += t->paged.bytes;
    }
    dl_warn(d->ctx, "session-pool", "session pool not included (win32k GDI/USER tags missing)");
    return DL_OK;
}

static void discard_pool(void *p)
{
    if (p)
        free(((dl_pool *)p)->tags);
    free(p);
}

static dl_status compute_bigpool(dl_dump *d, void *out)
{
    return dl_pool_bigpages(d, out);
}

static void discard_bigpool(void *b)
{
    if (b)
        free(((dl_bigpool *)b)->entries);
    free(b);
}

static dl_status compute_vm(dl_dump *d, void *out)
{
    return dl_vm_summary(d, out);
}

dl_status dl_get_pool(dl_dump *d, const dl_pool **out)
{
    analysis a = {(void **)&d->pool, &d->pool_status,    sizeof(dl_pool), compute_pool,
                  discard_pool,      "pool-unavailable", "pool tag data"};
    dl_status st = run_once(d, &a);
    *out = d->pool;
    return st;
}

dl_status dl_get_bigpool(dl_dump *d, const dl_bigpool **out)
{
    analysis a = {(void **)&d->bigpool, &d->bigpool_status,    sizeof(dl_bigpool), compute_bigpool,
                  discard_bigpool,      "bigpool-unavailable", "big-page table"};
    dl_status st = run_once(d, &a);
    *out = d->bigpool;
    return st;
}

dl_status dl_get_vm(dl_dump *d, const dl_vm **out)
{
    analysis a = {(void **)&d->vm_summary, &d->vm_status, sizeof(dl_vm), compute_vm, free,
                  "vm-unavailable",        "vm summary"};
    dl_status st = run_once(d, &a);
    *out = d->vm_summary;
    return st;
}

void dl_pool_results_free(dl_dump *d)
{
    discard_pool(d->pool);
    discard_bigpool(d->bigpool);
    free(d->vm_summary);
}
