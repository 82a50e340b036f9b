/* Text for vm, pool and bigpool: the !vm and !poolused layouts users know,
 * with dumpleak's own warning rules (see dumpleak(1)). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Above 2^32 pages a "maximum" is the size of a dynamic VA region (x64
 * Win10+), not a limit: no usage warning against it. */
#define DYNAMIC_MAX_PAGES (1ull << 32)

static void vm_line(FILE *out, const char *label, const dl_vm_value *v)
{
    int pad = 28 - (int)strlen(label);
    if (v->known && v->v >= DYNAMIC_MAX_PAGES) {
        /* Not a limit: the size of a dynamic VA region (x64 Windows 10+). */
        fprintf(out, " %s%*s (%llu pages: a dynamic VA region, not a limit)\n", label, pad, "dynamic",
                (unsigned long long)v->v);
        return;
    }
    if (v->known)
        fprintf(out, " %s%*llu (%10llu Kb)\n", label, pad, (unsigned long long)v->v, (unsigned long long)v->v * 4);
    else
        fprintf(out, " %s%*s\n", label, pad, "n/a");
}

static void usage_warning(FILE *out, const char *what, const dl_vm_value *use, const dl_vm_value *max)
{
    if (use->known && max->known && max->v && max->v < DYNAMIC_MAX_PAGES && use->v * 10 >= max->v * 9)
        fprintf(out, " ********** Excessive %s Usage *****\n", what);
}

void print_vm(FILE *out, const dl_vm *vm)
{
    fprintf(out, "\n*** Virtual Memory Usage ***\n");
    if (!vm) {
        fprintf(out, " not available (see warnings)\n");
        return;
    }
    vm_line(out, "Physical Memory:", &vm->physical_pages);
    vm_line(out, "Available Pages:", &vm->available_pages);
    vm_line(out, "ResAvail Pages:", &vm->resavail_pages);
    vm_line(out, "Modified Pages:", &vm->modified_pages);
    vm_line(out, "NonPagedPool Usage:", &vm->nonpaged_pool_pages);
    if (vm->nonpaged_pool_nx_pages.known)
        vm_line(out, "NonPagedPoolNx Usage:", &vm->nonpaged_pool_nx_pages);
    vm_line(out, "NonPagedPool Max:", &vm->nonpaged_pool_max_pages);
    usage_warning(out, "NonPaged Pool", &vm->nonpaged_pool_pages, &vm->nonpaged_pool_max_pages);
    for (size_t i = 0; i < vm->npaged_pools; i++) {
        char label[48];
        dl_vm_value v = {1, vm->paged_pool_usage[i]};
        snprintf(label, sizeof label, "PagedPool %zu Usage:", i);
        vm_line(out, label, &v);
    }
    vm_line(out, "PagedPool Usage:", &vm->paged_pool_pages);
    vm_line(out, "PagedPool Maximum:", &vm->paged_pool_max_pages);
    usage_warning(out, "Paged Pool", &vm->paged_pool_pages, &vm->paged_pool_max_pages);
    vm_line(out, "Shared Commit:", &vm->shared_commit_pages);
    vm_line(out, "Process Commit:", &vm->process_commit_pages);
    vm_line(out, "PagedPool Commit:", &vm->paged_pool_commit_pages);
    vm_line(out, "Driver Commit:", &vm->driver_commit_pages);
    vm_line(out, "Committed pages:", &vm->committed_pages);
    vm_line(out, "Commit limit:", &vm->commit_limit_pages);
    if (vm->usage_source && !strcmp(vm->usage_source, "tracker"))
        fprintf(out, " (pool usage from pool-tag tracker bytes, rounded up to pages)\n");
}

static void tag_cell(char buf[17], const dl_pool_tag *t)
{
    if (t->overflow)
        strcpy(buf, "(ovfl)");
    else
        dl_format_tag(t->key, buf);
}

void print_pool_rows(FILE *out, const options *o, const dl_pool *pool, const char *sort, int default_top)
{
    options by = *o;
    if (sort)
        by.sort = sort;
    tag_view v;
    if (!select_tags(&by, pool, default_top, &v))
        return;
    const char *s = by.sort ? by.sort : "tag";
    fprintf(out, "\n Sorting by %s\n\n",
            !strcmp(s, "nonpaged") ? "NonPaged Pool Consumed"
            : !strcmp(s, "paged")  ? "Paged Pool Consumed"
            : !strcmp(s, "tag")    ? "Tag"
                                   : s);
    fprintf(out, "               NonPaged                  Paged\n");
    fprintf(out, " Tag     Allocs         Used     Allocs         Used\n\n");
    for (size_t i = 0; i < v.n; i++) {
        const dl_pool_tag *t = &pool->tags[v.idx[i]];
        char name[17];
        tag_cell(name, t);
        fprintf(out, " %-4s %9lld %12llu %10lld %12llu", name, counts_diff(&t->nonpaged),
                (unsigned long long)t->nonpaged.bytes, counts_diff(&t->paged), (unsigned long long)t->paged.bytes);
        const char *desc = NULL, *binary = NULL;
        if (!t->overflow && dl_tagdb_lookup(o->tagdb, t->key, &desc, &binary))
            fprintf(out, "\t%s%s%s", desc ? desc : "", binary ? " , Binary: " : "", binary ? binary : "");
        fputc('\n', out);
    }
    fprintf(out, " TOTAL%9lld %12llu %10lld %12llu\n", counts_diff(&pool->total_nonpaged),
            (unsigned long long)pool->total_nonpaged.bytes, counts_diff(&pool->total_paged),
            (unsigned long long)pool->total_paged.bytes);
    free(v.idx);
}

void print_pool(FILE *out, const options *o, const dl_pool *pool)
{
    if (!pool) {
        fprintf(out, "\nPool tags: not available (see warnings)\n");
        return;
    }
    fprintf(out, "\nPool tags (tracker tables of %u processor%s; Allocs = outstanding allocations):\n",
            pool->processors_summed, pool->processors_summed == 1 ? "" : "s");
    if (o->cmd == CMD_MAIN) {
        print_pool_rows(out, o, pool, "nonpaged", 20);
        print_pool_rows(out, o, pool, "paged", 20);
    } else {
        print_pool_rows(out, o, pool, NULL, 0);
    }
}

void print_bigpool(FILE *out, const options *o, const dl_bigpool *b)
{
    if (!b) {
        fprintf(out, "\nBig pool: not available (see warnings)\n");
        return;
    }
    fprintf(out, "\nBig pool allocations (table at 0x%llx, %llu entries):\n %-18s %-4s %12s  %-12s %s\n",
            (unsigned long long)b->table_va, (unsigned long long)b->table_entries, "Address", "Tag", "Bytes", "Pool",
            "State");
    tag_view v;
    select_bigpool(o, b, &v);
    for (size_t i = 0; i < v.n; i++) {
        const dl_bigpool_entry *e = &b->entries[v.idx[i]];
        char t[17];
        dl_format_tag(e->key, t);
        const char *pool = pool_type_name(e->pool);
        fprintf(out, " %-18llx %-4s %12llu  %-12s %s\n", (unsigned long long)e->va, t, (unsigned long long)e->bytes,
                pool ? pool : "-", e->free ? "free" : "in use");
    }
    free(v.idx);
}
