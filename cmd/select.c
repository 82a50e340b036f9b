/* Selecting and ordering pool rows: --tag, --sort, --top. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

long long counts_diff(const dl_pool_counts *c)
{
    return (long long)(c->allocs - c->frees);
}

static _Thread_local const char *sort_key;
static _Thread_local const dl_pool *sort_pool;

static int tag_cmp(const dl_pool_tag *a, const dl_pool_tag *b)
{
    if (a->overflow != b->overflow)
        return a->overflow - b->overflow;
    /* Memory order of the four bytes, as printed. */
    for (int i = 0; i < 4; i++) {
        int x = (int)((a->key >> (8 * i)) & 0xFF), y = (int)((b->key >> (8 * i)) & 0xFF);
        if (x != y)
            return x - y;
    }
    return 0;
}

static int cmp_u64_desc(unsigned long long x, unsigned long long y)
{
    return x < y ? 1 : x > y ? -1 : 0;
}

static int row_cmp(const void *pa, const void *pb)
{
    const dl_pool_tag *a = &sort_pool->tags[*(const size_t *)pa], *b = &sort_pool->tags[*(const size_t *)pb];
    int c = 0;
    if (!strcmp(sort_key, "nonpaged"))
        c = cmp_u64_desc(a->nonpaged.bytes, b->nonpaged.bytes);
    else if (!strcmp(sort_key, "paged"))
        c = cmp_u64_desc(a->paged.bytes, b->paged.bytes);
    else if (!strcmp(sort_key, "allocs"))
        c = cmp_u64_desc(a->nonpaged.allocs + a->paged.allocs, b->nonpaged.allocs + b->paged.allocs);
    else if (!strcmp(sort_key, "diff")) {
        long long x = counts_diff(&a->nonpaged) + counts_diff(&a->paged);
        long long y = counts_diff(&b->nonpaged) + counts_diff(&b->paged);
        c = x < y ? 1 : x > y ? -1 : 0;
    }
    return c ? c : tag_cmp(a, b);
}

static int nonzero(const dl_pool_tag *t)
{
    return (t->nonpaged.allocs | t->nonpaged.frees | t->nonpaged.bytes | t->paged.allocs | t->paged.frees |
            t->paged.bytes) != 0;
}

int select_tags(const options *o, const dl_pool *pool, int default_top, tag_view *out)
{
    out->n = 0;
    out->idx = malloc((pool->ntags ? pool->ntags : 1) * sizeof *out->idx);
    if (!out->idx)
        return 0;
    for (size_t i = 0; i < pool->ntags; i++) {
        const dl_pool_tag *t = &pool->tags[i];
        if (!nonzero(t))
            continue;
        if (o->tag) {
            char name[17];
            if (t->overflow)
                strcpy(name, "(overflow)");
            else
                dl_format_tag(t->key, name);
            if (!dl_tag_match(o->tag, name))
                continue;
        }
        out->idx[out->n++] = i;
    }
    sort_key = o->sort ? o->sort : "tag";
    sort_pool = pool;
    qsort(out->idx, out->n, sizeof *out->idx, row_cmp);
    int top = o->top >= 0 ? o->top : default_top;
    if (top > 0 && out->n > (size_t)top)
        out->n = (size_t)top;
    return 1;
}

int select_bigpool(const options *o, const dl_bigpool *b, tag_view *out)
{
    out->n = 0;
    out->idx = malloc((b->n ? b->n : 1) * sizeof *out->idx);
    if (!out->idx)
        return 0;
    for (size_t i = 0; i < b->n; i++) {
        const dl_bigpool_entry *e = &b->entries[i];
        char t[17];
        dl_format_tag(e->key, t);
        if ((e->free && !o->free_entries) || (o->tag && !dl_tag_match(o->tag, t)))
            continue;
        if (o->top > 0 && out->n == (size_t)o->top)
            break;
        out->idx[out->n++] = i;
    }
    return 1;
}

const char *pool_type_name(dl_pool_type t)
{
    switch (t) {
    case DL_POOL_NONPAGED:
        return "nonpaged";
    case DL_POOL_PAGED:
        return "paged";
    case DL_POOL_NONPAGED_NX:
        return "nonpaged-nx";
    default:
        return NULL;
    }
}
