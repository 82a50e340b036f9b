/* Address translation: the forge's own samples (every PTE kind) and
 * libaddrxlat as an independent oracle on random page tables. */
#include <criterion/criterion.h>
#include <libkdumpfile/addrxlat.h>
#include <stdlib.h>
#include <string.h>

#include "dump.h"
#include "matrix.h"

static int has_page_tables(const forged *f)
{
    return !f->defect && f->type != 4 && strcmp(f->arch, "arm64") != 0;
}

static dl_xlat_kind expected_kind(const char *k)
{
    if (!strncmp(k, "valid", 5) || !strncmp(k, "large", 5))
        return DL_XLAT_VALID;
    if (!strcmp(k, "transition") || !strcmp(k, "swizzled-transition"))
        return DL_XLAT_TRANSITION;
    if (!strcmp(k, "prototype"))
        return DL_XLAT_PROTOTYPE;
    if (!strcmp(k, "pagefile"))
        return DL_XLAT_PAGEFILE;
    if (!strcmp(k, "demand-zero"))
        return DL_XLAT_DEMAND_ZERO;
    if (!strcmp(k, "absent-table"))
        return DL_XLAT_TABLE_ABSENT;
    return DL_XLAT_NOT_PRESENT;
}

Test(vmem, forge_samples)
{
    size_t n = 0;
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        if (!has_page_tables(f))
            continue;
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = open_forged(f, ctx);
        json_t *samples = json_object_get(f->truth, "vtop");
        for (size_t k = 0; k < json_array_size(samples); k++) {
            json_t *s = json_array_get(samples, k);
            uint64_t va = jhex(json_object_get(s, "va"));
            const char *kind = jstr(s, "kind");
            json_t *pa = json_object_get(s, "pa");
            dl_xlat x;
            dl_status st = dl_translate(d, va, &x);
            dl_xlat_kind want = expected_kind(kind);
            /* A zero entry and a demand-zero one both mean "no data". */
            if (want == DL_XLAT_NOT_PRESENT && x.kind == DL_XLAT_DEMAND_ZERO)
                want = DL_XLAT_DEMAND_ZERO;
            /* A prototype PTE whose target is paged out or in the VAD: no data. */
            if (want == DL_XLAT_PROTOTYPE && (json_is_null(pa) || !pa) &&
                (x.kind == DL_XLAT_PAGEFILE || x.kind == DL_XLAT_NOT_PRESENT || x.kind == DL_XLAT_DEMAND_ZERO))
                want = x.kind;
            cr_expect_eq(x.kind, want, "%s VA 0x%llx: kind %s, expected %s (%s)", f->dump, (unsigned long long)va,
                         dl_xlat_kind_name(x.kind), kind, dl_ctx_error(ctx));
            if (!json_is_null(pa) && pa) {
                cr_expect_eq(st, DL_OK, "%s VA 0x%llx: %s", f->dump, (unsigned long long)va, dl_ctx_error(ctx));
                cr_expect_eq(x.pa, jhex(pa), "%s VA 0x%llx: PA 0x%llx, expected 0x%llx", f->dump,
                             (unsigned long long)va, (unsigned long long)x.pa, (unsigned long long)jhex(pa));
                /* Reading through the translation gives the same bytes as the PA. */
                json_t *present = json_object_get(s, "present");
                if (json_is_true(present)) {
                    uint8_t a[16], b[16];
                    size_t nb = 4096 - (va & 0xFFF) < sizeof a ? 4096 - (va & 0xFFF) : sizeof a;
                    cr_expect_eq(dl_read_virt(d, va, a, nb), DL_OK, "%s VA 0x%llx: %s", f->dump, (unsigned long long)va,
                                 dl_ctx_error(ctx));
                    cr_expect_eq(dl_read_phys(d, jhex(pa), b, nb), DL_OK);
                    cr_expect_eq(memcmp(a, b, nb), 0, "%s VA 0x%llx bytes differ", f->dump, (unsigned long long)va);
                }
            } else {
                uint8_t a[4];
                cr_expect_neq(dl_read_virt(d, va, a, sizeof a), DL_OK, "%s VA 0x%llx must not read", f->dump,
                              (unsigned long long)va);
            }
            n++;
        }
        dl_close(d);
        dl_ctx_free(ctx);
    }
    cr_expect_gt(n, 100, "too few translation samples (%zu)", n);
}

