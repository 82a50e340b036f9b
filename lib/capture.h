/* Windows memory captured by a hypervisor (vm-captures.md): ELF cores and
 * kdump-compressed files through libkdumpfile, makedumpfile's flattened
 * stream (rebuilt once into the cache), and raw images.  No Windows header:
 * CR3 comes from the CPU-state notes or a scan, the KDBG from nt. */
#ifndef DL_CAPTURE_H
#define DL_CAPTURE_H

#include "dump.h"

typedef enum dl_capture_kind {
    DL_CAP_NONE,
    DL_CAP_ELF,
    DL_CAP_KDUMP,
    DL_CAP_FLAT,
    DL_CAP_RAW,
    DL_CAP_VMEM, /* a .vmem by name: its .vmss/.vmsn beside it holds the region table */
    DL_CAP_VMSS  /* a VMware state file by content: RAM inline or in the .vmem beside it */
} dl_capture_kind;

/* What the content (or name / --input raw) says the file is. */
dl_capture_kind dl_capture_detect(dl_source *src, const char *path, const dl_open_options *opts);

/* Open a capture: physical map, CR3, kernel; fills d->info. */
dl_status dl_capture_open(dl_dump *d, dl_capture_kind kind, const dl_open_options *opts);
/* After the KDBG is loaded: module list head, build, processors. */
void dl_capture_finish(dl_dump *d);

#define DL_MAX_VCPUS 256

/* One vCPU's state as the hypervisor saved it. */
typedef struct dl_vcpu {
    uint64_t cr3, cs, gs_base, idt_base, kernel_gs_base;
    int has_cr3, has_kernel_gs;
    unsigned modes;   /* paging modes the registers allow (1u << dl_paging); 0: they do not say */
    const char *from; /* "qemu-note", "vbox-note", "vmware-state" */
} dl_vcpu;

typedef struct dl_capture_notes {
    dl_vcpu cpu[DL_MAX_VCPUS];
    int ncpu;
    uint8_t windows_header[0x2000]; /* from a VMCOREINFO note */
    size_t windows_header_len;
    /* VirtualBox: the VBCORE descriptor and how many VBCPU notes followed. */
    int vbox;       /* a valid VBCORE descriptor */
    int vbox_named; /* any VBCORE/VBCPU note: a VirtualBox core, e_machine is the host's */
    uint32_t vbox_format, vbox_cpus, vbox_notes;
} dl_capture_notes;

/* Paging modes from control registers: CR0.PG, CR4.PAE/LA57, EFER.LMA
 * (has_efer 0: VMware, whose state holds no EFER, so PAE may be x64). */
unsigned dl_capture_modes(uint64_t cr0, uint64_t cr4, uint64_t efer, int has_efer);

/* CR3 and nt's base from the vCPUs and the memory (capture_kernel.c);
 * allowed: the paging modes the container leaves possible (1u << mode). */
dl_status dl_capture_find_kernel(dl_dump *d, dl_capture_notes *notes, unsigned allowed);

/* nt's image by its headers (capture_nt.c).  One search state per open:
 * the budget holds over every CR3 candidate. */
#define DL_NT_BARREN_SLOTS 1024
/* Tables (below the root) whose whole span held no MZ header, as PA |
 * level: a lossy cache, per CR3 (a prototype PTE is read through it). */
typedef struct dl_nt_memo {
    uint64_t barren[DL_NT_BARREN_SLOTS];
    struct {
        uint64_t table, start;
        int live, whole, clean;
    } open[DL_MAX_LEVELS + 1]; /* the table at each level the scan is in */
} dl_nt_memo;

typedef struct dl_nt_search {
    uint64_t pages_left;  /* translations and pages looked at */
    uint32_t images_left; /* MZ headers parsed as images */
    dl_nt_memo memo;
} dl_nt_search;

void dl_nt_search_init(dl_nt_search *s);
/* nt's MZ at or below a kernel code address (IDT handler, LmTarget). */
uint64_t dl_capture_image_below(dl_dump *d, uint64_t va, dl_nt_search *s);
/* nt by a scan of kernel space through the current translator; 0 if none. */
uint64_t dl_capture_nt_scan(dl_dump *d, dl_nt_search *s);

/* Walk Nhdr records in [off, off+len) of src. */
void dl_capture_parse_notes(dl_dump *d, dl_source *src, uint64_t off, uint64_t len, dl_capture_notes *n);
/* After every note: drop VirtualBox registers that fail the checks of §2.1. */
void dl_capture_notes_check(dl_dump *d, dl_capture_notes *n);

/* ELF container facts (capture_elf.c): the notes, the machine, and the
 * physical ranges a PT_LOAD declares but the file does not hold. */
typedef struct dl_elf_gap {
    uint64_t pfn, pages;
    int truncated; /* past the end of the file (else p_filesz < p_memsz: MMIO) */
} dl_elf_gap;

typedef struct dl_elf_facts {
    uint16_t machine;
    dl_elf_gap gap[256];
    int ngap;
} dl_elf_facts;

void dl_capture_elf_notes(dl_dump *d, dl_capture_notes *notes, dl_elf_facts *f);
void dl_capture_kdump_notes(dl_dump *d, dl_source *src, dl_capture_notes *notes);

/* VMware state files (capture_vmware.c, vm-captures §4.1). */
typedef struct dl_vmss_region {
    uint64_t ppn, page, pages; /* guest PFN, page in the memory image, length */
} dl_vmss_region;

typedef struct dl_vmss {
    dl_vmss_region *region;
    size_t nregion;
    int has_memory;      /* a Memory block holds the RAM inline */
    uint64_t memory_off; /* its data in the state file */
    uint64_t memory_len;
} dl_vmss;

/* Magic and a sane group table: is this a VMware state file? */
int dl_vmss_probe(dl_source *src);
/* Regions, inline memory and vCPUs.  DL_ECORRUPT names what is wrong;
 * DL_EUNSUPPORTED for a compressed Memory block. */
dl_status dl_vmss_parse(dl_dump *d, dl_source *src, dl_vmss *v, dl_capture_notes *notes);
/* Every region inside an image of image_pages, none overlapping. */
dl_status dl_vmss_check_regions(dl_dump *d, const dl_vmss *v, uint64_t image_pages);
void dl_vmss_free(dl_vmss *v);

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
