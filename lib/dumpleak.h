/* dumpleak: read Windows kernel crash dumps offline.
 *
 * Every fallible call returns a dl_status and leaves a one-line message on
 * the dl_ctx it was given; nothing here prints, exits or aborts.  Results are
 * owned by the dump handle and live until dl_close(). */
#ifndef DUMPLEAK_H
#define DUMPLEAK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DL_VERSION "0.1.0"

/* The numeric values are the CLI exit codes of the contract. */
typedef enum dl_status {
    DL_OK = 0,
    DL_PARTIAL = 1,     /* ran, but a requested part is missing (see warnings) */
    DL_EUSAGE = 2,      /* caller error */
    DL_ECORRUPT = 3,    /* not readable as a kernel dump, or a corrupt structure */
    DL_EUNSUPPORTED = 4 /* recognised kind this build cannot read */
} dl_status;

typedef struct dl_ctx dl_ctx;
typedef struct dl_dump dl_dump;
typedef struct dl_tagdb dl_tagdb;

typedef struct dl_warning {
    const char *code;    /* short stable name, e.g. "truncated" */
    const char *message; /* human sentence */
} dl_warning;

dl_ctx *dl_ctx_new(void);
void dl_ctx_free(dl_ctx *ctx);
const char *dl_ctx_error(const dl_ctx *ctx);
size_t dl_ctx_warning_count(const dl_ctx *ctx);
const dl_warning *dl_ctx_warning(const dl_ctx *ctx, size_t i);

/* Progress of a long step (building an index over a compressed input):
 * done and total in bytes of input.  The library never prints. */
typedef void (*dl_progress_fn)(void *arg, const char *what, uint64_t done, uint64_t total);

typedef struct dl_open_options {
    int no_cache;          /* never write an index or rebuilt file to the cache */
    const char *cache_dir; /* NULL: $XDG_CACHE_HOME/dumpleak or ~/.cache/dumpleak */
    int raw_input;         /* treat the file as raw physical memory */
    dl_progress_fn progress;
    void *progress_arg;
} dl_open_options;

/* Open a dump.  The ctx must outlive the dump; use one ctx per thread.
 * opts may be NULL for the defaults. */
dl_status dl_open(dl_ctx *ctx, const char *path, const dl_open_options *opts, dl_dump **out);
void dl_close(dl_dump *dump);

typedef enum dl_arch { DL_ARCH_X86, DL_ARCH_X86_PAE, DL_ARCH_X64, DL_ARCH_ARM64 } dl_arch;

/* A header value the writer left as the 'PAGE' filler is "unset": the
 * matching has_* flag is 0. */
typedef struct dl_info {
    const char *input;     /* "crashdump", "elf", "kdump", "kdump-flattened", "raw", "vmem" */
    const char *wrapper;   /* NULL, "gzip", "zip" or "cab" */
    const char *signature; /* "PAGEDUMP" / "PAGEDU64"; NULL for captures */
    int bits;              /* 32 or 64 */
    dl_arch arch;
    uint32_t major_version, minor_version; /* minor = build number */
    uint64_t directory_table_base;         /* as stored */
    uint64_t pfn_database, ps_loaded_module_list, ps_active_process_head;
    uint32_t machine_type;
    uint32_t processors;
    uint32_t bugcheck_code;
    uint64_t bugcheck_params[4];
    int has_bugcheck;
    int pae_enabled; /* 32-bit only */
    uint64_t kdbg_address;
    uint32_t dump_type;
    int has_dump_type; /* 0 for captures */
    int has_system_time, has_attributes, has_required_space, has_system_uptime;
    uint64_t system_time; /* FILETIME */
    uint64_t system_uptime;
    uint32_t attributes;
    uint64_t required_dump_space;
    uint32_t mini_dump_fields, product_type, suite_mask;
    int has_product_type, has_suite_mask;
    const char *comment; /* NUL-terminated, "" when unset */
    /* Derived facts. */
    const char *dump_type_name; /* NULL when unknown */
    uint64_t pages_present;     /* readable pages in the file */
    int has_physical_map;       /* 0 for triage dumps */
    const char *build_lab;      /* from the KDBG; NULL if unavailable */
    int kdbg_valid;
    const char *kdbg_from; /* "header", "scan" or NULL */
    const char *cr3_from;  /* "header", "qemu-note", "vbox-note", "vmware-state", "vmcoreinfo", "low-stub",
                              "self-map-scan" */
    int kdbg_encoded;
} dl_info;

