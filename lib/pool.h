/* Pool analyses: tracker tables, big pages, vm summary. */
#ifndef DL_POOL_H
#define DL_POOL_H

#include "dump.h"

dl_status dl_pool_tracker(dl_dump *d, dl_pool *pool);
dl_status dl_pool_bigpages(dl_dump *d, dl_bigpool *big);
dl_status dl_vm_summary(dl_dump *d, dl_vm *vm);
void dl_pool_results_free(dl_dump *d);

#endif
