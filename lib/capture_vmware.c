/* VMware .vmss/.vmsn state files (vm-captures.md §4.1; layout as read by
 * crash's vmware_vmss.h and Volatility 3's layers/vmware.py): a group
 * table, each group a run of tags.  The `memory` group maps guest pages to
 * the .vmem (or to an inline Memory block); the `cpu` group holds CR3. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "capture.h"
#include "ctx.h"

#define GROUP_ENTRY 80
#define GROUP_NAME 64
#define MAX_GROUPS 1024
#define MAX_REGIONS 65536
#define MAX_TAGS (1u << 20)
#define VALUE_COMPRESSED 62
#define VALUE_BLOCK 63
#define SEG_CS 1
#define SEG_GS 5

/* Magic values the public readers accept; low nibble 0 = the old layout
 * with 32-bit block sizes. */
static int known_magic(uint32_t m, int *old)
{
    *old = (m & 0xF) == 0;
    return m == 0xBED2BED2u || m == 0xBED3BED3u || m == 0xBAD1BAD1u || m == 0xBAD2BAD2u || m == 0xBED1BED1u ||
           m == 0xBED0BED0u || m == 0xBED2BED0u;
}

typedef struct group {
    char name[GROUP_NAME + 1];
    uint64_t off, size;
} group;

/* Group i of the table, sane or not (0). */
static int read_group(dl_source *src, dl_ctx *ctx, uint32_t i, group *g)
{
    uint8_t e[GROUP_ENTRY];
    if (dl_source_read(src, ctx, 12 + (uint64_t)i * GROUP_ENTRY, e, sizeof e) != DL_OK)
        return 0;
    size_t n = 0;
    while (n < GROUP_NAME && e[n])
        if (e[n] < 0x20 || e[n] > 0x7E || ++n == GROUP_NAME)
            return 0;
    memcpy(g->name, e, n);
    g->name[n] = 0;
    g->off = dl_le64(e + GROUP_NAME);
    g->size = dl_le64(e + GROUP_NAME + 8);
    return n > 0 && g->off < src->size;
}

static int header(dl_source *src, dl_ctx *ctx, uint32_t *ngroups, int *old)
{
    uint8_t h[12];
    if (src->size < sizeof h || dl_source_read(src, ctx, 0, h, sizeof h) != DL_OK)
        return 0;
    *ngroups = dl_le32(h + 8);
    return known_magic(dl_le32(h), old) && *ngroups >= 1 && *ngroups <= MAX_GROUPS &&
           12 + (uint64_t)*ngroups * GROUP_ENTRY <= src->size;
}

/* Magic and a group table whose every entry is sane. */
static int sane(dl_source *src, dl_ctx *ctx, uint32_t *ngroups, int *old)
{
    int ok = header(src, ctx, ngroups, old);
    for (uint32_t i = 0; ok && i < *ngroups; i++) {
        group g;
        ok = read_group(src, ctx, i, &g);
    }
    return ok;
}

int dl_vmss_probe(dl_source *src)
{
    dl_ctx *ctx = dl_ctx_new();
    uint32_t n;
    int old, ok = ctx && sane(src, ctx, &n, &old);
    dl_ctx_free(ctx);
    return ok;
}

/* ---- tags ---- */

typedef struct tag {
    char name[256];
    int nidx;
    uint32_t idx[3];
    int size;           /* 0..61 inline, 62 compressed block, 63 block */
    uint64_t value;     /* inline values, little endian, up to 8 bytes */
    uint8_t raw[61];    /* inline value bytes */
    uint64_t data, len; /* block data in the file */
} tag;

typedef struct walk {
    dl_source *src;
    const char *group;
    uint64_t at, end; /* the group's bytes, cut at the end of the file */
    int old, done;
    uint32_t count;
} walk;

static dl_status walk_fail(dl_dump *d, walk *w, const char *what)
{
    return dl_fail(d->ctx, DL_ECORRUPT, "VMware state file: group '%s': %s at offset 0x%llx", w->group, what,
                   (unsigned long long)w->at);
}

