/* Placeholder until compressed wrappers land: plain files pass through;
 * recognised wrappers are reported by the container as unsupported. */
#include "source.h"

dl_status dl_source_unwrap(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out,
                           const char **wrapper)
{
    (void)ctx;
    (void)opts;
    *out = file;
    *wrapper = NULL;
    return DL_OK;
}
