/* dumpleak: parse options, analyse each dump, hand results to a formatter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jobs.h"

static const char usage[] = "usage: dumpleak [COMMAND] [OPTIONS] DUMP...\n"
                            "commands: (none) triage report, info, vm, pool, bigpool, modules, suspect\n"
                            "options: --json --top N --sort KEY --tag PATTERN --pooltag FILE --drivers DIR\n"
                            "         --free -j N --input raw --no-cache --help --version\n"
                            "See dumpleak(1).\n";

/* Prints the reason and the usage summary; releases what main holds. */
static int usage_error_free(void *held, const char *fmt, const char *arg);
#define usage_error(...) usage_error_free(paths, __VA_ARGS__)

static int usage_error_free(void *held, const char *fmt, const char *arg)
{
    free(held);
    fprintf(stderr, "dumpleak: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return DL_EUSAGE;
}

static int parse_command(const char *s, command *out)
{
    static const struct {
        const char *name;
        command cmd;
    } cmds[] = {{"info", CMD_INFO},       {"vm", CMD_VM},           {"pool", CMD_POOL},
                {"bigpool", CMD_BIGPOOL}, {"modules", CMD_MODULES}, {"suspect", CMD_SUSPECT}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(s, cmds[i].name)) {
            *out = cmds[i].cmd;
            return 1;
        }
    return 0;
}

/* Value of an option given as "--opt VALUE" or "--opt=VALUE". */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (!strncmp(argv[*i], name, n) && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (!strcmp(argv[*i], name) && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static int is_option(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(arg, name, n) && (arg[n] == 0 || arg[n] == '=');
}

static int parse_int(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 1000000)
        return 0;
    *out = (int)v;
    return 1;
}

/* Print one dump's result and release it. */
static void emit(const options *o, result *r)
{
    if (o->json)
        print_json(stdout, o, r);
    else if (r->dump)
        print_text(stdout, o, r);
    if (!r->dump)
        fprintf(stderr, "dumpleak: %s: %s\n", r->path, r->ctx ? dl_ctx_error(r->ctx) : "out of memory");
    fflush(stdout);
    dl_suspects_free(r->suspects);
    dl_close(r->dump);
    dl_ctx_free(r->ctx);
    r->suspects = NULL;
    r->dump = NULL;
    r->ctx = NULL;
}

int main(int argc, char **argv)
{
    options o = {.cmd = CMD_MAIN, .top = -1, .jobs = 1};
    if (cli_platform_args(&argc, &argv))
        return DL_EUSAGE;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    int npaths = 0, i = 1, only_paths = 0;
    if (!paths)
        return DL_EUSAGE;
    if (i < argc && parse_command(argv[i], &o.cmd))
        i++;
    o.pooltag = getenv("DUMPLEAK_POOLTAG");
    for (; i < argc; i++) {
        const char *a = argv[i], *v;
        if (only_paths || a[0] != '-' || !strcmp(a, "-")) {
            /* The command may follow options ("dumpleak --json info X"). */
            if (!npaths && o.cmd == CMD_MAIN && !only_paths && parse_command(a, &o.cmd))
                continue;
            paths[npaths++] = a;
        } else if (!strcmp(a, "--")) {
            only_paths = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            free(paths);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("dumpleak %s\ninputs: crashdump (PAGEDUMP, PAGEDU64: DumpType 1, 2, 4, 5, 6, 8, 9, 10)\n"
                   "wrappers: gzip, zip (deflate, stored, ZIP64), cab (MSZIP)\n"
#ifdef HAVE_LIBKDUMPFILE
                   "captures: elf (QEMU, VirtualBox), kdump (zlib, lzo, snappy), kdump-flattened (libkdumpfile), raw,\n"
                   "          vmem with .vmss/.vmsn, VMware state files with the memory inline\n",
#else
                   "captures: raw, vmem with .vmss/.vmsn, VMware state files (built without libkdumpfile: no elf, no "
                   "kdump)\n",
#endif
                   DL_VERSION);
            free(paths);
            return 0;
        } else if (!strcmp(a, "--json")) {
            o.json = 1;
        } else if (!strcmp(a, "--free")) {
            o.free_entries = 1;
        } else if (!strcmp(a, "--no-cache")) {
            o.no_cache = 1;
        } else if (is_option(a, "--top")) {
            if (!(v = option_value(argc, argv, &i, "--top")) || !parse_int(v, &o.top))
                return usage_error("--top needs a number%s", "");
        } else if (is_option(a, "-j")) {
            if (!(v = option_value(argc, argv, &i, "-j")) || !parse_int(v, &o.jobs) || o.jobs < 1)
                return usage_error("-j needs a number of at least 1%s", "");
        } else if (is_option(a, "--sort")) {
            if (!(v = option_value(argc, argv, &i, "--sort")))
                return usage_error("--sort needs a key%s", "");
            if (strcmp(v, "nonpaged") && strcmp(v, "paged") && strcmp(v, "tag") && strcmp(v, "allocs") &&
                strcmp(v, "diff"))
                return usage_error("unknown sort key '%s' (nonpaged, paged, tag, allocs, diff)", v);
            o.sort = v;
        } else if (is_option(a, "--tag")) {
            if (!(o.tag = option_value(argc, argv, &i, "--tag")))
                return usage_error("--tag needs a pattern%s", "");
        } else if (is_option(a, "--pooltag")) {
            if (!(o.pooltag = option_value(argc, argv, &i, "--pooltag")))
                return usage_error("--pooltag needs a file%s", "");
        } else if (is_option(a, "--drivers")) {
            if (!(o.drivers = option_value(argc, argv, &i, "--drivers")))
                return usage_error("--drivers needs a directory%s", "");
        } else if (is_option(a, "--input")) {
            if (!(v = option_value(argc, argv, &i, "--input")) || strcmp(v, "raw"))
                return usage_error("--input takes 'raw'%s", "");
            o.raw_input = 1;
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (!npaths)
        return usage_error("no DUMP given%s", "");

    dl_ctx *tctx = dl_ctx_new();
    if (!tctx || dl_tagdb_load(tctx, o.pooltag, &o.tagdb) != DL_OK) {
        fprintf(stderr, "dumpleak: %s\n", tctx ? dl_ctx_error(tctx) : "out of memory");
        dl_ctx_free(tctx);
        free(paths);
        return DL_EUSAGE;
    }
    dl_ctx_free(tctx);
    int worst = run_jobs(&o, paths, npaths, o.jobs, emit);
    fflush(stdout);
    dl_tagdb_free(o.tagdb);
    free(paths);
    return worst;
}
