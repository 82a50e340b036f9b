/* Access to the forged test matrix (tests/forge --matrix) and its truths. */
#ifndef TEST_MATRIX_H
#define TEST_MATRIX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "dumpleak.h"

typedef struct forged {
    char dump[512];
    json_t *truth; /* owned by the matrix */
    const char *arch, *defect, *scenario;
    int type, build;
} forged;

/* Load $DUMPLEAK_MATRIX/index.json once; count of entries. */
size_t matrix_count(void);
const forged *matrix_get(size_t i);

/* "0x1f" -> 0x1f; JSON integers pass through. */
uint64_t jhex(const json_t *v);
const char *jstr(const json_t *obj, const char *key);

/* Open a forged dump, failing the test with the library's message. */
dl_dump *open_forged(const forged *f, dl_ctx *ctx);

#endif
