/* Suspect search: every tag the forge put in a driver's code is found in
 * that driver at the forge's address; a `None` leak points at the importer
 * of an untagged allocator. */
#include <criterion/criterion.h>
#include <string.h>

#include "matrix.h"

static const dl_candidate *find_candidate(const dl_suspect *s, const char *module)
{
    for (size_t i = 0; i < s->ncandidates; i++)
        if (!strcmp(s->candidates[i].module, module))
            return &s->candidates[i];
    return NULL;
}

static int has_evidence_at(const dl_candidate *c, const char *kind, uint64_t va)
{
    for (size_t i = 0; c && i < c->nevidence; i++)
        if (!strcmp(c->evidence[i].kind, kind) && c->evidence[i].has_address && c->evidence[i].address == va)
            return 1;
    return 0;
}

static int resident(dl_dump *d, uint64_t va)
{
    uint8_t b[4];
    return va && dl_read_virt(d, va, b, 4) == DL_OK;
}

Test(suspect, tag_sites_found_in_their_module)
{
    size_t checked = 0;
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        json_t *sites = json_object_get(json_object_get(f->truth, "kernel"), "tag_sites");
        if (f->defect || f->type == 4 || !json_is_object(sites) || !strcmp(f->arch, "arm64"))
            continue;
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = open_forged(f, ctx);
        const char *module;
        json_t *list;
        json_object_foreach(sites, module, list)
        {
            for (size_t k = 0; k < json_array_size(list); k++) {
                json_t *site = json_array_get(list, k);
                uint32_t key;
                cr_assert(dl_parse_tag(json_string_value(json_array_get(site, 0)), &key));
                uint64_t va = jhex(json_array_get(site, 1));
                dl_suspect_options o = {.keys = &key, .nkeys = 1};
                dl_suspects *s = NULL;
                dl_find_suspects(d, &o, &s);
                cr_assert_not_null(s, "%s: no suspects: %s", f->dump, dl_ctx_error(ctx));
                const dl_candidate *c = find_candidate(&s->items[0], module);
                if (resident(d, va)) {
                    cr_expect(has_evidence_at(c, "tag-in-code", va) || has_evidence_at(c, "tag-in-data", va),
                              "%s: tag %s at 0x%llx not attributed to %s", f->dump,
                              json_string_value(json_array_get(site, 0)), (unsigned long long)va, module);
                    cr_expect(s->items[0].ncandidates && !strcmp(s->items[0].candidates[0].module, module),
                              "%s: top candidate for %s is %s, expected %s", f->dump,
                              json_string_value(json_array_get(site, 0)),
                              s->items[0].ncandidates ? s->items[0].candidates[0].module : "(none)", module);
                    checked++;
                }
                dl_suspects_free(s);
            }
        }
        dl_close(d);
        dl_ctx_free(ctx);
    }
    cr_expect_gt(checked, 50, "too few tag sites checked (%zu)", checked);
}

Test(suspect, none_points_at_untagged_importer)
{
    size_t checked = 0;
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        json_t *iat = json_object_get(json_object_get(f->truth, "kernel"), "iat");
        if (f->defect || f->type == 4 || !json_is_object(iat))
            continue;
        /* Modules whose IAT holds ExAllocatePool or ExAllocatePoolWithQuota. */
        const char *importer = NULL;
        size_t importers = 0;
        const char *module;
        json_t *funcs;
        json_object_foreach(iat, module, funcs)
        {
            if (json_object_get(funcs, "ExAllocatePool") || json_object_get(funcs, "ExAllocatePoolWithQuota")) {
                importer = module;
                importers++;
            }
        }
        if (importers != 1)
            continue;
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = open_forged(f, ctx);
        uint32_t key = 0x656E6F4Eu; /* "None" */
        dl_suspect_options o = {.keys = &key, .nkeys = 1};
        dl_suspects *s = NULL;
        dl_find_suspects(d, &o, &s);
        cr_assert_not_null(s);
        cr_expect(s->items[0].ncandidates && !strcmp(s->items[0].candidates[0].module, importer),
                  "%s: None points at %s, expected %s", f->dump,
                  s->items[0].ncandidates ? s->items[0].candidates[0].module : "(none)", importer);
        dl_suspects_free(s);
        dl_close(d);
        dl_ctx_free(ctx);
        checked++;
    }
    cr_expect_gt(checked, 0, "no dump with a single untagged-allocator importer");
}

Test(suspect, tag_spelling_round_trip)
{
    const char *tags[] = {"Leak", "Ddk ", "\\x01abc", "a\\\\bc"};
    for (size_t i = 0; i < 4; i++) {
        uint32_t k;
        char back[17];
        cr_assert(dl_parse_tag(tags[i], &k), "%s", tags[i]);
        dl_format_tag(k, back);
        cr_expect_str_eq(back, tags[i]);
    }
    uint32_t k;
    cr_expect_not(dl_parse_tag("Leak5", &k));
    cr_expect_not(dl_parse_tag("Lea", &k));
    cr_expect(dl_tag_match("Le*", "Leak"));
    cr_expect(dl_tag_match("?eak", "Leak"));
    cr_expect_not(dl_tag_match("le*", "Leak"));
}
