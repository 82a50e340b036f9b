/* Suspect drivers for a pool tag (pool-internals.md §4.3, §4.4): one pass
 * over the resident pages of every module image finds every wanted tag;
 * allocator imports (matched by resolved IAT address), pooltag.txt, the
 * KMDF default tag, driver files and unloaded drivers add evidence; the
 * candidates are ranked with a confidence. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "kernel.h"
#include "pe.h"
#include "platform.h"
#include "suspect.h"

#define MAX_WANTED 64u
#define MAX_HITS_KEPT 8u
#define DEFAULT_TOP 5u

static const char *const untagged_allocators[] = {"ExAllocatePool", "ExAllocatePoolWithQuota"};
static const char *const tagged_allocators[] = {"ExAllocatePoolWithTag", "ExAllocatePoolWithQuotaTag",
                                                "ExAllocatePoolWithTagPriority", "ExAllocatePool2", "ExAllocatePool3"};

static dl_candidate *candidate(dl_suspect *s, const char *module)
{
    for (size_t i = 0; i < s->ncandidates; i++)
        if (dl_ascii_caseeq(s->candidates[i].module, module))
            return &s->candidates[i];
    dl_candidate *n = realloc(s->candidates, (s->ncandidates + 1) * sizeof *n);
    if (!n)
        return NULL;
    s->candidates = n;
    dl_candidate *c = &s->candidates[s->ncandidates++];
    memset(c, 0, sizeof *c);
    c->module = strdup(module);
    return c->module ? c : (s->ncandidates--, NULL);
}

dl_evidence *dl_add_evidence(dl_suspect *s, const char *module, const char *kind, int score)
{
    dl_candidate *c = candidate(s, module);
    if (!c)
        return NULL;
    c->score += score;
    dl_evidence *n = realloc(c->evidence, (c->nevidence + 1) * sizeof *n);
    if (!n)
        return NULL;
    c->evidence = n;
    dl_evidence *e = &c->evidence[c->nevidence++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    return e;
}

/* Instruction whose imm32 operand starts at b[0] (tag bytes), given up to
 * seven bytes before it (pre[0..6] = b[-7..-1]); NULL if none. */
const char *dl_immediate_form(const uint8_t pre[7], int bits)
{
    const uint8_t *p = pre + 7; /* p[-1] is the byte just before the tag */
    if (bits == 64 && p[-2] == 0x41 && p[-1] >= 0xB8 && p[-1] <= 0xBF)
        return p[-1] == 0xB8 ? "mov r8d, imm32" : p[-1] == 0xB9 ? "mov r9d, imm32" : "mov r32, imm32";
    if (p[-4] == 0xC7 && p[-3] == 0x44 && p[-2] == 0x24)
        return bits == 64 ? "mov dword [rsp+disp8], imm32" : "mov dword [esp+disp8], imm32";
    if (p[-7] == 0xC7 && p[-6] == 0x84 && p[-5] == 0x24)
        return bits == 64 ? "mov dword [rsp+disp32], imm32" : "mov dword [esp+disp32], imm32";
    if (p[-3] == 0xC7 && p[-2] == 0x45)
        return "mov dword [bp+disp8], imm32";
    if (p[-1] == 0x68)
        return "push imm32";
    if (p[-1] >= 0xB8 && p[-1] <= 0xBF)
        return "mov r32, imm32";
    return NULL;
}

/* Tag hit at va in a module: classify and record. */
static void record_hit(dl_suspect *s, const char *module, uint64_t base, const dl_image *img, uint64_t va,
                       const uint8_t pre[7], int bits)
{
    const dl_section *sec = dl_image_section(img, va);
    const char *form = dl_section_is_code(sec) ? dl_immediate_form(pre, bits) : NULL;
    dl_candidate *c = candidate(s, module);
    if (!c)
        return;
    size_t *count = form ? &c->code_hits : &c->data_hits;
    (*count)++;
    if (*count > MAX_HITS_KEPT)
        return;
    dl_evidence *e = dl_add_evidence(s, module, form ? "tag-in-code" : "tag-in-data", form ? 100 : 20);
    if (!e)
        return;
    e->has_address = e->has_offset = 1;
    e->address = va;
    e->offset = va - base;
    snprintf(e->detail, sizeof e->detail, "%s%s%s", form ? form : "bytes", sec ? " in " : "",
             sec ? sec->name : " outside any section");
}

