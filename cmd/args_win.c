/* Windows: the CRT's argv is in the ANSI code page, which cannot hold every
 * file name.  Take the wide command line instead and hand the rest of the
 * program UTF-8, which lib/platform_win.c converts back for CreateFileW.
 * stdout and stderr go binary so lines end in "\n" exactly as on POSIX. */
#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <shellapi.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static UINT saved_output_cp;

static void restore_console_cp(void)
{
    SetConsoleOutputCP(saved_output_cp);
}

int cli_platform_args(int *argc, char ***argv)
{
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stderr), _O_BINARY);
    /* On a console, show the UTF-8 we write as such (module names, paths);
     * the console's code page is put back at exit. */
    if (GetFileType(GetStdHandle(STD_OUTPUT_HANDLE)) == FILE_TYPE_CHAR ||
        GetFileType(GetStdHandle(STD_ERROR_HANDLE)) == FILE_TYPE_CHAR) {
        saved_output_cp = GetConsoleOutputCP();
        if (saved_output_cp && saved_output_cp != CP_UTF8 && SetConsoleOutputCP(CP_UTF8))
            atexit(restore_console_cp);
    }

    int n = 0;
    wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &n);
    if (!wargv || n < 1) {
        fprintf(stderr, "dumpleak: cannot read the command line\n");
        return 1;
    }
    /* Lives until exit, like the CRT's argv. */
    char **args = calloc((size_t)n + 1, sizeof *args);
    if (!args) {
        LocalFree(wargv);
        fprintf(stderr, "dumpleak: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        int len = WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, NULL, 0, NULL, NULL);
        args[i] = len > 0 ? malloc((size_t)len) : NULL;
        if (!args[i] || WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, args[i], len, NULL, NULL) != len) {
            fprintf(stderr, "dumpleak: cannot convert argument %d to UTF-8\n", i);
            LocalFree(wargv);
            return 1;
        }
    }
    LocalFree(wargv);
    *argc = n;
    *argv = args;
    return 0;
}
#endif
