/* Windows memory captured by a hypervisor (vm-captures.md): ELF cores and
 * kdump-compressed files through libkdumpfile, makedumpfile's flattened
 * stream (rebuilt once into the cache), and raw images.  No Windows header:
 * CR3 comes from the CPU-state notes or a scan, the KDBG from nt. */
#ifndef DL_CAPTURE_H
#define DL_CAPTURE_H

#include "dump.h"

typedef enum dl_capture_kind { DL_CAP_NONE, DL_CAP_ELF, DL_CAP_KDUMP, DL_CAP_FLAT, DL_CAP_RAW } dl_capture_kind;

/* What the content (or name / --input raw) says the file is. */
dl_capture_kind dl_capture_detect(dl_source *src, const char *path, const dl_open_options *opts);

/* Open a capture: physical map, CR3, kernel; fills d->info. */
dl_status dl_capture_open(dl_dump *d, dl_capture_kind kind, const dl_open_options *opts);
/* After the KDBG is loaded: module list head, build, processors. */
void dl_capture_finish(dl_dump *d);

#define DL_MAX_VCPUS 256

typedef struct dl_vcpu {
    uint64_t cr3, cs, gs_base, idt_base, kernel_gs_base;
    int has_kernel_gs;
} dl_vcpu;

typedef struct dl_capture_notes {
    dl_vcpu cpu[DL_MAX_VCPUS];
    int ncpu;
    uint8_t windows_header[0x2000]; /* from a VMCOREINFO note */
    size_t windows_header_len;
} dl_capture_notes;

/* Walk Nhdr records in [off, off+len) of src. */
void dl_capture_parse_notes(dl_dump *d, dl_source *src, uint64_t off, uint64_t len, dl_capture_notes *n);

/* The kdump-compressed file (plain or libkdumpfile-readable) behind path,
 * as a byte source of physical addresses and its RAM extents. */
dl_status dl_kdump_phys_open(dl_dump *d, const char *path, dl_source **phys);

/* makedumpfile's flattened stream rebuilt into a plain kdump file; *path
 * receives its location (cache, or a temporary file with no_cache). */
dl_status dl_flattened_rebuild(dl_dump *d, dl_source *flat, const dl_open_options *opts, char *path, size_t cap,
                               int *temporary);

/* Cache directory ($XDG_CACHE_HOME/dumpleak, ~/.cache/dumpleak); 0 if none. */
int dl_cache_dir(const dl_open_options *opts, char *dir, size_t cap);

#endif
