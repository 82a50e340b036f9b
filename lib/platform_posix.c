#ifndef _WIN32
#define _FILE_OFFSET_BITS 64
#define _DEFAULT_SOURCE /* madvise */
#include "platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctx.h"

dl_status dl_platform_map(dl_ctx *ctx, const char *path, dl_file_map *out)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return dl_fail(ctx, DL_ECORRUPT, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return dl_fail(ctx, DL_ECORRUPT, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return dl_fail(ctx, DL_ECORRUPT, "not a regular file");
    }
    out->size = (uint64_t)st.st_size;
    if (out->size > 0) {
        void *p = mmap(NULL, (size_t)out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return dl_fail(ctx, DL_ECORRUPT, "cannot map: %s", strerror(e));
        }
        /* Reads are sparse and scattered: don't let the kernel read ahead. */
        posix_madvise(p, (size_t)out->size, POSIX_MADV_RANDOM);
        out->data = p;
    }
    close(fd);
    return DL_OK;
}

void dl_platform_release(dl_file_map *map)
{
#ifdef MADV_DONTNEED
    if (map->data)
        madvise((void *)map->data, (size_t)map->size, MADV_DONTNEED);
#else
    (void)map;
#endif
}

void dl_platform_unmap(dl_file_map *map)
{
    if (map->data)
        munmap((void *)map->data, (size_t)map->size);
    memset(map, 0, sizeof *map);
}

int dl_platform_file_id(const char *path, uint64_t *size, uint64_t *mtime)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    *size = (uint64_t)st.st_size;
    *mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
    return 0;
}

int dl_platform_mkdirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -1;
        buf[i] = i < n ? '/' : '\0';
    }
    return 0;
}

dl_status dl_platform_list_dir(dl_ctx *ctx, const char *dir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *dp = opendir(dir);
    if (!dp)
        return dl_fail(ctx, DL_EUSAGE, "cannot read directory %s: %s", dir, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) || !S_ISREG(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(*names, cap * sizeof *grown);
            if (!grown)
                break;
            *names = grown;
        }
        if (!((*names)[*n] = strdup(e->d_name)))
            break;
        (*n)++;
    }
    closedir(dp);
    return DL_OK;
}

FILE *dl_platform_fopen(const char *path, const char *mode)
{
    return fopen(path, mode);
}

int dl_platform_rename(const char *from, const char *to)
{
    return rename(from, to);
}

int dl_platform_getenv(const char *name, char *buf, size_t cap)
{
    const char *v = getenv(name);
    if (!v || !*v || strlen(v) >= cap)
        return 0;
    memcpy(buf, v, strlen(v) + 1);
    return 1;
}
#endif
