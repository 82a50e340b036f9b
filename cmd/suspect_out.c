/* Suspects: JSON section, the `suspect` listing and the report's verdict lines. */
#include <jansson.h>
#include <string.h>

#include "cli.h"

void human_bytes(unsigned long long b, char buf[32])
{
    if (b >= (1ull << 30))
        snprintf(buf, 32, "%.2f GiB", b / 1073741824.0);
    else if (b >= (1ull << 20))
        snprintf(buf, 32, "%.2f MiB", b / 1048576.0);
    else if (b >= 1024)
        snprintf(buf, 32, "%.2f KiB", b / 1024.0);
    else
        snprintf(buf, 32, "%llu bytes", b);
}

static json_t *hexs(unsigned long long v)
{
    char b[24];
    snprintf(b, sizeof b, "0x%llx", v);
    return json_string(b);
}

json_t_ptr suspects_json(const result *r)
{
    if (!r->suspects)
        return json_null();
    json_t *arr = json_array();
    for (size_t i = 0; i < r->suspects->n; i++) {
        const dl_suspect *s = &r->suspects->items[i];
        json_t *o = json_object(), *cands = json_array();
        char tag[17];
        dl_format_tag(s->key, tag);
        json_object_set_new(o, "tag", json_string(tag));
        json_object_set_new(o, "nonpaged_bytes",
                            s->bytes_known ? json_integer((json_int_t)s->nonpaged_bytes) : json_null());
        json_object_set_new(o, "paged_bytes", s->bytes_known ? json_integer((json_int_t)s->paged_bytes) : json_null());
        for (size_t c = 0; c < s->ncandidates; c++) {
            const dl_candidate *x = &s->candidates[c];
            json_t *co = json_object(), *ev = json_array();
            json_object_set_new(co, "module", json_string(x->module));
            json_object_set_new(co, "confidence", json_string(x->confidence));
            for (size_t e = 0; e < x->nevidence; e++) {
                const dl_evidence *y = &x->evidence[e];
                json_t *eo = json_object();
                json_object_set_new(eo, "kind", json_string(y->kind));
                json_object_set_new(eo, "address", y->has_address ? hexs(y->address) : json_null());
                json_object_set_new(eo, "offset", y->has_offset ? hexs(y->offset) : json_null());
                json_object_set_new(eo, "detail", json_string(y->detail));
                json_array_append_new(ev, eo);
            }
            json_object_set_new(co, "evidence", ev);
            json_array_append_new(cands, co);
        }
        json_object_set_new(o, "candidates", cands);
        json_t *pages = json_object();
        json_object_set_new(pages, "resident", json_integer((json_int_t)s->pages_resident));
        json_object_set_new(pages, "total", json_integer((json_int_t)s->pages_total));
        json_object_set_new(o, "image_pages", pages);
        json_array_append_new(arr, o);
    }
    return arr;
}

/* "myfault+0x1559": module name without its extension. */
static void module_offset(const char *module, unsigned long long off, char buf[96])
{
    const char *dot = strrchr(module, '.');
    int stem = dot ? (int)(dot - module) : (int)strlen(module);
    snprintf(buf, 96, "%.*s+0x%llx", stem, module, off);
}

static void not_found(FILE *out, const dl_suspect *s)
{
    unsigned long long missing = s->pages_total - s->pages_resident;
    fprintf(out, "not found in the %llu of %llu resident image pages", (unsigned long long)s->pages_resident,
            (unsigned long long)s->pages_total);
    if (missing)
        fprintf(out, "; %llu pages are not in this dump", missing);
}

void print_suspects(FILE *out, const options *o, const result *r)
{
    (void)o;
    if (!r->suspects) {
        fprintf(out, "\nSuspects: not available (see warnings)\n");
        return;
    }
    for (size_t i = 0; i < r->suspects->n; i++) {
        const dl_suspect *s = &r->suspects->items[i];
        char tag[17], np[32], pg[32];
        dl_format_tag(s->key, tag);
        human_bytes(s->nonpaged_bytes, np);
        human_bytes(s->paged_bytes, pg);
        fprintf(out, "\nTag '%s'", tag);
        if (s->bytes_known)
            fprintf(out, ": %s nonpaged, %s paged", np, pg);
        fputc('\n', out);
        if (!s->ncandidates) {
            fprintf(out, "  no candidate: ");
            not_found(out, s);
            fputc('\n', out);
        }
        for (size_t c = 0; c < s->ncandidates; c++) {
            const dl_candidate *x = &s->candidates[c];
            fprintf(out, "  %-20s %-6s\n", x->module, x->confidence);
            for (size_t e = 0; e < x->nevidence; e++) {
                const dl_evidence *y = &x->evidence[e];
                char where[96] = "";
                if (y->has_offset && strcmp(y->kind, "driver-file"))
                    module_offset(x->module, y->offset, where);
                fprintf(out, "      %-17s %-24s %s\n", y->kind, where, y->detail);
            }
            if (x->code_hits + x->data_hits > x->nevidence)
                fprintf(out, "      (%zu hits in code, %zu in data in all)\n", x->code_hits, x->data_hits);
        }
    }
}

/* One verdict line per top tag, ready to paste into a ticket. */
void print_suspect_lines(FILE *out, const result *r)
{
    if (!r->suspects || !r->suspects->n)
        return;
    fputc('\n', out);
    for (size_t i = 0; i < r->suspects->n; i++) {
        const dl_suspect *s = &r->suspects->items[i];
        char tag[17], amount[32];
        dl_format_tag(s->key, tag);
        int paged = s->paged_bytes > s->nonpaged_bytes;
        human_bytes(paged ? s->paged_bytes : s->nonpaged_bytes, amount);
        unsigned long long total = 0;
        if (r->pool)
            total = paged ? r->pool->total_paged.bytes : r->pool->total_nonpaged.bytes;
        const dl_candidate *best = s->ncandidates ? &s->candidates[0] : NULL;
        /* Unloaded drivers are leads, not a verdict: name them as such. */
        int only_unloaded = best && best->nevidence && !strcmp(best->evidence[0].kind, "unloaded");
        fprintf(out, "Suspect: %s — tag '%s', %s %s",
                best && !only_unloaded ? best->module : "none among loaded modules", tag, amount,
                paged ? "paged" : "nonpaged");
        if (total)
            fprintf(out, " (%.0f%% of tracked %s)",
                    100.0 * (double)(paged ? s->paged_bytes : s->nonpaged_bytes) / (double)total,
                    paged ? "paged" : "nonpaged");
        if (!best || only_unloaded) {
            fprintf(out, ", ");
            not_found(out, s);
            if (only_unloaded)
                fprintf(out, "; %zu driver%s unloaded since boot (dumpleak suspect --tag '%s' lists them)",
                        s->ncandidates, s->ncandidates == 1 ? "" : "s", tag);
        } else {
            const char *sep = ", ";
            int shown = 0;
            for (size_t e = 0; e < best->nevidence && shown < 3; e++) {
                const dl_evidence *y = &best->evidence[e];
                char where[96];
                if (!strcmp(y->kind, "tag-in-code") || !strcmp(y->kind, "tag-in-data")) {
                    module_offset(best->module, y->offset, where);
                    fprintf(out, "%s%s%s", sep,
                            shown ? "" : (!strcmp(y->kind, "tag-in-code") ? "tag in code at " : "tag in data at "),
                            where);
                } else {
                    fprintf(out, "%s%s", sep, y->detail);
                }
                shown++;
            }
            fprintf(out, " [%s]", best->confidence);
        }
        fputc('\n', out);
    }
}
