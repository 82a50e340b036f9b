/* The dump handle: container facts, physical map, translator and the
 * kernel facts found so far. */
#ifndef DL_DUMP_H
#define DL_DUMP_H

#include "dumpleak.h"
#include "physmem.h"
#include "source.h"
#include "vmem.h"

typedef struct dl_triage dl_triage;

typedef struct dl_kdbg {
    int tried, valid, encoded;
    const char *from; /* "header" or "scan" */
    uint64_t va;
    uint32_t size;
    uint8_t *data; /* size bytes, decoded */
} dl_kdbg;

struct dl_dump {
    dl_ctx *ctx;
    dl_source *src;
    dl_info info;
    char signature[9];
    char comment[129];
    char build_lab[128];
    uint32_t header_size; /* 0x1000 or 0x2000 */
    dl_physmem pm;
    dl_vmem vm;
    dl_triage *triage;
    dl_kdbg kdbg;
    dl_modules *modules;
    dl_status modules_status;
    dl_pool *pool;
    dl_status pool_status;
    dl_bigpool *bigpool;
    dl_status bigpool_status;
    dl_vm *vm_summary;
    dl_status vm_status;
    dl_progress_fn progress;
    void *progress_arg;
    uint64_t nt_base_hint; /* captures: nt found without a KDBG */
    char *temp_file;       /* removed at close */
    dl_source *phys_src;   /* captures: physical address space, if not src */
    const char *cr3_from;
    int weak_kernel; /* capture whose CR3 was taken on shape alone */
    int cr3_vcpu;    /* capture whose CR3 is a vCPU's */
};

/* Container stage: header facts and the physical map (container.c). */
dl_status dl_container_parse(dl_dump *d);

/* Body parsers, one per layout. */
dl_status dl_body_runs(dl_dump *d, const uint8_t *hdr);
dl_status dl_body_bitmap(dl_dump *d);
dl_status dl_body_rdmp(dl_dump *d);
dl_status dl_body_triage(dl_dump *d);
void dl_triage_free(dl_triage *t);
dl_status dl_triage_modules(dl_dump *d, dl_modules *m);

/* Kernel stage. */
dl_status dl_kdbg_load(dl_dump *d);
/* Member at off of the KDBG when Size covers it (pointer-sized on the target). */
int dl_kdbg_member(dl_dump *d, uint32_t off, uint64_t *out);

/* Shared string helpers (strings.c). */
char *dl_utf16_to_utf8(const uint8_t *p, size_t nchars);
dl_status dl_read_unicode_string(dl_dump *d, uint64_t us_va, char **out);
void dl_modules_free(dl_modules *m);

static inline int dl_is64(const dl_dump *d)
{
    return d->info.bits == 64;
}

#endif
