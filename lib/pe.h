/* PE images as the dump holds them: headers, sections, data directories,
 * exports and imports, tolerating pages that are not present. */
#ifndef DL_PE_H
#define DL_PE_H

#include <stdint.h>

#include "kernel.h"

typedef struct dl_image {
    uint64_t base, size; /* base 0 for a file on disk */
    int pe32plus;
    dl_section sec[DL_MAX_SECTIONS];
    uint32_t raw_off[DL_MAX_SECTIONS], raw_size[DL_MAX_SECTIONS];
    int nsec;
    uint32_t export_rva, export_size, import_rva, import_size, iat_rva, iat_size;
} dl_image;

/* Reads len bytes at offset off of the image (RVA for a mapped image,
 * file offset for a file); 0 on success. */
typedef int (*dl_pe_read_fn)(void *arg, uint64_t off, void *buf, size_t len);

/* Headers and section table from any reader; section va = base + RVA. */
dl_status dl_pe_parse(dl_ctx *ctx, dl_pe_read_fn rd, void *arg, uint64_t base, dl_image *img);

/* The image mapped at base in the dump; DL_PARTIAL when its header page is absent. */
dl_status dl_image_load(dl_dump *d, uint64_t base, uint64_t size, dl_image *img);

/* Section holding a file offset of an image read from disk, or NULL. */
const dl_section *dl_image_section_at_raw(const dl_image *img, uint64_t off);

/* Section containing va, or NULL. */
const dl_section *dl_image_section(const dl_image *img, uint64_t va);
int dl_section_is_code(const dl_section *s);

/* Absolute address of an exported function by name; 0 when absent. */
uint64_t dl_image_export(dl_dump *d, const dl_image *img, const char *name);

/* Walk every pointer-sized value of the import address table(s) that
 * refer to the module named dll (case-insensitive), calling fn with the
 * slot address and value.  Falls back to the IAT directory when the import
 * descriptors are not resident.  Returns the number of slots read. */
typedef void (*dl_iat_fn)(void *arg, uint64_t slot, uint64_t value);
int dl_image_iat(dl_dump *d, const dl_image *img, dl_iat_fn fn, void *arg);

/* Does the import directory name this DLL? -1 when not readable. */
int dl_image_imports_dll(dl_dump *d, const dl_image *img, const char *dll);

#endif