/* libaddrxlat reads pages through the dump's own physical reader. */
static addrxlat_status oracle_get_page(const addrxlat_cb_t *cb, addrxlat_buffer_t *buf)
{
    dl_dump *d = cb->priv;
    uint64_t page = buf->addr.addr & ~0xFFFull;
    uint8_t *p = malloc(4096);
    if (!p || dl_read_phys(d, page, p, 4096) != DL_OK) {
        free(p);
        return ADDRXLAT_ERR_NODATA;
    }
    buf->addr.addr = page;
    buf->ptr = p;
    buf->size = 4096;
    buf->byte_order = ADDRXLAT_LITTLE_ENDIAN;
    buf->priv = p;
    buf->put_page = NULL;
    return ADDRXLAT_OK;
}

static void oracle_put_page(const addrxlat_buffer_t *buf)
{
    free(buf->priv);
}

static unsigned long oracle_caps(const addrxlat_cb_t *cb)
{
    (void)cb;
    return ADDRXLAT_CAPS(ADDRXLAT_MACHPHYSADDR) | ADDRXLAT_CAPS(ADDRXLAT_KPHYSADDR);
}

/* Stubs for every symbol callback (dump-format §5.5: the default chain
 * would treat our priv as its own context). */
static addrxlat_status no_value(const addrxlat_cb_t *cb, const char *name, addrxlat_addr_t *val)
{
    (void)cb, (void)name, (void)val;
    return ADDRXLAT_ERR_NODATA;
}

static addrxlat_status no_offset(const addrxlat_cb_t *cb, const char *o, const char *e, addrxlat_addr_t *val)
{
    (void)cb, (void)o, (void)e, (void)val;
    return ADDRXLAT_ERR_NODATA;
}

static addrxlat_status get_page_with_put(const addrxlat_cb_t *cb, addrxlat_buffer_t *buf)
{
    addrxlat_status st = oracle_get_page(cb, buf);
    if (st == ADDRXLAT_OK)
        buf->put_page = oracle_put_page;
    return st;
}

static void oracle_meth(const char *arch, uint64_t root, addrxlat_meth_t *m)
{
    memset(m, 0, sizeof *m);
    m->kind = ADDRXLAT_PGT;
    m->target_as = ADDRXLAT_MACHPHYSADDR;
    m->param.pgt.root.as = ADDRXLAT_MACHPHYSADDR;
    m->param.pgt.pte_mask = 0;
    addrxlat_paging_form_t *pf = &m->param.pgt.pf;
    if (!strcmp(arch, "x86")) {
        m->param.pgt.root.addr = root & 0xFFFFF000ull;
        *pf = (addrxlat_paging_form_t){ADDRXLAT_PTE_IA32, 3, {12, 10, 10}};
    } else if (!strcmp(arch, "x86-pae")) {
        m->param.pgt.root.addr = root & 0xFFFFFFE0ull;
        *pf = (addrxlat_paging_form_t){ADDRXLAT_PTE_IA32_PAE, 4, {12, 9, 9, 2}};
    } else {
        m->param.pgt.root.addr = root & 0x000FFFFFFFFFF000ull;
        *pf = (addrxlat_paging_form_t){ADDRXLAT_PTE_X86_64, 5, {12, 9, 9, 9, 9}};
    }
}

static int oracle_translate(addrxlat_ctx_t *actx, addrxlat_meth_t *meth, uint64_t va, uint64_t *pa)
{
    addrxlat_step_t st;
    memset(&st, 0, sizeof st);
    st.ctx = actx;
    st.sys = NULL;
    st.meth = meth;
    st.base.addr = va;
    st.base.as = ADDRXLAT_KVADDR;
    addrxlat_status s = addrxlat_walk(&st);
    addrxlat_ctx_clear_err(actx);
    if (s != ADDRXLAT_OK)
        return 0;
    *pa = st.base.addr;
    return 1;
}

/* The forge's random page-table region of a dump, or NULL. */
static json_t *random_pt(const forged *f)
{
    json_t *rp = json_object_get(f->truth, "random_pt");
    return has_page_tables(f) && rp && !json_is_null(rp) ? rp : NULL;
}

