/* Internal side of dl_ctx: error message and warnings. */
#ifndef DL_CTX_H
#define DL_CTX_H

#include "dumpleak.h"

#if defined(__MINGW32__) /* MinGW's C99 stdio, not msvcrt's printf */
#define DL_PRINTF(a, b) __attribute__((format(gnu_printf, a, b)))
#elif defined(__GNUC__)
#define DL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DL_PRINTF(a, b)
#endif

/* Set the context's message and return status (so callers can write
 * `return dl_fail(ctx, DL_ECORRUPT, ...)`). */
dl_status dl_fail(dl_ctx *ctx, dl_status status, const char *fmt, ...) DL_PRINTF(3, 4);

/* Add a warning; a warning with the same code and message is kept once. */
void dl_warn(dl_ctx *ctx, const char *code, const char *fmt, ...) DL_PRINTF(3, 4);

void dl_ctx_clear_error(dl_ctx *ctx);

#endif
