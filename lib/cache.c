/* Where dumpleak keeps indexes and rebuilt files between runs. */
#include <stdio.h>

#include "capture.h"
#include "platform.h"

int dl_cache_dir(const dl_open_options *opts, char *dir, size_t cap)
{
    char env[2048];
    int n;
    if (opts->no_cache)
        return 0;
    if (opts->cache_dir)
        n = snprintf(dir, cap, "%s", opts->cache_dir);
    else if (dl_platform_getenv("XDG_CACHE_HOME", env, sizeof env))
        n = snprintf(dir, cap, "%s/dumpleak", env);
    else if (dl_platform_getenv("LOCALAPPDATA", env, sizeof env)) /* Windows */
        n = snprintf(dir, cap, "%s/dumpleak", env);
    else if (dl_platform_getenv("HOME", env, sizeof env))
        n = snprintf(dir, cap, "%s/.cache/dumpleak", env);
    else
        return 0;
    return n > 0 && (size_t)n < cap && dl_platform_mkdirs(dir) == 0;
}
