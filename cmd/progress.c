/* Progress of long steps on stderr, only when it is a terminal. */
#include <stdio.h>

#ifdef _WIN32
#include <io.h>
#define isatty _isatty
#define fileno _fileno
#else
#include <unistd.h>
#endif

#include "cli.h"

int cli_stderr_is_tty(void)
{
    return isatty(fileno(stderr));
}

void cli_progress(void *arg, const char *what, uint64_t done, uint64_t total)
{
    (void)arg;
    if (total)
        fprintf(stderr, "\r%s: %3d%%", what, (int)(done * 100 / total));
    if (done >= total)
        fprintf(stderr, "\r%-40s\r", "");
    fflush(stderr);
}