/* The next tag of the group; DL_OK with w->done at its terminating zero. */
static dl_status next_tag(dl_dump *d, walk *w, tag *t)
{
    uint8_t h[2];
    if (w->at + 2 > w->end || dl_source_read(w->src, d->ctx, w->at, h, 2) != DL_OK)
        return walk_fail(d, w, "the tag list runs past the group without its end mark");
    if (!h[0] && !h[1]) {
        w->done = 1;
        return DL_OK;
    }
    if (++w->count > MAX_TAGS)
        return walk_fail(d, w, "more than a million tags");
    t->size = h[0] & 0x3F;
    t->nidx = h[0] >> 6;
    uint64_t p = w->at + 2, namelen = h[1];
    uint8_t idx[12];
    if (p + namelen + 4u * (unsigned)t->nidx > w->end ||
        dl_source_read(w->src, d->ctx, p, t->name, (size_t)namelen) != DL_OK ||
        dl_source_read(w->src, d->ctx, p + namelen, idx, 4u * (unsigned)t->nidx) != DL_OK)
        return walk_fail(d, w, "a tag's name runs past the group");
    t->name[namelen] = 0;
    for (int i = 0; i < t->nidx; i++)
        t->idx[i] = dl_le32(idx + 4 * i);
    p += namelen + 4u * (unsigned)t->nidx;
    t->value = t->data = t->len = 0;
    if (t->size < VALUE_COMPRESSED) {
        if (p + (unsigned)t->size > w->end || dl_source_read(w->src, d->ctx, p, t->raw, (size_t)t->size) != DL_OK)
            return walk_fail(d, w, "a tag's value runs past the group");
        for (int i = t->size < 8 ? t->size : 8; i-- > 0;)
            t->value = t->value << 8 | t->raw[i];
        w->at = p + (unsigned)t->size;
        return DL_OK;
    }
    /* Block: size in the file, size in memory, u16 pad length, pad, data. */
    uint8_t b[18];
    size_t hdr = w->old ? 10 : 18;
    if (p + hdr > w->end || dl_source_read(w->src, d->ctx, p, b, hdr) != DL_OK)
        return walk_fail(d, w, "a block header runs past the group");
    t->len = w->old ? dl_le32(b) : dl_le64(b);
    t->data = p + hdr + dl_le16(b + hdr - 2);
    if (t->data > w->src->size || t->len > w->src->size - t->data)
        return walk_fail(d, w, "a block runs past the end of the file");
    w->at = t->data + t->len;
    /* The group size may not cover an inline Memory block (§4.1, UNCERTAIN):
     * a block may leave the group, and the walk ends with it. */
    if (w->at > w->end) {
        dl_warn(d->ctx, "vmss-group-size", "VMware state file: a '%s' block runs past the size of group '%s'", t->name,
                w->group);
        w->done = 1;
    }
    return DL_OK;
}

static int find_group(dl_dump *d, dl_source *src, uint32_t ngroups, const char *name, group *out)
{
    for (uint32_t i = 0; i < ngroups; i++)
        if (read_group(src, d->ctx, i, out) && !strcmp(out->name, name))
            return 1;
    return 0;
}

static void walk_init(walk *w, dl_source *src, const group *g, int old)
{
    memset(w, 0, sizeof *w);
    w->src = src;
    w->group = g->name;
    w->at = g->off;
    w->end = g->size > src->size - g->off ? src->size : g->off + g->size;
    w->old = old;
}

/* ---- memory group ---- */

typedef struct region_fields {
    uint64_t v[3];
    unsigned have; /* bit per field */
} region_fields;

static dl_status memory_group(dl_dump *d, dl_source *src, const group *g, int old, dl_vmss *v)
{
    static const char *field[3] = {"regionPPN", "regionPageNum", "regionSize"};
    region_fields *r = NULL;
    size_t nr = 0;
    uint64_t count = 0;
    walk w;
    walk_init(&w, src, g, old);
    dl_status st = DL_OK;
    tag t;
    while (st == DL_OK && !w.done && (st = next_tag(d, &w, &t)) == DL_OK && !w.done) {
        if (!strcmp(t.name, "regionsCount") && !t.nidx && t.size < VALUE_COMPRESSED) {
            count = t.value;
            continue;
        }
        if (!strcmp(t.name, "Memory") && t.size >= VALUE_COMPRESSED) {
            if (t.size == VALUE_COMPRESSED)
                st = dl_fail(d->ctx, DL_EUNSUPPORTED,
                             "VMware state file: the Memory block is compressed, a compression dumpleak lacks");
            v->has_memory = 1;
            v->memory_off = t.data;
            v->memory_len = t.len;
            continue;
        }
        for (int f = 0; f < 3; f++) {
            if (strcmp(t.name, field[f]) || t.nidx != 1 || t.size >= VALUE_COMPRESSED)
                continue;
            if (t.idx[0] >= MAX_REGIONS) {
                st = walk_fail(d, &w, "a region index above 65535");
                break;
            }
            if (t.idx[0] >= nr) {
                size_t grow = (size_t)t.idx[0] + 1 > 2 * nr ? (size_t)t.idx[0] + 1 : 2 * nr;
                region_fields *n = realloc(r, grow * sizeof *n);
                if (!n) {
                    st = dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
                    break;
                }
                memset(n + nr, 0, (grow - nr) * sizeof *n);
                r = n;
                nr = grow;
            }
            r[t.idx[0]].v[f] = t.value;
            r[t.idx[0]].have |= 1u << f;
        }
    }
    if (st == DL_OK && count > MAX_REGIONS)
        st = dl_fail(d->ctx, DL_ECORRUPT, "VMware state file: regionsCount %llu is not plausible",
                     (unsigned long long)count);
    if (st == DL_OK && count && !(v->region = calloc((size_t)count, sizeof *v->region)))
        st = dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
    for (uint64_t i = 0; st == DL_OK && i < count; i++) {
        if (i >= nr || r[i].have != 7)
            st = dl_fail(d->ctx, DL_ECORRUPT, "VMware state file: region %llu of %llu lacks its PPN, page or size",
                         (unsigned long long)i, (unsigned long long)count);
        else
            v->region[v->nregion++] = (dl_vmss_region){r[i].v[0], r[i].v[1], r[i].v[2]};
    }
    free(r);
    return st;
}

