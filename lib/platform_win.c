/* Windows: map a file read-only with CreateFileW / CreateFileMappingW /
 * MapViewOfFile.  Paths arrive as UTF-8 (cmd/args_win.c converts the wide
 * command line) and are converted to UTF-16 here, so `C:\Dumps\MEMORY.DMP`
 * and non-ASCII paths open.  Error messages use the same words as the POSIX
 * build for the common cases, so a batch's JSON is identical on both. */
#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "platform.h"

typedef struct win_map {
    HANDLE file;
    HANDLE mapping;
} win_map;

/* Wording of the common failures as glibc's strerror spells them. */
static void describe(DWORD err, char *buf, size_t len)
{
    const char *s = NULL;
    switch (err) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_NET_NAME:
    case ERROR_INVALID_NAME:
    case ERROR_DIRECTORY:
        s = "No such file or directory";
        break;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
        s = "Permission denied";
        break;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
        s = "Cannot allocate memory";
        break;
    case ERROR_FILENAME_EXCED_RANGE:
        s = "File name too long";
        break;
    case ERROR_TOO_MANY_OPEN_FILES:
        s = "Too many open files";
        break;
    default:
        break;
    }
    if (s) {
        snprintf(buf, len, "%s", s);
        return;
    }
    /* Anything else: the system's own sentence (one line, no final period). */
    wchar_t wmsg[256];
    DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, err,
                             MAKELANGID(LANG_ENGLISH, SUBLANG_ENGLISH_US), wmsg, 256, NULL);
    if (!n)
        n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, err, 0, wmsg, 256, NULL);
    while (n > 0 && (wmsg[n - 1] == L'\r' || wmsg[n - 1] == L'\n' || wmsg[n - 1] == L' ' || wmsg[n - 1] == L'.'))
        n--;
    for (DWORD i = 0; i < n; i++)
        if (wmsg[i] == L'\r' || wmsg[i] == L'\n')
            wmsg[i] = L' ';
    char msg[512];
    int m = n ? WideCharToMultiByte(CP_UTF8, 0, wmsg, (int)n, msg, (int)sizeof msg - 1, NULL, NULL) : 0;
    msg[m > 0 ? m : 0] = 0;
    if (m > 0)
        snprintf(buf, len, "%s (Windows error %lu)", msg, (unsigned long)err);
    else
        snprintf(buf, len, "Windows error %lu", (unsigned long)err);
}

static dl_status fail_win(dl_ctx *ctx, const char *what, DWORD err)
{
    char why[600];
    describe(err, why, sizeof why);
    return dl_fail(ctx, DL_ECORRUPT, "cannot %s: %s", what, why);
}

/* UTF-8 path to the UTF-16 one CreateFileW takes.  A path too long for
 * MAX_PATH is made absolute (GetFullPathNameW, which also turns '/' into
 * a backslash) and given the long-path prefix.  Returns NULL with *err set on failure. */
static wchar_t *wide_path(const char *path, DWORD *err)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
    if (n <= 0) {
        *err = ERROR_NO_UNICODE_TRANSLATION;
        return NULL;
    }
    wchar_t *w = malloc((size_t)n * sizeof *w);
    if (!w) {
        *err = ERROR_NOT_ENOUGH_MEMORY;
        return NULL;
    }
    MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, n);
    if (n < MAX_PATH - 12 || !wcsncmp(w, L"\\\\?\\", 4))
        return w;
    DWORD need = GetFullPathNameW(w, 0, NULL, NULL);
    wchar_t *full = need ? malloc(((size_t)need + 8) * sizeof *full) : NULL;
    DWORD got = full ? GetFullPathNameW(w, need, full, NULL) : 0;
    if (!got || got >= need) { /* let CreateFileW report the plain path */
        free(full);
        return w;
    }
    free(w);
    /* "C:\\x" becomes "\\\\?\\C:\\x", "\\\\srv\\share" becomes "\\\\?\\UNC\\srv\\share". */
    int unc = full[0] == L'\\' && full[1] == L'\\';
    const wchar_t *prefix = unc ? L"\\\\?\\UNC" : L"\\\\?\\";
    size_t skip = unc ? 1 : 0, plen = wcslen(prefix);
    memmove(full + plen, full + skip, ((size_t)got - skip + 1) * sizeof *full);
    memcpy(full, prefix, plen * sizeof *full);
    return full;
}

