/* Public entry points of the pool analyses; each result is computed once
 * and kept on the dump. */
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

dl_status dl_get_pool(dl_dump *d, const dl_pool **out)
{
    *out = NULL;
    if (d->pool || d->pool_status) {
        *out = d->pool;
        return d->pool_status;
    }
    dl_status st = no_pool_data(d);
    if (st == DL_OK) {
        dl_pool *p = calloc(1, sizeof *p);
        if (!p)
            return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
        st = dl_pool_tracker(d, p);
        if (st == DL_OK) {
            for (size_t i = 0; i < p->ntags; i++) {
                const dl_pool_tag *t = &p->tags[i];
                p->total_nonpaged.allocs += t->nonpaged.allocs, p->total_nonpaged.frees += t->nonpaged.frees;
                p->total_nonpaged.bytes += t->nonpaged.bytes;
                p->total_paged.allocs += t->paged.allocs, p->total_paged.frees += t->paged.frees;
                p->total_paged.bytes += t->paged.bytes;
            }
            dl_warn(d->ctx, "session-pool", "session pool not included (win32k GDI/USER tags missing)");
            d->pool = p;
        } else {
            dl_warn(d->ctx, "pool-unavailable", "pool tag data unavailable: %s", dl_ctx_error(d->ctx));
            free(p->tags);
            free(p);
            st = DL_PARTIAL;
        }
    }
    d->pool_status = st;
    *out = d->pool;
    return st;
}

dl_status dl_get_bigpool(dl_dump *d, const dl_bigpool **out)
{
    *out = NULL;
    if (d->bigpool || d->bigpool_status) {
        *out = d->bigpool;
        return d->bigpool_status;
    }
    dl_status st = no_pool_data(d);
    if (st == DL_OK) {
        dl_bigpool *b = calloc(1, sizeof *b);
        if (!b)
            return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
        st = dl_pool_bigpages(d, b);
        if (st == DL_OK) {
            d->bigpool = b;
        } else {
            dl_warn(d->ctx, "bigpool-unavailable", "big-page table unavailable: %s", dl_ctx_error(d->ctx));
            free(b->entries);
            free(b);
            st = DL_PARTIAL;
        }
    }
    d->bigpool_status = st;
    *out = d->bigpool;
    return st;
}

dl_status dl_get_vm(dl_dump *d, const dl_vm **out)
{
    *out = NULL;
    if (d->vm_summary || d->vm_status) {
        *out = d->vm_summary;
        return d->vm_status;
    }
    dl_status st = no_pool_data(d);
    if (st == DL_OK) {
        dl_vm *v = calloc(1, sizeof *v);
        if (!v)
            return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
        st = dl_vm_summary(d, v);
        if (st == DL_OK) {
            d->vm_summary = v;
        } else {
            dl_warn(d->ctx, "vm-unavailable", "vm summary unavailable: %s", dl_ctx_error(d->ctx));
            free(v);
            st = DL_PARTIAL;
        }
    }
    d->vm_status = st;
    *out = d->vm_summary;
    return st;
}

void dl_pool_results_free(dl_dump *d)
{
    if (d->pool)
        free(d->pool->tags);
    free(d->pool);
    if (d->bigpool)
        free(d->bigpool->entries);
    free(d->bigpool);
    free(d->vm_summary);
}
