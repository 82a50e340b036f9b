/* The CLI: options, and the two formatters of one analysis result. */
#ifndef DL_CLI_H
#define DL_CLI_H

#include <stdio.h>

#include "dumpleak.h"

typedef struct json_t *json_t_ptr;

typedef enum command { CMD_MAIN, CMD_INFO, CMD_VM, CMD_POOL, CMD_BIGPOOL, CMD_MODULES, CMD_SUSPECT } command;

typedef struct options {
    command cmd;
    int json;
    int top;          /* -1 = command default */
    const char *sort; /* NULL = command default */
    const char *tag;  /* pattern */
    const char *pooltag;
    const char *drivers;
    int free_entries;
    int jobs;
    int raw_input;
    int no_cache;
    dl_tagdb *tagdb; /* --pooltag / DUMPLEAK_POOLTAG over the built-ins */
} options;

/* What one dump produced: the open dump (or NULL) and its status. */
typedef struct result {
    const char *path;
    dl_ctx *ctx;
    dl_dump *dump;
    dl_status status; /* open status; then the worst section status */
    const dl_modules *modules;
    const dl_vm *vm;
    const dl_pool *pool;
    const dl_bigpool *bigpool;
    dl_suspects *suspects;
} result;

/* Pool rows selected and sorted for display: indexes into pool->tags. */
typedef struct tag_view {
    size_t n;
    size_t *idx;
} tag_view;

/* Rows with any non-zero counter matching --tag, sorted per --sort,
 * limited by --top (default_top when --top is not given; 0 = all). */
int select_tags(const options *o, const dl_pool *pool, int default_top, tag_view *out);
long long counts_diff(const dl_pool_counts *c);
/* Big-page entries selected by --free, --tag and --top, in table order. */
int select_bigpool(const options *o, const dl_bigpool *b, tag_view *out);
/* "nonpaged", "paged", "nonpaged-nx" or NULL. */
const char *pool_type_name(dl_pool_type t);

void print_vm(FILE *out, const dl_vm *vm);
void print_suspects(FILE *out, const options *o, const result *r);
void print_suspect_lines(FILE *out, const result *r);
json_t_ptr suspects_json(const result *r);
/* "4.65 GiB" */
void human_bytes(unsigned long long b, char buf[32]);
void print_pool(FILE *out, const options *o, const dl_pool *pool);
void print_bigpool(FILE *out, const options *o, const dl_bigpool *b);

void analyse(const options *o, result *r);
void print_text(FILE *out, const options *o, const result *r);
void print_json(FILE *out, const options *o, const result *r);

const char *arch_name(dl_arch a);

/* Platform hook before option parsing: on Windows, replaces argv with the
 * UTF-8 form of the wide command line and sets stdout to binary so output
 * is byte-identical to POSIX ("\n").  Returns non-zero on failure. */
int cli_platform_args(int *argc, char ***argv);

int cli_stderr_is_tty(void);
/* dl_progress_fn printing "\rwhat: NN%" on stderr. */
void cli_progress(void *arg, const char *what, uint64_t done, uint64_t total);

#endif
