/* FILETIME (100 ns since 1601-01-01 UTC) to text. */
#include <stdio.h>

#include "dumpleak.h"

/* Civil date from days since 1970-01-01 (proleptic Gregorian). */
static void civil(long long z, int *y, int *m, int *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

int dl_format_filetime(uint64_t ft, char buf[32], int iso)
{
    /* 11644473600 s between 1601 and the Unix epoch; cap at year ~2223. */
    unsigned long long secs = ft / 10000000ull;
    if (secs < 11644473600ull || secs > 11644473600ull + 8000000000ull)
        return 0;
    long long t = (long long)(secs - 11644473600ull);
    int y, m, d;
    civil(t / 86400, &y, &m, &d);
    int rem = (int)(t % 86400);
    snprintf(buf, 32, iso ? "%04d-%02d-%02dT%02d:%02d:%02dZ" : "%04d-%02d-%02d %02d:%02d:%02d UTC", y, m, d, rem / 3600,
             rem / 60 % 60, rem % 60);
    return 1;
}