dl_status dl_platform_map(dl_ctx *ctx, const char *path, dl_file_map *out)
{
    memset(out, 0, sizeof *out);
    DWORD err = 0;
    wchar_t *wpath = wide_path(path, &err);
    if (!wpath) {
        if (err == ERROR_NO_UNICODE_TRANSLATION)
            return dl_fail(ctx, DL_ECORRUPT, "cannot open: the path is not valid UTF-8");
        return fail_win(ctx, "open", err);
    }
    /* Share everything: a dump may still be open in a debugger or copier. */
    HANDLE h = CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_RANDOM_ACCESS, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        err = GetLastError();
        /* A directory cannot be opened this way; say what POSIX says. */
        DWORD attr = GetFileAttributesW(wpath);
        free(wpath);
        if (attr != INVALID_FILE_ATTRIBUTES && (attr & FILE_ATTRIBUTE_DIRECTORY))
            return dl_fail(ctx, DL_ECORRUPT, "not a regular file");
        return fail_win(ctx, "open", err);
    }
    free(wpath);
    if (GetFileType(h) != FILE_TYPE_DISK) { /* NUL, CON, a pipe */
        CloseHandle(h);
        return dl_fail(ctx, DL_ECORRUPT, "not a regular file");
    }
    LARGE_INTEGER size;
    if (!GetFileSizeEx(h, &size)) {
        err = GetLastError();
        CloseHandle(h);
        return fail_win(ctx, "stat", err);
    }
    if (size.QuadPart < 0 || (unsigned long long)size.QuadPart > (unsigned long long)SIZE_MAX) {
        CloseHandle(h);
        return dl_fail(ctx, DL_ECORRUPT, "cannot map: the file is larger than the address space");
    }
    out->size = (uint64_t)size.QuadPart;
    if (out->size == 0) { /* CreateFileMapping refuses an empty file */
        CloseHandle(h);
        return DL_OK;
    }
    HANDLE m = CreateFileMappingW(h, NULL, PAGE_READONLY, 0, 0, NULL);
    if (!m) {
        err = GetLastError();
        CloseHandle(h);
        memset(out, 0, sizeof *out);
        return fail_win(ctx, "map", err);
    }
    const void *p = MapViewOfFile(m, FILE_MAP_READ, 0, 0, 0);
    if (!p) {
        err = GetLastError();
        CloseHandle(m);
        CloseHandle(h);
        memset(out, 0, sizeof *out);
        return fail_win(ctx, "map", err);
    }
    win_map *wm = malloc(sizeof *wm);
    if (!wm) {
        UnmapViewOfFile(p);
        CloseHandle(m);
        CloseHandle(h);
        memset(out, 0, sizeof *out);
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    }
    wm->file = h;
    wm->mapping = m;
    out->data = p;
    out->os = wm;
    return DL_OK;
}

void dl_platform_unmap(dl_file_map *map)
{
    if (map->data)
        UnmapViewOfFile(map->data);
    win_map *wm = map->os;
    if (wm) {
        CloseHandle(wm->mapping);
        CloseHandle(wm->file);
        free(wm);
    }
    memset(map, 0, sizeof *map);
}

int dl_platform_file_id(const char *path, uint64_t *size, uint64_t *mtime)
{
    DWORD err;
    wchar_t *wpath = wide_path(path, &err);
    if (!wpath)
        return -1;
    WIN32_FILE_ATTRIBUTE_DATA fa;
    BOOL ok = GetFileAttributesExW(wpath, GetFileExInfoStandard, &fa);
    free(wpath);
    if (!ok)
        return -1;
    *size = (uint64_t)fa.nFileSizeHigh << 32 | fa.nFileSizeLow;
    /* FILETIME: 100 ns since 1601; POSIX's st_mtim: ns since 1970. */
    uint64_t ft = (uint64_t)fa.ftLastWriteTime.dwHighDateTime << 32 | fa.ftLastWriteTime.dwLowDateTime;
    const uint64_t epoch = 116444736000000000ull;
    *mtime = ft > epoch ? (ft - epoch) * 100u : 0;
    return 0;
}

static int is_dir(const wchar_t *w)
{
    DWORD a = GetFileAttributesW(w);
    return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY);
}

int dl_platform_mkdirs(const char *path)
{
    DWORD err;
    wchar_t *w = wide_path(path, &err);
    if (!w)
        return -1;
    size_t n = wcslen(w), i = 0;
    if (n == 0) {
        free(w);
        return -1;
    }
    /* Leave alone what cannot be created: \\?\ and \\server\share, "C:". */
    if (!wcsncmp(w, L"\\\\?\\", 4))
        i = 4;
    if (!wcsncmp(w + i, L"UNC\\", 4) || (i == 0 && w[0] == L'\\' && w[1] == L'\\')) {
        i += i ? 4 : 2;
        for (int parts = 0; i < n && parts < 2; i++)
            if (w[i] == L'\\' || w[i] == L'/')
                parts++;
    } else if (n >= i + 2 && w[i + 1] == L':') {
        i += 2;
    }
    int rc = 0;
    for (i = i + 1; i <= n; i++) {
        if (w[i] != L'/' && w[i] != L'\\' && w[i] != 0)
            continue;
        wchar_t c = w[i];
        w[i] = 0;
        if (!CreateDirectoryW(w, NULL) && GetLastError() != ERROR_ALREADY_EXISTS && !is_dir(w)) {
            rc = -1;
            break;
        }
        w[i] = c;
    }
    free(w);
    return rc;
}