const dl_info *dl_get_info(dl_dump *dump);

/* Returns the name of a bugcheck code (without the 0x10000000 flag, with
 * "_M" appended when the flag was set), or NULL. */
const char *dl_bugcheck_name(uint32_t code);

typedef struct dl_module {
    char *name; /* UTF-8 */
    char *path; /* UTF-8 or NULL */
    uint64_t base;
    uint64_t size;
} dl_module;

typedef struct dl_unloaded {
    char *name;
    uint64_t base;
    uint64_t size;
    int has_time;
    uint64_t time; /* FILETIME */
} dl_unloaded;

typedef struct dl_modules {
    size_t nloaded;
    dl_module *loaded;
    int unloaded_available;
    size_t nunloaded;
    dl_unloaded *unloaded;
} dl_modules;

/* Loaded and unloaded modules.  DL_PARTIAL when the list could only be
 * read in part (warnings say why); the result is still set. */
dl_status dl_get_modules(dl_dump *dump, const dl_modules **out);

/* Pool tag tracker totals, summed over every table the kernel keeps (global,
 * per-processor, expansion).  Counters are the kernel's raw counters. */
typedef struct dl_pool_counts {
    uint64_t allocs, frees, bytes;
} dl_pool_counts;

typedef struct dl_pool_tag {
    uint32_t key;
    int overflow; /* the tracker's overflow bucket: key is meaningless */
    dl_pool_counts nonpaged, paged;
} dl_pool_tag;

typedef struct dl_pool {
    size_t ntags;
    dl_pool_tag *tags; /* global-table order, then the expansion table */
    unsigned processors_summed;
    dl_pool_counts total_nonpaged, total_paged;
    /* Where the tables were found, for diagnostics. */
    uint64_t table_va, percpu_va, expansion_va;
    uint32_t table_entries, entry_size, expansion_entries;
} dl_pool;

dl_status dl_get_pool(dl_dump *dump, const dl_pool **out);

typedef enum dl_pool_type {
    DL_POOL_UNKNOWN = -1,
    DL_POOL_NONPAGED = 0,
    DL_POOL_PAGED = 1,
    DL_POOL_NONPAGED_NX = 2
} dl_pool_type;

typedef struct dl_bigpool_entry {
    uint64_t va;
    uint32_t key;
    uint64_t bytes;
    dl_pool_type pool;
    int free;
} dl_bigpool_entry;

typedef struct dl_bigpool {
    size_t n;
    dl_bigpool_entry *entries; /* table order, free entries included */
    uint64_t table_va;
    uint64_t table_entries;
} dl_bigpool;

dl_status dl_get_bigpool(dl_dump *dump, const dl_bigpool **out);

/* The !vm-style numbers, in pages; known = 0 when the dump cannot give the
 * value (a warning says why). */
typedef struct dl_vm_value {
    int known;
    uint64_t v;
} dl_vm_value;

#define DL_MAX_PAGED_POOLS 64

typedef struct dl_vm {
    dl_vm_value physical_pages, available_pages, resavail_pages, modified_pages;
    dl_vm_value nonpaged_pool_pages, nonpaged_pool_nx_pages, nonpaged_pool_max_pages;
    dl_vm_value paged_pool_pages, paged_pool_max_pages;
    dl_vm_value committed_pages, commit_limit_pages, shared_commit_pages, driver_commit_pages;
    dl_vm_value process_commit_pages, paged_pool_commit_pages;
    const char *usage_source; /* "descriptors", "tracker" or NULL */
    size_t npaged_pools;      /* per-descriptor paged usage, when read */
    uint64_t paged_pool_usage[DL_MAX_PAGED_POOLS];
} dl_vm;

dl_status dl_get_vm(dl_dump *dump, const dl_vm **out);

/* Suspects: which driver owns a tag, with the evidence. */
typedef struct dl_evidence {
    const char *kind; /* "tag-in-code", "tag-in-data", "imports-allocator", "pooltag",
                         "kmdf-default-tag", "driver-file", "unloaded" */
    int has_address;
    uint64_t address;
    int has_offset;
    uint64_t offset; /* from the module base (or in the driver file) */
    char detail[200];
} dl_evidence;

typedef struct dl_candidate {
    char *module;
    const char *confidence; /* "high", "medium", "low" */
    int score;
    size_t nevidence;
    dl_evidence *evidence;
    size_t code_hits, data_hits; /* counted, even past the evidence kept */
    uint64_t sort_time;          /* unload time, ranks unloaded drivers */
} dl_candidate;

