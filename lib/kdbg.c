/* KDDEBUGGER_DATA64 ('KDBG'): located from the header, validated by tag and
 * Size, read only below Size (pool-internals.md §1.1-§1.3: vol3 kdbg.json,
 * ReactOS wdbgexts.h, QEMU win_dump.c check_kdbg). */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "dump.h"

#define KDBG_TAG 0x4742444Bu
#define KDBG_MIN_SIZE 0x200u
#define KDBG_MAX_SIZE 0x1000u
#define KDBG_NTBUILDLAB 0x208u

static int size_plausible(uint32_t size)
{
    return size >= KDBG_MIN_SIZE && size <= KDBG_MAX_SIZE && size % 8 == 0;
}

/* Read the build-lab string (ASCII, NUL-terminated, printable). */
static void load_build_lab(dl_dump *d)
{
    uint64_t va;
    if (!dl_kdbg_member(d, KDBG_NTBUILDLAB, &va) || !va)
        return;
    char s[sizeof d->build_lab];
    size_t n = 0;
    while (n < sizeof s - 1) {
        uint8_t c;
        if (dl_vmem_read(&d->vm, d->ctx, va + n, &c, 1) != DL_OK)
            return;
        if (!c)
            break;
        if (c < 0x20 || c > 0x7E)
            return;
        s[n++] = (char)c;
    }
    if (n == 0 || n == sizeof s - 1)
        return;
    s[n] = 0;
    memcpy(d->build_lab, s, n + 1);
    d->info.build_lab = d->build_lab;
}

dl_status dl_kdbg_load(dl_dump *d)
{
    dl_kdbg *k = &d->kdbg;
    if (k->tried)
        return k->valid ? DL_OK : DL_PARTIAL;
    k->tried = 1;
    k->va = d->info.kdbg_address;
    uint8_t h[0x18];
    dl_status st = dl_vmem_read(&d->vm, d->ctx, k->va, h, sizeof h);
    if (st != DL_OK) {
        dl_warn(d->ctx, "kdbg-unreadable", "KDBG at 0x%llx is not readable: %s", (unsigned long long)k->va,
                dl_ctx_error(d->ctx));
        return DL_PARTIAL;
    }
    uint32_t tag = dl_le32(h + 0x10), size = dl_le32(h + 0x14);
    if (tag != KDBG_TAG) {
        dl_warn(d->ctx, "kdbg-invalid", "no KDBG tag at 0x%llx (the block may be encoded)", (unsigned long long)k->va);
        return DL_PARTIAL;
    }
    if (!size_plausible(size)) {
        dl_warn(d->ctx, "kdbg-invalid", "KDBG at 0x%llx has an implausible Size 0x%x", (unsigned long long)k->va, size);
        return DL_PARTIAL;
    }
    k->data = malloc(size);
    if (!k->data)
        return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
    /* Members on a page the dump lacks stay unknown: keep what is readable. */
    memset(k->data, 0, size);
    uint32_t got = 0;
    while (got < size) {
        uint32_t chunk = (uint32_t)(DL_PAGE_SIZE - ((k->va + got) & (DL_PAGE_SIZE - 1)));
        if (chunk > size - got)
            chunk = size - got;
        if (dl_vmem_read(&d->vm, d->ctx, k->va + got, k->data + got, chunk) != DL_OK)
            break;
        got += chunk;
    }
    k->size = got;
    if (got < size)
        dl_warn(d->ctx, "kdbg-partial", "only 0x%x of the KDBG's 0x%x bytes are in the dump", got, size);
    k->valid = 1;
    load_build_lab(d);
    return DL_OK;
}

int dl_kdbg_member(dl_dump *d, uint32_t off, uint64_t *out)
{
    dl_kdbg *k = &d->kdbg;
    if (!k->valid || off + 8u > k->size)
        return 0;
    /* Fields are 64-bit in both layouts; x86 kernels use the low half. */
    uint64_t v = dl_le64(k->data + off);
    *out = dl_is64(d) ? v : (v & 0xFFFFFFFFull);
    return 1;
}
