/* Where dumpleak keeps indexes and rebuilt files between runs. */
#include <stdio.h>
#include <stdlib.h>

#include "capture.h"
#include "platform.h"

int dl_cache_dir(const dl_open_options *opts, char *dir, size_t cap)
{
    const char *env;
    int n;
    if (opts->no_cache)
        return 0;
    if (opts->cache_dir)
        n = snprintf(dir, cap, "%s", opts->cache_dir);
    else if ((env = getenv("XDG_CACHE_HOME")) && *env)
        n = snprintf(dir, cap, "%s/dumpleak", env);
    else if ((env = getenv("HOME")) && *env)
        n = snprintf(dir, cap, "%s/.cache/dumpleak", env);
    else
        return 0;
    return n > 0 && (size_t)n < cap && dl_platform_mkdirs(dir) == 0;
}
