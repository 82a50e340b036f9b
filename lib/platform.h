/* The only OS-specific code: mapping a file read-only.  A Windows build
 * provides platform_win.c with MapViewOfFile behind the same interface. */
#ifndef DL_PLATFORM_H
#define DL_PLATFORM_H

#include <stdint.h>

#include "dumpleak.h"

typedef struct dl_file_map {
    const uint8_t *data; /* NULL for an empty file */
    uint64_t size;
    void *os; /* platform private */
} dl_file_map;

dl_status dl_platform_map(dl_ctx *ctx, const char *path, dl_file_map *out);
void dl_platform_unmap(dl_file_map *map);
/* Let the OS drop the mapped pages from this process (they fault back in
 * from the page cache if read again). */
void dl_platform_release(dl_file_map *map);

/* Regular files in a directory (names only, sorted by the caller);
 * free each name and the array. */
dl_status dl_platform_list_dir(dl_ctx *ctx, const char *dir, char ***names, size_t *n);

/* Size and modification time (ns since the epoch) of a file, which key the
 * cached inflate indexes; 0 on success. */
int dl_platform_file_id(const char *path, uint64_t *size, uint64_t *mtime);
/* Create a directory and its missing parents; 0 on success. */
int dl_platform_mkdirs(const char *path);

/* File and environment calls with UTF-8 names (on Windows the C runtime's
 * own would go through the ANSI code page). */
#include <stddef.h>
#include <stdio.h>
FILE *dl_platform_fopen(const char *path, const char *mode);
int dl_platform_rename(const char *from, const char *to);
/* The variable as UTF-8 in buf; 0 when unset, empty or longer than cap. */
int dl_platform_getenv(const char *name, char *buf, size_t cap);

#endif