Test(vmem, agrees_with_libaddrxlat)
{
    size_t compared = 0;
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        json_t *rp = random_pt(f);
        if (!rp)
            continue;
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = open_forged(f, ctx);
        addrxlat_ctx_t *actx = addrxlat_ctx_new();
        addrxlat_cb_t *cb = addrxlat_ctx_add_cb(actx);
        cb->priv = d;
        cb->get_page = get_page_with_put;
        cb->read_caps = oracle_caps;
        cb->reg_value = no_value;
        cb->sym_value = no_value;
        cb->sym_sizeof = no_value;
        cb->sym_offsetof = no_offset;
        cb->num_value = no_value;
        addrxlat_meth_t meth;
        oracle_meth(f->arch, jhex(json_object_get(rp, "root")), &meth);
        /* Every mapped VA (both ends of each mapping) and a sweep of the
         * whole region, mapped or not: both translators must agree. */
        json_t *mapped = json_object_get(rp, "mapped");
        uint64_t base = jhex(json_object_get(rp, "base")), span = jhex(json_object_get(rp, "span"));
        size_t nprobe = json_array_size(mapped) * 2 + 512;
        for (size_t k = 0; k < nprobe; k++) {
            uint64_t va;
            if (k < json_array_size(mapped) * 2) {
                json_t *m = json_array_get(mapped, k / 2);
                va = jhex(json_array_get(m, 0)) + (k % 2 ? jhex(json_array_get(m, 2)) - 1 : 0);
            } else {
                va = base + (span / 512) * (k - json_array_size(mapped) * 2) + 0x123;
            }
            uint64_t opa = 0;
            int ook = oracle_translate(actx, &meth, va, &opa);
            dl_xlat x;
            dl_status st = dl_translate(d, va, &x);
            int ours = st == DL_OK && x.kind == DL_XLAT_VALID;
            cr_expect_eq(ours, ook, "%s VA 0x%llx: dumpleak %s, libaddrxlat %s", f->dump, (unsigned long long)va,
                         ours ? "maps" : dl_xlat_kind_name(x.kind), ook ? "maps" : "fails");
            if (ours && ook)
                cr_expect_eq(x.pa, opa, "%s VA 0x%llx: 0x%llx vs 0x%llx", f->dump, (unsigned long long)va,
                             (unsigned long long)x.pa, (unsigned long long)opa);
            compared++;
        }
        addrxlat_ctx_decref(actx);
        dl_close(d);
        dl_ctx_free(ctx);
    }
    cr_expect_gt(compared, 1000, "too few oracle comparisons (%zu)", compared);
}

/* dl_vmem_next_candidate, as the nt search and the suspect image scan use
 * it: stepping through the forge's random page tables from translation to
 * next candidate must land on every page the truth says is mapped, and
 * must skip (take fewer steps than pages). */
Test(vmem, next_candidate_skips_nothing_mapped)
{
    size_t checked = 0;
    for (size_t i = 0; i < matrix_count(); i++) {
        const forged *f = matrix_get(i);
        json_t *rp = random_pt(f);
        if (!rp)
            continue;
        dl_ctx *ctx = dl_ctx_new();
        dl_dump *d = open_forged(f, ctx);
        json_t *mapped = json_object_get(rp, "mapped");
        size_t n = json_array_size(mapped), hit = 0;
        uint64_t base = jhex(json_object_get(rp, "base")), span = jhex(json_object_get(rp, "span")), steps = 0;
        for (uint64_t va = base; va && va < base + span; steps++) {
            dl_xlat x;
            dl_status st = dl_vmem_translate(&d->vm, ctx, va, &x);
            for (size_t k = 0; st == DL_OK && k < n; k++)
                hit += jhex(json_array_get(json_array_get(mapped, k), 0)) == va;
            va = st == DL_OK ? va + 4096 : dl_vmem_next_candidate(&d->vm, va, &x);
        }
        cr_expect_eq(hit, n, "%s: %zu of %zu mapped pages reached", f->dump, hit, n);
        cr_expect_lt(steps, span / 4096, "%s: %llu steps over %llu pages", f->dump, (unsigned long long)steps,
                     (unsigned long long)(span / 4096));
        checked++;
        dl_close(d);
        dl_ctx_free(ctx);
    }
    cr_expect_gt(checked, 10, "too few dumps with random page tables (%zu)", checked);
}
