/* Loaded modules from PsLoadedModuleList (KLDR_DATA_TABLE_ENTRY offsets:
 * pool-internals.md §4.1, vol2 vtypes XP..Win10) and unloaded drivers from
 * MmUnloadedDrivers (§4.2: vol3 unloadedmodules-x64/x86.json, MemProcFS). */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "dump.h"
#include "kernel.h"

/* More modules than any Windows loads (a few hundred): a longer list is
 * corrupt or crafted. */
#define DL_MAX_MODULES 4096u
#define DL_UNLOADED_SLOTS 50u
#define KDBG_MMUNLOADEDDRIVERS 0x220u

typedef struct kldr_layout {
    uint32_t dll_base, size_of_image, full_name, base_name, span;
} kldr_layout;

static const kldr_layout kldr32 = {0x18, 0x20, 0x24, 0x2C, 0x34};
static const kldr_layout kldr64 = {0x30, 0x40, 0x48, 0x58, 0x68};

/* Visited-set for cycle detection: open addressing over entry addresses. */
typedef struct seen_set {
    uint64_t slot[2 * DL_MAX_MODULES];
} seen_set;

static int seen_insert(seen_set *s, uint64_t va)
{
    size_t n = sizeof s->slot / sizeof s->slot[0];
    size_t i = (size_t)((va >> 3) * 0x9E3779B97F4A7C15ull % n);
    while (s->slot[i]) {
        if (s->slot[i] == va)
            return 0;
        i = (i + 1) % n;
    }
    s->slot[i] = va;
    return 1;
}

static dl_status walk_loaded(dl_dump *d, uint64_t head, dl_modules *m)
{
    const kldr_layout *L = dl_is64(d) ? &kldr64 : &kldr32;
    int bits = d->info.bits;
    uint64_t flink;
    dl_status st = dl_vmem_read_ptr(&d->vm, d->ctx, bits, head, &flink);
    if (st != DL_OK)
        return st;
    seen_set *seen = calloc(1, sizeof *seen);
    free(m->loaded);
    m->nloaded = 0;
    m->loaded = calloc(DL_MAX_MODULES, sizeof *m->loaded);
    if (!seen || !m->loaded) {
        free(seen);
        return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
    }
    seen_insert(seen, head);
    dl_status result = DL_OK;
    while (flink != head) {
        if (!dl_kernel_va(d, flink)) {
            dl_warn(d->ctx, "module-list-corrupt", "module list link 0x%llx is not a kernel address; list cut short",
                    (unsigned long long)flink);
            result = DL_PARTIAL;
            break;
        }
        if (!seen_insert(seen, flink)) {
            dl_warn(d->ctx, "module-list-cycle", "module list loops back to 0x%llx; list cut short",
                    (unsigned long long)flink);
            result = DL_PARTIAL;
            break;
        }
        if (m->nloaded == DL_MAX_MODULES) {
            dl_warn(d->ctx, "module-list-long", "module list longer than %u entries; list cut short", DL_MAX_MODULES);
            result = DL_PARTIAL;
            break;
        }
        uint8_t e[0x68];
        st = dl_vmem_read(&d->vm, d->ctx, flink, e, L->span);
        if (st != DL_OK) {
            dl_warn(d->ctx, "module-list-absent", "module entry at 0x%llx is not in the dump: %s; list cut short",
                    (unsigned long long)flink, dl_ctx_error(d->ctx));
            result = DL_PARTIAL;
            break;
        }
        dl_module *mod = &m->loaded[m->nloaded++];
        mod->base = dl_leptr(e + L->dll_base, bits);
        mod->size = dl_le32(e + L->size_of_image);
        if (dl_read_unicode_string(d, flink + L->full_name, &mod->path) != DL_OK)
            mod->path = NULL;
        if (dl_read_unicode_string(d, flink + L->base_name, &mod->name) != DL_OK) {
            mod->name = NULL;
            if (mod->path) {
                const char *s = strrchr(mod->path, '\\');
                mod->name = strdup(s ? s + 1 : mod->path);
            }
            if (!mod->name)
                dl_warn(d->ctx, "module-name", "module at 0x%llx has no readable name", (unsigned long long)mod->base);
        }
        flink = dl_leptr(e, bits);
    }
    free(seen);
    return result;
}

static void read_unloaded(dl_dump *d, dl_modules *m)
{
    int is64 = dl_is64(d), bits = d->info.bits;
    uint32_t stride = is64 ? 0x28 : 0x18, start_at = is64 ? 0x10 : 0x08, time_at = is64 ? 0x20 : 0x10;
    uint64_t var, array;
    if (!dl_kdbg_member(d, KDBG_MMUNLOADEDDRIVERS, &var) || !var ||
        dl_vmem_read_ptr(&d->vm, d->ctx, bits, var, &array) != DL_OK) {
        dl_warn(d->ctx, "unloaded-unavailable", "the unloaded-driver list is not reachable through the KDBG");
        return;
    }
    m->unloaded_available = 1;
    if (!array)
        return; /* nothing unloaded since boot */
    m->unloaded = calloc(DL_UNLOADED_SLOTS, sizeof *m->unloaded);
    if (!m->unloaded)
        return;
    /* Read all 50 slots of the ring and keep the ones that validate. */
    for (uint32_t i = 0; i < DL_UNLOADED_SLOTS; i++) {
        uint8_t e[0x28];
        if (dl_vmem_read(&d->vm, d->ctx, array + (uint64_t)i * stride, e, stride) != DL_OK)
            break;
        uint64_t start = dl_leptr(e + start_at, bits), end = dl_leptr(e + start_at + (is64 ? 8 : 4), bits);
        uint64_t t = dl_le64(e + time_at);
        if (!dl_kernel_va(d, start) || end <= start || end - start >= (256u << 20) || !t)
            continue;
        char *name;
        if (dl_read_unicode_string(d, array + (uint64_t)i * stride, &name) != DL_OK)
            continue;
        dl_unloaded *u = &m->unloaded[m->nunloaded++];
        u->name = name;
        u->base = start;
        u->size = end - start;
        u->has_time = 1;
        u->time = t;
    }
}

dl_status dl_get_modules(dl_dump *d, const dl_modules **out)
{
    *out = NULL;
    if (d->modules) {
        *out = d->modules;
        return d->modules_status;
    }
    dl_modules *m = calloc(1, sizeof *m);
    if (!m)
        return dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
    dl_status st;
    if (d->triage) {
        st = dl_triage_modules(d, m);
    } else if (!d->info.has_physical_map) {
        dl_warn(d->ctx, "no-memory", "this dump holds no memory pages");
        st = DL_PARTIAL;
    } else {
        uint64_t head = d->info.ps_loaded_module_list, kdbg_head;
        st = dl_kernel_va(d, head) ? walk_loaded(d, head, m) : DL_PARTIAL;
        /* Header pointer bad or unreadable: try the KDBG's. */
        if (st != DL_OK && !m->nloaded && dl_kdbg_member(d, KDBG_PSLOADEDMODULELIST, &kdbg_head) && kdbg_head != head &&
            dl_kernel_va(d, kdbg_head))
            st = walk_loaded(d, kdbg_head, m);
        if (st != DL_OK && !m->nloaded)
            dl_warn(d->ctx, "modules-unavailable", "the loaded-module list at 0x%llx is not readable: %s",
                    (unsigned long long)head, dl_ctx_error(d->ctx));
        read_unloaded(d, m);
    }
    if (st > DL_PARTIAL)
        st = DL_PARTIAL;
    d->modules = m;
    d->modules_status = st;
    *out = m;
    return st;
}
