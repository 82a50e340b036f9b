#include "ctx.h"
#include "inflate_index.h"
dl_status dl_unwrap_cab(dl_ctx *ctx, dl_source *file, const dl_open_options *opts, dl_source **out)
{
    (void)opts; (void)out;
    dl_source_close(file);
    return dl_fail(ctx, DL_EUNSUPPORTED, "unsupported compression cab");
}
