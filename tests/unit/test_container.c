/* Header fields and physical maps of every forged dump type, checked
 * against the forge's truth. */
#include <criterion/criterion.h>
#include <string.h>

#include "matrix.h"

static int is_good(const forged *f)
{
    return f->defect == NULL;
}

Test(container, header_fields)
{
    size_t checked = 0;
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        if (!is_good(f))
            continue;
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = open_forged(f, ctx);
        const dl_info *in = dl_get_info(d);
        json_t *h = json_object_get(f->truth, "header");
        cr_expect_str_eq(in->signature, jstr(h, "signature"), "%s", f->dump);
        cr_expect_eq(in->major_version, jhex(json_object_get(h, "major")), "%s", f->dump);
        cr_expect_eq(in->minor_version, jhex(json_object_get(h, "minor")), "%s", f->dump);
        cr_expect_eq(in->directory_table_base, jhex(json_object_get(h, "dtb")), "%s", f->dump);
        cr_expect_eq(in->pfn_database, jhex(json_object_get(h, "pfn_database")), "%s", f->dump);
        cr_expect_eq(in->ps_loaded_module_list, jhex(json_object_get(h, "ps_loaded_module_list")), "%s", f->dump);
        cr_expect_eq(in->ps_active_process_head, jhex(json_object_get(h, "ps_active_process_head")), "%s", f->dump);
        cr_expect_eq(in->machine_type, jhex(json_object_get(h, "machine")), "%s", f->dump);
        cr_expect_eq(in->processors, jhex(json_object_get(h, "processors")), "%s", f->dump);
        cr_expect_eq(in->bugcheck_code, jhex(json_object_get(h, "bugcheck_code")), "%s", f->dump);
        json_t *params = json_object_get(h, "bugcheck_params");
        for (size_t k = 0; k < 4; k++)
            cr_expect_eq(in->bugcheck_params[k], jhex(json_array_get(params, k)), "%s param %zu", f->dump, k);
        cr_expect_eq(in->kdbg_address, jhex(json_object_get(h, "kdbg")), "%s", f->dump);
        cr_expect_eq(in->dump_type, jhex(json_object_get(h, "dump_type")), "%s", f->dump);
        cr_expect_eq(in->system_time, jhex(json_object_get(h, "system_time")), "%s", f->dump);
        json_t *attr = json_object_get(h, "attributes");
        cr_expect_eq(in->has_attributes, !json_is_null(attr), "%s", f->dump);
        if (!json_is_null(attr))
            cr_expect_eq(in->attributes, jhex(attr), "%s", f->dump);
        json_t *pae = json_object_get(h, "pae");
        if (json_is_boolean(pae))
            cr_expect_eq(in->pae_enabled, json_is_true(pae), "%s", f->dump);
        json_t *rs = json_object_get(h, "required_dump_space");
        if (json_is_integer(rs))
            cr_expect_eq(in->required_dump_space, jhex(rs), "%s", f->dump);
        dl_close(d);
        dl_ctx_free(ctx);
        checked++;
    }
    cr_expect_gt(checked, 20, "the matrix holds too few dumps (%zu)", checked);
}

Test(container, physical_extents)
{
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        json_t *phys = json_object_get(f->truth, "phys");
        if (!is_good(f) || !phys || json_is_null(phys))
            continue;
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = open_forged(f, ctx);
        json_t *ext = json_object_get(phys, "extents");
        cr_expect_eq(dl_extent_count(d), json_array_size(ext), "%s: extent count", f->dump);
        for (size_t k = 0; k < json_array_size(ext) && k < dl_extent_count(d); k++) {
            json_t *e = json_array_get(ext, k);
            dl_extent x;
            cr_assert_eq(dl_extent_get(d, k, &x), DL_OK);
            cr_expect_eq(x.pfn, jhex(json_array_get(e, 0)), "%s extent %zu pfn", f->dump, k);
            cr_expect_eq(x.pages, jhex(json_array_get(e, 1)), "%s extent %zu pages", f->dump, k);
            cr_expect_eq(x.file_offset, jhex(json_array_get(e, 2)), "%s extent %zu offset", f->dump, k);
            /* First and last page of each extent are readable; the page
             * after the last is not (extents are merged maximally). */
            uint8_t b[8];
            cr_expect_eq(dl_read_phys(d, x.pfn << 12, b, 8), DL_OK, "%s", f->dump);
            cr_expect_eq(dl_read_phys(d, ((x.pfn + x.pages) << 12) - 8, b, 8), DL_OK, "%s", f->dump);
            if (k + 1 == json_array_size(ext) || jhex(json_array_get(json_array_get(ext, k + 1), 0)) != x.pfn + x.pages)
                cr_expect_eq(dl_read_phys(d, (x.pfn + x.pages) << 12, b, 8), DL_PARTIAL, "%s", f->dump);
        }
        cr_expect_eq(dl_get_info(d)->pages_present, jhex(json_object_get(phys, "pages_present")), "%s", f->dump);
        json_t *absent = json_object_get(phys, "absent_pfns");
        for (size_t k = 0; k < json_array_size(absent); k++) {
            uint8_t b[8];
            uint64_t pfn = jhex(json_array_get(absent, k));
            cr_expect_eq(dl_read_phys(d, pfn << 12, b, 8), DL_PARTIAL, "%s: PFN 0x%llx should be absent", f->dump,
                         (unsigned long long)pfn);
        }
        dl_close(d);
        dl_ctx_free(ctx);
    }
}

/* Reads that cross a page boundary into an absent page fail, naming the PA. */
Test(container, cross_page_read_names_absent_address)
{
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        json_t *phys = json_object_get(f->truth, "phys");
        if (!is_good(f) || !phys || json_is_null(phys))
            continue;
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = open_forged(f, ctx);
        dl_extent x;
        cr_assert_eq(dl_extent_get(d, 0, &x), DL_OK);
        uint64_t end = (x.pfn + x.pages) << 12;
        if (!(dl_extent_count(d) > 1 && x.pfn + x.pages == 0)) {
            uint8_t b[16];
            dl_status st = dl_read_phys(d, end - 8, b, 16);
            dl_extent y;
            int next_adjacent = dl_extent_count(d) > 1 && dl_extent_get(d, 1, &y) == DL_OK && y.pfn == x.pfn + x.pages;
            if (!next_adjacent) {
                cr_expect_eq(st, DL_PARTIAL, "%s", f->dump);
                char want[64];
                snprintf(want, sizeof want, "0x%llx", (unsigned long long)end);
                cr_expect(strstr(dl_ctx_error(ctx), want) != NULL, "%s: message '%s' lacks %s", f->dump,
                          dl_ctx_error(ctx), want);
            }
        }
        dl_close(d);
        dl_ctx_free(ctx);
        break;
    }
}
