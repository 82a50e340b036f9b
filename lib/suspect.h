/* Internals of the suspect search shared with its tests. */
#ifndef DL_SUSPECT_H
#define DL_SUSPECT_H

#include "dump.h"

dl_evidence *dl_add_evidence(dl_suspect *s, const char *module, const char *kind, int score);
const char *dl_immediate_form(const uint8_t pre[7], int bits);

#endif
