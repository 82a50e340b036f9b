#include "ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A real dump never needs more: a flood of warnings is itself a finding. */
#define DL_MAX_WARNINGS 64

struct dl_ctx {
    char error[512];
    dl_warning warnings[DL_MAX_WARNINGS];
    size_t nwarnings;
    int warnings_dropped;
};

dl_ctx *dl_ctx_new(void)
{
    return calloc(1, sizeof(dl_ctx));
}

void dl_ctx_free(dl_ctx *ctx)
{
    if (!ctx)
        return;
    for (size_t i = 0; i < ctx->nwarnings; i++) {
        free((char *)ctx->warnings[i].code);
        free((char *)ctx->warnings[i].message);
    }
    free(ctx);
}

const char *dl_ctx_error(const dl_ctx *ctx)
{
    return ctx->error;
}

size_t dl_ctx_warning_count(const dl_ctx *ctx)
{
    return ctx->nwarnings;
}

const dl_warning *dl_ctx_warning(const dl_ctx *ctx, size_t i)
{
    return i < ctx->nwarnings ? &ctx->warnings[i] : NULL;
}

void dl_ctx_clear_error(dl_ctx *ctx)
{
    ctx->error[0] = 0;
}

dl_status dl_fail(dl_ctx *ctx, dl_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
    return status;
}

void dl_warn(dl_ctx *ctx, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < ctx->nwarnings; i++)
        if (!strcmp(ctx->warnings[i].code, code) && !strcmp(ctx->warnings[i].message, msg))
            return;
    if (ctx->nwarnings == DL_MAX_WARNINGS) {
        ctx->warnings_dropped = 1;
        return;
    }
    char *c = strdup(code), *m = strdup(msg);
    if (!c || !m) {
        free(c);
        free(m);
        return;
    }
    ctx->warnings[ctx->nwarnings].code = c;
    ctx->warnings[ctx->nwarnings].message = m;
    ctx->nwarnings++;
}