/* ---- cpu group ---- */

typedef struct cpu_regs {
    uint64_t cr0, cr3, cr4, cs, gs_base, idt_lo, idt_hi;
    unsigned have; /* CR0 1, CR3 2, CR4 4, CS 8, GS 16, IDT 32 */
} cpu_regs;

static void cpu_tag(dl_dump *d, dl_source *src, const tag *t, cpu_regs *c, int *compressed)
{
    if (!t->nidx || t->idx[0] >= DL_MAX_VCPUS)
        return;
    cpu_regs *r = &c[t->idx[0]];
    int inline_value = t->size < VALUE_COMPRESSED;
    if (!strcmp(t->name, "CR64") && t->nidx == 1 && t->size == VALUE_COMPRESSED) {
        *compressed = 1;
    } else if (!strcmp(t->name, "CR64") && t->nidx == 1 && t->size == VALUE_BLOCK && t->len >= 40) {
        /* cr0..cr8 as u64 (72 bytes in crash's reading); CR0-CR4 are enough. */
        uint8_t b[40];
        if (dl_source_read(src, d->ctx, t->data, b, sizeof b) == DL_OK) {
            r->cr0 = dl_le64(b), r->cr3 = dl_le64(b + 24), r->cr4 = dl_le64(b + 32);
            r->have |= 7;
        }
    } else if (!strcmp(t->name, "CR64") && t->nidx == 2 && inline_value) {
        if (t->idx[1] == 0)
            r->cr0 = t->value, r->have |= 1;
        else if (t->idx[1] == 3)
            r->cr3 = t->value, r->have |= 2;
        else if (t->idx[1] == 4)
            r->cr4 = t->value, r->have |= 4;
    } else if (!strcmp(t->name, "S") && t->nidx == 2 && t->idx[1] == SEG_CS && inline_value) {
        r->cs = t->value, r->have |= 8;
    } else if (!strcmp(t->name, "S.base64") && t->nidx == 2 && t->idx[1] == SEG_GS && inline_value) {
        r->gs_base = t->value, r->have |= 16;
    } else if (!strcmp(t->name, "IDTR") && t->nidx == 1 && t->size != VALUE_COMPRESSED &&
               (t->size == VALUE_BLOCK ? t->len >= 10 : t->size >= 10)) {
        /* u16 limit, u64 base: a block, or inline (UNCERTAIN, §4.1). */
        uint8_t b[10];
        if (t->size < VALUE_COMPRESSED)
            memcpy(b, t->raw, sizeof b);
        if (t->size < VALUE_COMPRESSED || dl_source_read(src, d->ctx, t->data, b, sizeof b) == DL_OK) {
            uint64_t base = dl_le64(b + 2);
            r->idt_lo = base & 0xFFFFFFFFu, r->idt_hi = base >> 32, r->have |= 32;
        }
    } else if (!strcmp(t->name, "IDTR") && t->nidx == 2 && inline_value && (t->idx[1] == 1 || t->idx[1] == 2)) {
        if (t->idx[1] == 1)
            r->idt_lo = t->value & 0xFFFFFFFFu;
        else
            r->idt_hi = t->value & 0xFFFFFFFFu;
        r->have |= 32;
    }
}