dl_status dl_platform_list_dir(dl_ctx *ctx, const char *dir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    size_t len = strlen(dir);
    char *pattern = malloc(len + 3);
    if (!pattern)
        return dl_fail(ctx, DL_ECORRUPT, "out of memory");
    memcpy(pattern, dir, len);
    /* dir\*, without doubling a separator the caller already wrote. */
    size_t k = len;
    if (k > 0 && dir[k - 1] != '/' && dir[k - 1] != '\\' && dir[k - 1] != ':')
        pattern[k++] = '\\';
    pattern[k++] = '*';
    pattern[k] = 0;
    DWORD err = 0;
    wchar_t *wpattern = wide_path(pattern, &err);
    free(pattern);
    if (!wpattern)
        return dl_fail(ctx, DL_EUSAGE, "cannot read directory %s: %s", dir,
                       err == ERROR_NO_UNICODE_TRANSLATION ? "the path is not valid UTF-8" : "out of memory");
    WIN32_FIND_DATAW fd;
    HANDLE h = FindFirstFileExW(wpattern, FindExInfoBasic, &fd, FindExSearchNameMatch, NULL, 0);
    if (h == INVALID_HANDLE_VALUE) {
        err = GetLastError();
        free(wpattern);
        if (err == ERROR_FILE_NOT_FOUND) /* nothing at all, not even "." (a drive root) */
            return DL_OK;
        /* As opendir() says it: a file where a directory should be. */
        wchar_t *wdir = wide_path(dir, &err);
        DWORD attr = wdir ? GetFileAttributesW(wdir) : INVALID_FILE_ATTRIBUTES;
        free(wdir);
        if (attr != INVALID_FILE_ATTRIBUTES && !(attr & FILE_ATTRIBUTE_DIRECTORY))
            return dl_fail(ctx, DL_EUSAGE, "cannot read directory %s: Not a directory", dir);
        char why[600];
        describe(err, why, sizeof why);
        return dl_fail(ctx, DL_EUSAGE, "cannot read directory %s: %s", dir, why);
    }
    free(wpattern);
    size_t cap = 0;
    do {
        /* Regular files only, as stat() + S_ISREG: no directories, no devices. */
        if (fd.dwFileAttributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE))
            continue;
        int u = WideCharToMultiByte(CP_UTF8, 0, fd.cFileName, -1, NULL, 0, NULL, NULL);
        char *name = u > 0 ? malloc((size_t)u) : NULL;
        if (!name)
            break;
        WideCharToMultiByte(CP_UTF8, 0, fd.cFileName, -1, name, u, NULL, NULL);
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(*names, cap * sizeof *grown);
            if (!grown) {
                free(name);
                break;
            }
            *names = grown;
        }
        (*names)[(*n)++] = name;
    } while (FindNextFileW(h, &fd));
    FindClose(h);
    return DL_OK;
}

FILE *dl_platform_fopen(const char *path, const char *mode)
{
    DWORD err;
    wchar_t wmode[8];
    size_t i = 0;
    for (; mode[i] && i < 7; i++)
        wmode[i] = (wchar_t)(unsigned char)mode[i];
    wmode[i] = 0;
    wchar_t *w = wide_path(path, &err);
    if (!w)
        return NULL;
    FILE *f = _wfopen(w, wmode);
    free(w);
    return f;
}

/* Replaces an existing target, as rename() does on POSIX. */
int dl_platform_rename(const char *from, const char *to)
{
    DWORD err;
    wchar_t *wf = wide_path(from, &err), *wt = wf ? wide_path(to, &err) : NULL;
    int ok = wf && wt && MoveFileExW(wf, wt, MOVEFILE_REPLACE_EXISTING);
    free(wf);
    free(wt);
    return ok ? 0 : -1;
}

/* The variable as UTF-8 in buf; 0 when unset, empty or longer than cap. */
int dl_platform_getenv(const char *name, char *buf, size_t cap)
{
    wchar_t wname[64];
    if (!MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1, wname, 64))
        return 0;
    const wchar_t *v = _wgetenv(wname);
    if (!v || !*v || cap > INT_MAX)
        return 0;
    int n = WideCharToMultiByte(CP_UTF8, 0, v, -1, buf, (int)cap, NULL, NULL);
    return n > 0;
}
/* Windows trims a view's working set itself when memory is short; a
 * scan of a large image does not need help here. */
void dl_platform_release(dl_file_map *map)
{
    (void)map;
}
#endif
