/* Type 4 triage dumps (kernel minidumps): TRIAGE_DUMP32/64 header, driver
 * list, string pool, unloaded drivers and the VA ranges the file lends
 * (dump-format §2.6: mindumpdef.h, rizin dmp_specs.h, Ghidra TriageDump.java,
 * checked on public minidumps). */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "dump.h"
#include "kernel.h"

#define TRIAGE_VALID 0x44475254u /* bytes "TRGD" */
/* Far more than any kernel loads; caps hostile counts. */
#define DL_MAX_TRIAGE_DRIVERS 4096u
#define DL_MAX_TRIAGE_BLOCKS 4096u
#define DL_MAX_UNLOADED 50u

struct dl_triage {
    uint32_t driver_list, driver_count, string_pool, string_pool_size;
    uint32_t unloaded_off;
    uint32_t mini_dump_fields;
};

void dl_triage_free(dl_triage *t)
{
    free(t);
}

/* File range [off, off+len) lies inside the file. */
static int in_file(const dl_dump *d, uint64_t off, uint64_t len)
{
    return off <= d->src->size && len <= d->src->size - off;
}

dl_status dl_body_triage(dl_dump *d)
{
    dl_ctx *ctx = d->ctx;
    int is64 = dl_is64(d);
    uint8_t h[0x80];
    size_t hlen = is64 ? 0x80 : 0x68;
    if (dl_source_read(d->src, ctx, d->header_size, h, hlen) != DL_OK)
        return dl_fail(ctx, DL_ECORRUPT, "truncated triage header at offset 0x%x", d->header_size);
    dl_triage *t = calloc(1, sizeof *t);
    if (!t)
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    d->triage = t;
    t->mini_dump_fields = d->info.mini_dump_fields;
    uint32_t valid_off = dl_le32(h + 0x08);
    uint8_t v[4];
    if (!in_file(d, valid_off, 4) || dl_source_read(d->src, ctx, valid_off, v, 4) != DL_OK ||
        dl_le32(v) != TRIAGE_VALID)
        dl_warn(ctx, "triage-unterminated", "triage data lacks its TRGD end marker (ValidOffset 0x%x)", valid_off);
    t->unloaded_off = dl_le32(h + 0x18);
    t->driver_list = dl_le32(h + 0x30);
    t->driver_count = dl_le32(h + 0x34);
    t->string_pool = dl_le32(h + 0x38);
    t->string_pool_size = dl_le32(h + 0x3C);

    /* VA ranges lent by the file: KDBG copy, data page, data blocks. */
    uint32_t o_dp = is64 ? 0x60 : 0x4C, o_dbg = is64 ? 0x70 : 0x58, o_blk = is64 ? 0x78 : 0x60;
    uint64_t dp_va = dl_leptr(h + o_dp, d->info.bits);
    uint32_t dp_off = dl_le32(h + o_dp + (is64 ? 8 : 4)), dp_size = dl_le32(h + o_dp + (is64 ? 12 : 8));
    uint32_t dbg_off = dl_le32(h + o_dbg), dbg_size = dl_le32(h + o_dbg + 4);
    uint32_t blk_off = dl_le32(h + o_blk), blk_count = dl_le32(h + o_blk + 4);
    dl_status st = DL_OK;
    if (dbg_off && dbg_size && in_file(d, dbg_off, dbg_size))
        st = dl_vmem_add_range(&d->vm, ctx, d->info.kdbg_address, dbg_size, dbg_off);
    if (st == DL_OK && dp_off && dp_size && in_file(d, dp_off, dp_size))
        st = dl_vmem_add_range(&d->vm, ctx, dp_va, dp_size, dp_off);
    if (st != DL_OK)
        return st;
    uint32_t bsz = is64 ? 16 : 12;
    if (blk_off && blk_count) {
        if (blk_count > DL_MAX_TRIAGE_BLOCKS || !in_file(d, blk_off, (uint64_t)blk_count * bsz)) {
            dl_warn(ctx, "triage-blocks", "triage data-block table (%u entries at 0x%x) is corrupt; ignored", blk_count,
                    blk_off);
        } else {
            for (uint32_t i = 0; i < blk_count && st == DL_OK; i++) {
                uint8_t b[16];
                if (dl_source_read(d->src, ctx, blk_off + (uint64_t)i * bsz, b, bsz) != DL_OK)
                    break;
                uint64_t va = dl_leptr(b, d->info.bits);
                uint32_t off = dl_le32(b + (is64 ? 8 : 4)), size = dl_le32(b + (is64 ? 12 : 8));
                if (size && in_file(d, off, size))
                    st = dl_vmem_add_range(&d->vm, ctx, va, size, off);
            }
        }
    }
    return st;
}

/* DUMP_STRING: u32 length in WCHARs, UTF-16LE text, u16 NUL; it must lie
 * inside the string pool. */
static char *read_dump_string(dl_dump *d, uint32_t off)
{
    dl_triage *t = d->triage;
    uint64_t pool_end = (uint64_t)t->string_pool + t->string_pool_size;
    if (off < t->string_pool || off + 4ull > pool_end)
        return NULL;
    uint8_t lb[4];
    if (dl_source_read(d->src, d->ctx, off, lb, 4) != DL_OK)
        return NULL;
    uint32_t n = dl_le32(lb);
    if (n > 1024 || off + 4ull + 2ull * n + 2 > pool_end)
        return NULL;
    uint8_t buf[2 * 1024 + 2];
    if (dl_source_read(d->src, d->ctx, off + 4ull, buf, 2ull * n + 2) != DL_OK || dl_le16(buf + 2 * n) != 0)
        return NULL;
    return dl_utf16_to_utf8(buf, n);
}

