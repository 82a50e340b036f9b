/* Encoded KDBG blocks (x64 Windows 8+, pool-internals.md §1.5). */
#ifndef DL_KDBG_H
#define DL_KDBG_H

#include <stdint.h>

#include "dump.h"

typedef struct dl_kdbg_keys {
    uint64_t wait_never;  /* KiWaitNever */
    uint64_t wait_always; /* KiWaitAlways */
    uint64_t flag_va;     /* &KdpDataBlockEncoded */
} dl_kdbg_keys;

uint64_t dl_kdbg_decode_word(const dl_kdbg_keys *k, uint64_t e);

/* Find the keys in nt's code (the KdCopyDataBlock pattern) such that the
 * block at *va decodes to tag 'KDBG' with a plausible Size.  With *va == 0
 * the block is the one the function's `lea` names, returned in *va. */
int dl_kdbg_find_keys(dl_dump *d, uint64_t *va, dl_kdbg_keys *keys, uint32_t *size);

#endif