/* The vCPUs of the cpu group, appended to notes only when the whole group
 * walks cleanly. */
static dl_status cpu_group(dl_dump *d, dl_source *src, const group *g, int old, dl_capture_notes *notes)
{
    cpu_regs *c = calloc(DL_MAX_VCPUS, sizeof *c);
    if (!c)
        return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
    walk w;
    walk_init(&w, src, g, old);
    int compressed = 0;
    tag t;
    dl_status st;
    while ((st = next_tag(d, &w, &t)) == DL_OK && !w.done)
        cpu_tag(d, src, &t, c, &compressed);
    if (compressed)
        dl_warn(d->ctx, "vmss-cpu", "VMware state file: compressed CR64 records are not read");
    for (int i = 0; st == DL_OK && i < DL_MAX_VCPUS; i++) {
        if (!(c[i].have & 2) || notes->ncpu == DL_MAX_VCPUS)
            continue;
        dl_vcpu *v = &notes->cpu[notes->ncpu++];
        memset(v, 0, sizeof *v);
        v->from = "vmware-state";
        v->cr3 = c[i].cr3;
        v->has_cr3 = 1;
        /* No EFER in the state: PAE paging may be x64 (§8.6). */
        v->modes = c[i].have & 1 ? dl_capture_modes(c[i].cr0, c[i].cr4, 0, 0) : 0;
        /* Without CS and GS the kernel-mode test cannot pass: RPL 3. */
        v->cs = c[i].have & 8 ? c[i].cs : 3;
        v->gs_base = c[i].gs_base;
        v->idt_base = c[i].idt_lo | c[i].idt_hi << 32;
    }
    free(c);
    return st;
}

dl_status dl_vmss_parse(dl_dump *d, dl_source *src, dl_vmss *v, dl_capture_notes *notes)
{
    memset(v, 0, sizeof *v);
    uint32_t n;
    int old;
    group g;
    if (!sane(src, d->ctx, &n, &old))
        return dl_fail(d->ctx, DL_ECORRUPT, "not a VMware state file (magic or group table)");
    if (!find_group(d, src, n, "memory", &g))
        return dl_fail(d->ctx, DL_ECORRUPT, "VMware state file without a 'memory' group");
    dl_status st = memory_group(d, src, &g, old, v);
    if (st != DL_OK) {
        dl_vmss_free(v);
        return st;
    }
    if (!find_group(d, src, n, "cpu", &g)) {
        dl_warn(d->ctx, "vmss-cpu", "VMware state file without a 'cpu' group: CR3 is searched for");
        return DL_OK;
    }
    /* CPU state is a bonus: a bad cpu group costs the registers (none are
     * added then), not the file. */
    if (cpu_group(d, src, &g, old, notes) != DL_OK)
        dl_warn(d->ctx, "vmss-cpu", "%s: CR3 is searched for", dl_ctx_error(d->ctx));
    dl_ctx_clear_error(d->ctx);
    return DL_OK;
}

static int by_ppn(const void *a, const void *b)
{
    const dl_vmss_region *x = a, *y = b;
    return x->ppn < y->ppn ? -1 : x->ppn > y->ppn;
}

dl_status dl_vmss_check_regions(dl_dump *d, const dl_vmss *v, uint64_t image_pages)
{
    dl_vmss_region *s = malloc(v->nregion * sizeof *s + 1);
    if (!s)
        return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
    memcpy(s, v->region, v->nregion * sizeof *s);
    qsort(s, v->nregion, sizeof *s, by_ppn);
    dl_status st = DL_OK;
    for (size_t i = 0; i < v->nregion && st == DL_OK; i++) {
        const dl_vmss_region *r = &s[i];
        if (r->page > image_pages || r->pages > image_pages - r->page || r->ppn >= (1ull << 40) ||
            r->pages > (1ull << 40) - r->ppn)
            st = dl_fail(d->ctx, DL_ECORRUPT,
                         "VMware region at PPN 0x%llx (%llu pages from page 0x%llx) lies outside the %llu-page memory "
                         "image",
                         (unsigned long long)r->ppn, (unsigned long long)r->pages, (unsigned long long)r->page,
                         (unsigned long long)image_pages);
        else if (i && s[i - 1].ppn + s[i - 1].pages > r->ppn)
            st = dl_fail(d->ctx, DL_ECORRUPT, "VMware regions overlap at PPN 0x%llx", (unsigned long long)r->ppn);
    }
    free(s);
    return st;
}

void dl_vmss_free(dl_vmss *v)
{
    free(v->region);
    v->region = NULL;
    v->nregion = 0;
}