/* Split "\SystemRoot\system32\x.sys" into name and path (path NULL for a bare name). */
static dl_status set_names(dl_module *m, char *s)
{
    const char *slash = strrchr(s, '\\');
    const char *fwd = strrchr(s, '/');
    if (fwd && (!slash || fwd > slash))
        slash = fwd;
    m->name = strdup(slash ? slash + 1 : s);
    m->path = slash ? s : NULL;
    if (!slash)
        free(s);
    return m->name ? DL_OK : DL_ECORRUPT;
}

static void triage_unloaded(dl_dump *d, dl_modules *m)
{
    dl_triage *t = d->triage;
    int is64 = dl_is64(d);
    uint8_t cb[4];
    m->unloaded_available = 0;
    if (!t->unloaded_off || !in_file(d, t->unloaded_off, 8) || dl_source_read(d->src, d->ctx, t->unloaded_off, cb, 4))
        goto unavailable;
    uint32_t count = dl_le32(cb);
    if (count > DL_MAX_UNLOADED)
        goto unavailable;
    /* 64-bit: 0x38-byte entries from +8.  32-bit UNCERTAIN: 0x28-byte
     * entries from +4 or +8, whichever validates (dump-format §2.6). */
    uint32_t starts[2] = {8, 4};
    uint32_t stride = is64 ? 0x38 : 0x28, name_at = is64 ? 0x10 : 0x8, start_at = is64 ? 0x28 : 0x20;
    for (int s = 0; s < (is64 ? 1 : 2); s++) {
        uint64_t base = (uint64_t)t->unloaded_off + starts[s];
        if (!in_file(d, base, (uint64_t)count * stride))
            continue;
        dl_unloaded *u = calloc(count ? count : 1, sizeof *u);
        if (!u)
            return;
        uint32_t ok = 0;
        for (uint32_t i = 0; i < count; i++) {
            uint8_t e[0x38];
            if (dl_source_read(d->src, d->ctx, base + (uint64_t)i * stride, e, stride) != DL_OK)
                break;
            uint64_t start = dl_leptr(e + start_at, d->info.bits);
            uint64_t end = dl_leptr(e + start_at + (is64 ? 8 : 4), d->info.bits);
            if (!dl_kernel_va(d, start) || end <= start)
                break;
            size_t n = 0;
            while (n < 12 && dl_le16(e + name_at + 2 * n))
                n++;
            u[ok].name = dl_utf16_to_utf8(e + name_at, n);
            u[ok].base = start;
            u[ok].size = end - start;
            ok++;
        }
        if (ok == count) {
            m->unloaded = u;
            m->nunloaded = count;
            m->unloaded_available = 1;
            return;
        }
        for (uint32_t i = 0; i < ok; i++)
            free(u[i].name);
        free(u);
    }
unavailable:
    dl_warn(d->ctx, "unloaded-unavailable", "the triage dump's unloaded-driver list is missing or does not validate");
}

dl_status dl_triage_modules(dl_dump *d, dl_modules *m)
{
    dl_triage *t = d->triage;
    int is64 = dl_is64(d);
    dl_status result = DL_OK;
    uint32_t count = t->driver_count;
    if (!t->driver_list || !count) {
        dl_warn(d->ctx, "no-driver-list", "the triage dump holds no driver list");
        result = DL_PARTIAL;
        count = 0;
    } else if (count > DL_MAX_TRIAGE_DRIVERS) {
        dl_warn(d->ctx, "driver-list-corrupt", "triage driver count %u is implausible", count);
        return DL_PARTIAL;
    }
    uint32_t stride = is64 ? 0x90 : 0x4C;
    if (!is64 && count && t->string_pool > t->driver_list && (t->string_pool - t->driver_list) % count == 0)
        stride = (t->string_pool - t->driver_list) / count;
    if (count && (stride < (is64 ? 0x50u : 0x28u) || !in_file(d, t->driver_list, (uint64_t)count * stride))) {
        dl_warn(d->ctx, "driver-list-corrupt", "triage driver list at 0x%x runs past the end of the file",
                t->driver_list);
        return DL_PARTIAL;
    }
    m->loaded = calloc(count ? count : 1, sizeof *m->loaded);
    if (!m->loaded)
        return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
    uint32_t base_at = is64 ? 0x8 + 0x30 : 0x4 + 0x18, size_at = is64 ? 0x8 + 0x40 : 0x4 + 0x20;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t e[0x90];
        if (dl_source_read(d->src, d->ctx, t->driver_list + (uint64_t)i * stride, e, size_at + 4) != DL_OK)
            break;
        char *s = read_dump_string(d, dl_le32(e));
        if (!s) {
            dl_warn(d->ctx, "driver-name", "triage driver entry %u has a name outside the string pool", i);
            result = DL_PARTIAL;
            continue;
        }
        dl_module *mod = &m->loaded[m->nloaded];
        if (set_names(mod, s) != DL_OK)
            return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
        mod->base = dl_leptr(e + base_at, d->info.bits);
        mod->size = dl_le32(e + size_at);
        m->nloaded++;
    }
    triage_unloaded(d, m);
    return result;
}
