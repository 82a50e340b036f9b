/* Text output: what a WinDbg user reads at a glance. */
#include <stdio.h>

#include "cli.h"

static void print_info(FILE *out, const result *r)
{
    const dl_info *in = dl_get_info(r->dump);
    fprintf(out, "Dump:       %s\n", r->path);
    if (in->signature)
        fprintf(out, "Format:     %s %s, %s (DumpType %u)", in->signature, arch_name(in->arch),
                in->dump_type_name ? in->dump_type_name : "unknown", in->dump_type);
    else
        fprintf(out, "Format:     %s capture of a %s guest (CR3 from %s, KDBG %s%s)", in->input, arch_name(in->arch),
                in->cr3_from ? in->cr3_from : "?", in->kdbg_from ? in->kdbg_from : "not found",
                in->kdbg_encoded ? ", decoded" : "");
    if (in->wrapper)
        fprintf(out, " in a %s wrapper", in->wrapper);
    if (in->has_physical_map)
        fprintf(out, ", %llu pages present (%.1f MiB)", (unsigned long long)in->pages_present,
                in->pages_present / 256.0);
    else
        fprintf(out, ", no physical memory");
    fprintf(out, "\nWindows:    build %u%s, %u processor%s", in->minor_version,
            in->major_version == 0xC ? " checked" : "", in->processors, in->processors == 1 ? "" : "s");
    if (in->build_lab)
        fprintf(out, ", %s", in->build_lab);
    fputc('\n', out);
    if (in->has_bugcheck) {
        const char *name = dl_bugcheck_name(in->bugcheck_code);
        int w = in->bits == 64 ? 16 : 8;
        fprintf(out, "Bugcheck:   0x%08x%s%s (%0*llx, %0*llx, %0*llx, %0*llx)\n", in->bugcheck_code, name ? " " : "",
                name ? name : "", w, (unsigned long long)in->bugcheck_params[0], w,
                (unsigned long long)in->bugcheck_params[1], w, (unsigned long long)in->bugcheck_params[2], w,
                (unsigned long long)in->bugcheck_params[3]);
    }
    char t[32];
    if (in->has_system_time && dl_format_filetime(in->system_time, t, 0))
        fprintf(out, "Crash time: %s\n", t);
}

static void print_modules(FILE *out, const result *r)
{
    const dl_modules *m = r->modules;
    if (!m)
        return;
    int w = dl_get_info(r->dump)->bits == 64 ? 16 : 8;
    fprintf(out, "\nLoaded modules: %zu\n  %-*s  %10s  %-20s %s\n", m->nloaded, w, "Base", "Size", "Name", "Path");
    for (size_t i = 0; i < m->nloaded; i++) {
        const dl_module *x = &m->loaded[i];
        fprintf(out, "  %0*llx  %10llu  %-20s %s\n", w, (unsigned long long)x->base, (unsigned long long)x->size,
                x->name ? x->name : "?", x->path ? x->path : "");
    }
    if (!m->unloaded_available) {
        fprintf(out, "\nUnloaded modules: not available\n");
        return;
    }
    fprintf(out, "\nUnloaded modules: %zu\n", m->nunloaded);
    for (size_t i = 0; i < m->nunloaded; i++) {
        const dl_unloaded *x = &m->unloaded[i];
        char t[32];
        fprintf(out, "  %0*llx  %10llu  %-20s %s\n", w, (unsigned long long)x->base, (unsigned long long)x->size,
                x->name ? x->name : "?", x->has_time && dl_format_filetime(x->time, t, 0) ? t : "");
    }
}

static void print_warnings(FILE *out, const result *r)
{
    size_t n = dl_ctx_warning_count(r->ctx);
    if (n)
        fputc('\n', out);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "warning: %s\n", dl_ctx_warning(r->ctx, i)->message);
}

static void print_module_summary(FILE *out, const result *r)
{
    const dl_modules *m = r->modules;
    if (!m)
        return;
    fprintf(out, "\nModules:    %zu loaded", m->nloaded);
    if (m->unloaded_available)
        fprintf(out, ", %zu unloaded", m->nunloaded);
    fprintf(out, " (dumpleak modules lists them)\n");
}

void print_text(FILE *out, const options *o, const result *r)
{
    print_info(out, r);
    switch (o->cmd) {
    case CMD_MAIN:
        print_module_summary(out, r);
        print_vm(out, r->vm);
        print_pool(out, o, r->pool);
        print_suspect_lines(out, r);
        break;
    case CMD_SUSPECT:
        print_suspects(out, o, r);
        break;
    case CMD_VM:
        print_vm(out, r->vm);
        break;
    case CMD_POOL:
        print_pool(out, o, r->pool);
        break;
    case CMD_BIGPOOL:
        print_bigpool(out, o, r->bigpool);
        break;
    case CMD_MODULES:
        print_modules(out, r);
        break;
    default:
        break;
    }
    print_warnings(out, r);
}