typedef struct wanted {
    uint32_t keys[MAX_WANTED];
    size_t n;
    uint8_t first[256];         /* first tag bytes: most image bytes fail here */
    uint8_t firsts[MAX_WANTED]; /* the distinct first bytes, for memchr */
    size_t nfirsts;
    uint8_t low16[8192]; /* then the low 16 bits */
} wanted;

static void want(wanted *w, uint32_t k)
{
    w->keys[w->n++] = k;
    if (!w->first[k & 0xFF])
        w->firsts[w->nfirsts++] = (uint8_t)(k & 0xFF);
    w->first[k & 0xFF] = 1;
    w->low16[(k & 0xFFFF) >> 3] |= (uint8_t)(1u << (k & 7));
}

static int find_key(const wanted *w, uint32_t k)
{
    if (!(w->low16[(k & 0xFFFF) >> 3] & (1u << (k & 7))))
        return -1;
    for (size_t i = 0; i < w->n; i++)
        if (w->keys[i] == k)
            return (int)i;
    return -1;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* One pass over a module's resident pages for every wanted tag. */
static void scan_module(dl_dump *d, const dl_module *m, const wanted *w, dl_suspects *out, uint64_t *scanned)
{
    dl_image img;
    if (dl_image_load(d, m->base, m->size, &img) != DL_OK)
        img.nsec = 0; /* header absent: hits still count, as data */
    img.base = m->base;
    int bits = d->info.bits;
    uint64_t pages = (m->size + DL_PAGE_SIZE - 1) / DL_PAGE_SIZE;
    uint8_t buf[DL_PAGE_SIZE + 3 + 7];
    for (uint64_t pg = 0; pg < pages; pg++) {
        uint64_t va = m->base + pg * DL_PAGE_SIZE;
        dl_xlat x;
        uint64_t next;
        if (dl_vmem_translate(&d->vm, d->ctx, va, &x) != DL_OK &&
            ((next = dl_vmem_next_candidate(&d->vm, va, &x)) > va + DL_PAGE_SIZE || !next)) {
            /* A missing upper-level table: the whole range it would map is
             * absent, so skip it at once (a crafted SizeOfImage costs nothing). */
            uint64_t skip = next > va ? (next - va) / DL_PAGE_SIZE : pages;
            if (skip > pages - pg)
                skip = pages - pg;
            for (size_t i = 0; i < out->n; i++)
                out->items[i].pages_total += skip;
            pg += skip - 1;
            continue;
        }
        for (size_t i = 0; i < out->n; i++)
            out->items[i].pages_total++;
        /* buf[0..6] = the 7 bytes before the page (zeros if absent). */
        if (x.kind != DL_XLAT_VALID && x.kind != DL_XLAT_TRANSITION && x.kind != DL_XLAT_PROTOTYPE)
            continue;
        if (dl_physmem_read(&d->pm, d->ctx, x.pa & ~(uint64_t)(DL_PAGE_SIZE - 1), buf + 7, DL_PAGE_SIZE) != DL_OK)
            continue;
        for (size_t i = 0; i < out->n; i++)
            out->items[i].pages_resident++;
        /* Image pages are read once: every 16 MiB, let the mapping forget
         * them so memory stays flat however much is scanned. */
        if (++*scanned % 4096 == 0)
            dl_source_release(d->pm.src);
        if (!pg || dl_vmem_read(&d->vm, d->ctx, va - 7, buf, 7) != DL_OK)
            memset(buf, 0, 7);
        size_t tail = 0;
        if (pg + 1 < pages && dl_vmem_read(&d->vm, d->ctx, va + DL_PAGE_SIZE, buf + 7 + DL_PAGE_SIZE, 3) == DL_OK)
            tail = 3;
        /* memchr per distinct first byte (vectorised in libc), then the
         * hits in address order so the evidence kept is the first ones. */
        const uint8_t *p = buf + 7;
        size_t span = DL_PAGE_SIZE + tail - 3, hits[64], nhits = 0;
        for (size_t f = 0; f < w->nfirsts && nhits < 64; f++)
            for (const uint8_t *q = memchr(p, w->firsts[f], span); q && nhits < 64;
                 q = (size_t)(q - p) + 1 < span ? memchr(q + 1, w->firsts[f], span - (size_t)(q - p) - 1) : NULL)
                if (find_key(w, dl_le32(q)) >= 0)
                    hits[nhits++] = (size_t)(q - p);
        if (nhits > 1)
            qsort(hits, nhits, sizeof *hits, cmp_size);
        for (size_t h = 0; h < nhits; h++) {
            size_t off = hits[h];
            record_hit(&out->items[find_key(w, dl_le32(p + off))], m->name ? m->name : "?", m->base, &img, va + off,
                       buf + off, bits);
        }
    }
    dl_ctx_clear_error(d->ctx);
}

typedef struct iat_scan {
    uint64_t addr[7];
    const char *name[7];
    int n;
    int hit[7];
    uint64_t slot[7];
} iat_scan;

static void on_iat(void *arg, uint64_t slot, uint64_t value)
{
    iat_scan *s = arg;
    for (int i = 0; i < s->n; i++)
        if (s->addr[i] == value && !s->hit[i]) {
            s->hit[i] = 1;
            s->slot[i] = slot;
        }
}

/* None: importers of the untagged allocators; Ddk / Wdm: of the tagged ones. */
static void allocator_evidence(dl_dump *d, const dl_modules *mods, dl_suspects *out)
{
    uint32_t none_key = 0x656E6F4Eu, ddk = 0x206B6444u, wdm = 0x206D6457u;
    int need = 0;
    for (size_t i = 0; i < out->n; i++)
        need |= out->items[i].key == none_key || out->items[i].key == ddk || out->items[i].key == wdm;
    if (!need || !mods->nloaded)
        return;
    dl_image nt;
    if (dl_image_load(d, mods->loaded[0].base, mods->loaded[0].size, &nt) != DL_OK) {
        dl_warn(d->ctx, "suspect-exports", "nt's export directory is not readable: allocator imports not matched");
        return;
    }
    iat_scan proto = {0};
    for (size_t i = 0; i < 2 + 5; i++) {
        const char *name = i < 2 ? untagged_allocators[i] : tagged_allocators[i - 2];
        uint64_t a = dl_image_export(d, &nt, name);
        if (a) {
            proto.addr[proto.n] = a;
            proto.name[proto.n++] = name;
        }
    }
    if (!proto.n) {
        dl_warn(d->ctx, "suspect-exports", "no pool allocator found among nt's resident exports");
        return;
    }
    size_t untagged_importers = 0;
    iat_scan *per = calloc(mods->nloaded, sizeof *per);
    if (!per)
        return;
    for (size_t m = 1; m < mods->nloaded; m++) {
        dl_image img;
        per[m] = proto;
        if (dl_image_load(d, mods->loaded[m].base, mods->loaded[m].size, &img) != DL_OK)
            continue;
        dl_image_iat(d, &img, on_iat, &per[m]);
        for (int i = 0; i < per[m].n; i++)
            if (per[m].hit[i] &&
                (!strcmp(per[m].name[i], "ExAllocatePool") || !strcmp(per[m].name[i], "ExAllocatePoolWithQuota"))) {
                untagged_importers++;
                break;
            }
    }
    for (size_t m = 1; m < mods->nloaded; m++) {
        const dl_module *mod = &mods->loaded[m];
        for (int i = 0; i < per[m].n; i++) {
            if (!per[m].hit[i])
                continue;
            int untagged =
                !strcmp(per[m].name[i], "ExAllocatePool") || !strcmp(per[m].name[i], "ExAllocatePoolWithQuota");
            for (size_t t = 0; t < out->n; t++) {
                uint32_t k = out->items[t].key;
                if (!(untagged ? k == none_key : (k == ddk || k == wdm)))
                    continue;
                /* A lone importer of the untagged allocators is the answer. */
                int score = untagged ? (untagged_importers == 1 ? 120 : 60) : 10;
                dl_evidence *e =
                    dl_add_evidence(&out->items[t], mod->name ? mod->name : "?", "imports-allocator", score);
                if (!e)
                    continue;
                e->has_address = e->has_offset = 1;
                e->address = per[m].slot[i];
                e->offset = per[m].slot[i] - mod->base;
                snprintf(e->detail, sizeof e->detail, "imports %s (IAT slot holds nt!%s = 0x%llx)%s", per[m].name[i],
                         per[m].name[i], (unsigned long long)per[m].addr[i],
                         untagged ? (untagged_importers == 1 ? "; the only importer of an untagged allocator" : "")
                                  : "; default tag of ExAllocatePool under POOL_TAGGING");
            }
        }
    }
    free(per);
}

/* Module named by a pooltag.txt binary ("myfault.sys", "nt!io", "TCP"). */
static const dl_module *module_for_binary(const dl_modules *mods, const char *binary)
{
    if (!strncmp(binary, "nt!", 3) || dl_ascii_caseeq(binary, "nt"))
        return mods->nloaded ? &mods->loaded[0] : NULL;
    for (size_t i = 0; i < mods->nloaded; i++) {
        const char *n = mods->loaded[i].name;
        if (!n)
            continue;
        if (dl_ascii_caseeq(n, binary))
            return &mods->loaded[i];
        /* "tcpip" or "TCPIP.SYS" style without the extension. */
        const char *dot = strrchr(n, '.');
        size_t stem = dot ? (size_t)(dot - n) : strlen(n);
        char buf[128];
        if (stem < sizeof buf) {
            memcpy(buf, n, stem);
            buf[stem] = 0;
            if (dl_ascii_caseeq(buf, binary))
                return &mods->loaded[i];
        }
    }
    return NULL;
}

static void pooltag_evidence(const dl_suspect_options *o, const dl_modules *mods, dl_suspect *s)
{
    const char *desc = NULL, *binary = NULL;
    if (!o->tagdb || !dl_tagdb_lookup(o->tagdb, s->key, &desc, &binary) || !binary)
        return;
    const dl_module *m = module_for_binary(mods, binary);
    if (!m || !m->name)
        return;
    dl_evidence *e = dl_add_evidence(s, m->name, "pooltag", 50);
    if (e)
        snprintf(e->detail, sizeof e->detail, "pooltag: %s%s%s", binary, desc ? " - " : "", desc ? desc : "");
}

/* KMDF uses the first four characters of the service name when a driver
 * gives no pool tag ("WDF" prefix skipped; learn.microsoft.com
 * WDF_DRIVER_CONFIG.DriverPoolTag). */
typedef struct range_hit {
    uint64_t lo, hi;
    int hit;
} range_hit;

static void on_iat_range(void *arg, uint64_t slot, uint64_t value)
{
    range_hit *r = arg;
    (void)slot;
    r->hit |= value >= r->lo && value < r->hi;
}

/* Imports from the KMDF runtime: by name, or, with the import descriptors
 * discarded, by IAT values that point into Wdf01000.sys. */
static int imports_wdf(dl_dump *d, const dl_modules *mods, const dl_image *img)
{
    int by_name = dl_image_imports_dll(d, img, "WDF01000.SYS");
    if (by_name >= 0)
        return by_name;
    for (size_t i = 0; i < mods->nloaded; i++)
        if (mods->loaded[i].name && dl_ascii_caseeq(mods->loaded[i].name, "Wdf01000.sys")) {
            range_hit r = {mods->loaded[i].base, mods->loaded[i].base + mods->loaded[i].size, 0};
            dl_image_iat(d, img, on_iat_range, &r);
            return r.hit;
        }
    return 0;
}

static void kmdf_evidence(dl_dump *d, const dl_modules *mods, dl_suspect *s)
{
    for (size_t i = 1; i < mods->nloaded; i++) {
        const char *n = mods->loaded[i].name;
        if (!n)
            continue;
        if ((n[0] == 'w' || n[0] == 'W') && (n[1] == 'd' || n[1] == 'D') && (n[2] == 'f' || n[2] == 'F'))
            n += 3;
        char t[5] = {0};
        size_t k = 0;
        for (; k < 4 && n[k] && n[k] != '.'; k++)
            t[k] = n[k];
        if (k < 4)
            continue;
        char tag[17];
        dl_format_tag(s->key, tag);
        if (!dl_ascii_caseeq(t, tag))
            continue;
        dl_image img;
        int wdf = dl_image_load(d, mods->loaded[i].base, mods->loaded[i].size, &img) == DL_OK &&
                  imports_wdf(d, mods, &img) == 1;
        dl_evidence *e = dl_add_evidence(s, mods->loaded[i].name, "kmdf-default-tag", wdf ? 40 : 10);
        if (e)
            snprintf(e->detail, sizeof e->detail,
                     "tag is the first four characters of the driver's name (KMDF default "
                     "pool tag)%s",
                     wdf ? "; the driver imports WDF01000.SYS" : "");
    }
    dl_ctx_clear_error(d->ctx);
}

static int read_file_bytes(void *arg, uint64_t off, void *buf, size_t len)
{
    const dl_file_map *f = arg;
    if (off > f->size || len > f->size - off)
        return 1;
    memcpy(buf, f->data + off, len);
    return 0;
}

/* Driver files on disk cover pages the dump lacks. */
static void driver_file_evidence(dl_dump *d, const char *dir, const wanted *w, dl_suspects *out)
{
    char **names;
    size_t n;
    if (dl_platform_list_dir(d->ctx, dir, &names, &n) != DL_OK) {
        dl_warn(d->ctx, "drivers-dir", "%s", dl_ctx_error(d->ctx));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        char path[4096];
        dl_file_map f;
        if (len < 4 || !dl_ascii_caseeq(names[i] + len - 4, ".sys") ||
            snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path ||
            dl_platform_map(d->ctx, path, &f) != DL_OK)
            continue;
        dl_image img;
        int pe = dl_pe_parse(d->ctx, read_file_bytes, &f, 0, &img) == DL_OK;
        for (uint64_t off = 0; f.size >= 4 && off <= f.size - 4; off++) {
            int k = find_key(w, dl_le32(f.data + off));
            if (k < 0)
                continue;
            uint8_t pre[7] = {0};
            for (int b = 0; b < 7; b++)
                pre[b] = off + (uint64_t)b >= 7 ? f.data[off + (uint64_t)b - 7] : 0;
            const dl_section *sec = pe ? dl_image_section_at_raw(&img, off) : NULL;
            const char *form = dl_section_is_code(sec) ? dl_immediate_form(pre, img.pe32plus ? 64 : 32) : NULL;
            dl_evidence *e = dl_add_evidence(&out->items[k], names[i], "driver-file", form ? 60 : 15);
            if (!e)
                break;
            e->has_offset = 1;
            e->offset = off;
            snprintf(e->detail, sizeof e->detail, "file %s: %s%s%s at file offset 0x%llx", names[i],
                     form ? form : "bytes", sec ? " in " : "", sec ? sec->name : "", (unsigned long long)off);
        }
        dl_platform_unmap(&f);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    dl_ctx_clear_error(d->ctx);
}

static void unloaded_evidence(const dl_modules *mods, dl_suspect *s)
{
    for (size_t i = 0; i < s->ncandidates; i++)
        if (s->candidates[i].code_hits || s->candidates[i].data_hits || s->candidates[i].score >= 40)
            return; /* a loaded module holds the tag, or imports its allocator */
    for (size_t i = 0; i < mods->nunloaded; i++) {
        const dl_unloaded *u = &mods->unloaded[i];
        if (!u->name)
            continue;
        dl_evidence *e = dl_add_evidence(s, u->name, "unloaded", 5);
        if (!e)
            continue;
        /* The most recently unloaded driver first: the likeliest owner of
         * allocations still outstanding. */
        dl_candidate *c = candidate(s, u->name);
        if (c && u->has_time && u->time > c->sort_time)
            c->sort_time = u->time;
        e->has_address = 1;
        e->address = u->base;
        char t[32];
        if (u->has_time && dl_format_filetime(u->time, t, 1))
            snprintf(e->detail, sizeof e->detail,
                     "unloaded at %s from 0x%llx (%llu bytes); no loaded module holds the tag", t,
                     (unsigned long long)u->base, (unsigned long long)u->size);
        else
            snprintf(e->detail, sizeof e->detail, "unloaded from 0x%llx (%llu bytes); no loaded module holds the tag",
                     (unsigned long long)u->base, (unsigned long long)u->size);
    }
}

static int by_score(const void *a, const void *b)
{
    const dl_candidate *x = a, *y = b;
    if (x->score != y->score)
        return y->score - x->score;
    if (x->sort_time != y->sort_time)
        return x->sort_time < y->sort_time ? 1 : -1;
    return strcmp(x->module, y->module);
}

static void rank(dl_suspect *s)
{
    for (size_t i = 0; i < s->ncandidates; i++) {
        dl_candidate *c = &s->candidates[i];
        int strong = c->code_hits > 0 || c->score >= 120, medium = c->score >= 40;
        c->confidence = strong ? "high" : medium ? "medium" : "low";
    }
    if (s->ncandidates > 1)
        qsort(s->candidates, s->ncandidates, sizeof *s->candidates, by_score);
}

/* The top tags of each pool, by bytes. */
static void top_tags(const dl_pool *pool, unsigned top, wanted *w)
{
    for (int paged = 0; paged < 2; paged++) {
        for (unsigned k = 0; k < top; k++) {
            const dl_pool_tag *best = NULL;
            for (size_t i = 0; i < pool->ntags; i++) {
                const dl_pool_tag *t = &pool->tags[i];
                uint64_t b = paged ? t->paged.bytes : t->nonpaged.bytes;
                if (t->overflow || !b || find_key(w, t->key) >= 0)
                    continue;
                if (!best || b > (paged ? best->paged.bytes : best->nonpaged.bytes))
                    best = t;
            }
            if (!best || w->n == MAX_WANTED)
                break;
            want(w, best->key);
        }
    }
}

dl_status dl_find_suspects(dl_dump *d, const dl_suspect_options *o, dl_suspects **out)
{
    *out = NULL;
    const dl_pool *pool = NULL;
    dl_status pst = dl_get_pool(d, &pool);
    static const wanted empty;
    wanted w = empty;
    if (o->keys) {
        for (size_t i = 0; i < o->nkeys && w.n < MAX_WANTED; i++)
            if (find_key(&w, o->keys[i]) < 0)
                want(&w, o->keys[i]);
    } else if (pool) {
        top_tags(pool, o->top_per_pool ? o->top_per_pool : DEFAULT_TOP, &w);
    } else {
        {
            dl_warn(d->ctx, "suspects-unavailable", "no pool data to choose the top tags from; name tags with --tag");
            return dl_fail(d->ctx, DL_PARTIAL, "no pool data to choose the top tags from");
        }
    }
    const dl_modules *mods;
    dl_status st = dl_get_modules(d, &mods);
    if (!mods || !d->info.has_physical_map) {
        dl_warn(d->ctx, "suspects-unavailable", "this dump holds no module images to search for tags");
        return dl_fail(d->ctx, DL_PARTIAL, "no module images in this dump to search");
    }
    dl_suspects *s = calloc(1, sizeof *s);
    if (!s || !(s->items = calloc(w.n ? w.n : 1, sizeof *s->items))) {
        free(s);
        return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
    }
    s->n = w.n;
    for (size_t i = 0; i < w.n; i++) {
        s->items[i].key = w.keys[i];
        for (size_t t = 0; pool && t < pool->ntags; t++)
            if (!pool->tags[t].overflow && pool->tags[t].key == w.keys[i]) {
                s->items[i].nonpaged_bytes = pool->tags[t].nonpaged.bytes;
                s->items[i].paged_bytes = pool->tags[t].paged.bytes;
                s->items[i].bytes_known = 1;
            }
    }
    uint64_t scanned = 0;
    for (size_t m = 0; m < mods->nloaded; m++)
        scan_module(d, &mods->loaded[m], &w, s, &scanned);
    allocator_evidence(d, mods, s);
    for (size_t i = 0; i < s->n; i++) {
        pooltag_evidence(o, mods, &s->items[i]);
        kmdf_evidence(d, mods, &s->items[i]);
    }
    if (o->drivers_dir)
        driver_file_evidence(d, o->drivers_dir, &w, s);
    for (size_t i = 0; i < s->n; i++) {
        unloaded_evidence(mods, &s->items[i]);
        rank(&s->items[i]);
    }
    *out = s;
    return pst == DL_OK && st == DL_OK ? DL_OK : DL_PARTIAL;
}

void dl_suspects_free(dl_suspects *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        for (size_t c = 0; c < s->items[i].ncandidates; c++) {
            free(s->items[i].candidates[c].module);
            free(s->items[i].candidates[c].evidence);
        }
        free(s->items[i].candidates);
    }
    free(s->items);
    free(s);
}
