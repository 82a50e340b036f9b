/* POSIX: arguments are already bytes in the locale's encoding. */
#ifndef _WIN32
#include "cli.h"

int cli_platform_args(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}
#endif