typedef struct dl_suspect {
    uint32_t key;
    uint64_t nonpaged_bytes, paged_bytes;
    int bytes_known;
    size_t ncandidates;
    dl_candidate *candidates;             /* best first */
    uint64_t pages_total, pages_resident; /* module image pages searched */
} dl_suspect;

typedef struct dl_suspects {
    size_t n;
    dl_suspect *items;
} dl_suspects;

typedef struct dl_suspect_options {
    const uint32_t *keys; /* tags to explain; NULL = the top tags of each pool */
    size_t nkeys;
    unsigned top_per_pool;   /* with keys NULL; 0 = 5 */
    const dl_tagdb *tagdb;   /* may be NULL */
    const char *drivers_dir; /* driver files to search too; may be NULL */
} dl_suspect_options;

dl_status dl_find_suspects(dl_dump *dump, const dl_suspect_options *opts, dl_suspects **out);
void dl_suspects_free(dl_suspects *s);

/* "2024-11-23T03:49:27Z" (iso) or "2024-11-23 03:49:27 UTC"; 0 if out of range. */
int dl_format_filetime(uint64_t filetime, char buf[32], int iso);

/* Physical and virtual reads.  A page that the dump does not hold is an
 * error (DL_PARTIAL) with a message naming the address: never zeros. */
dl_status dl_read_phys(dl_dump *dump, uint64_t pa, void *buf, size_t len);
dl_status dl_read_virt(dl_dump *dump, uint64_t va, void *buf, size_t len);

typedef enum dl_xlat_kind {
    DL_XLAT_VALID,        /* hardware-valid, pa set */
    DL_XLAT_TRANSITION,   /* software PTE in transition: page still in RAM, pa set */
    DL_XLAT_PROTOTYPE,    /* resolved through a prototype PTE, pa set */
    DL_XLAT_PAGEFILE,     /* in the page file: not in a crash dump */
    DL_XLAT_DEMAND_ZERO,  /* demand-zero page */
    DL_XLAT_NOT_PRESENT,  /* entry is zero / unknown to the page tables */
    DL_XLAT_TABLE_ABSENT, /* a page-table page is not in the dump */
    DL_XLAT_NONCANONICAL, /* address not translatable in this mode */
    DL_XLAT_UNSUPPORTED   /* architecture without a translator */
} dl_xlat_kind;

typedef struct dl_xlat {
    dl_xlat_kind kind;
    uint64_t pa;        /* valid for VALID / TRANSITION / PROTOTYPE */
    uint64_t page_size; /* 4 KiB, 2/4 MiB or 1 GiB */
    int level;          /* level where the walk ended (1 = PTE) */
    uint64_t entry;     /* raw entry that decided */
} dl_xlat;

dl_status dl_translate(dl_dump *dump, uint64_t va, dl_xlat *out);
const char *dl_xlat_kind_name(dl_xlat_kind kind);

/* Set of physical extents present in the file: {first PFN, page count,
 * file offset}.  Sorted, non-overlapping. */
typedef struct dl_extent {
    uint64_t pfn;
    uint64_t pages;
    uint64_t file_offset;
} dl_extent;
size_t dl_extent_count(dl_dump *dump);
dl_status dl_extent_get(dl_dump *dump, size_t i, dl_extent *out);

/* Glob match of a tag spelling: '*' any run, '?' one character. */
int dl_tag_match(const char *pattern, const char *tag);

/* Parse a tag spelled as the contract writes it ("Leak", "Ddk ", "\x01ab")
 * into its key; 0 when the spelling is not exactly four bytes. */
int dl_parse_tag(const char *spelling, uint32_t *key);

/* Tag descriptions: a pooltag.txt in the debugger's format (optional) over
 * a small built-in list of well-known Windows tags. */
dl_status dl_tagdb_load(dl_ctx *ctx, const char *pooltag_path, dl_tagdb **out);
void dl_tagdb_free(dl_tagdb *db);
/* 1 when known; description and binary may be NULL. */
int dl_tagdb_lookup(const dl_tagdb *db, uint32_t key, const char **description, const char **binary);

/* Write the tag as the contract spells it: printable bytes as themselves
 * ('\\' doubled), others as \xnn.  buf needs 17 bytes. */
void dl_format_tag(uint32_t key, char buf[17]);

#ifdef __cplusplus
}
#endif
#endif
