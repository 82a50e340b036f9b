/* Text helpers: UTF-16 names from dumps, tag spelling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "dump.h"
#include "kernel.h"

/* Longest UNICODE_STRING we accept (bytes): paths are far shorter. */
#define DL_MAX_USTRING 1024u

char *dl_utf16_to_utf8(const uint8_t *p, size_t nchars)
{
    char *out = malloc(nchars * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < nchars; i++) {
        uint32_t c = dl_le16(p + 2 * i);
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < nchars) {
            uint32_t lo = dl_le16(p + 2 * i + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                i++;
            }
        }
        if (c >= 0xD800 && c <= 0xDFFF)
            c = 0xFFFD; /* lone surrogate */
        if (c == 0)
            break;
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xE0 | (c >> 12));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            /* 4-byte sequence needs one more byte than budgeted per char;
             * the pair consumed two input chars (6 bytes of budget). */
            out[o++] = (char)(0xF0 | (c >> 18));
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    out[o] = 0;
    return out;
}

dl_status dl_read_unicode_string(dl_dump *d, uint64_t us_va, char **out)
{
    int is64 = dl_is64(d);
    uint8_t us[16];
    *out = NULL;
    dl_status st = dl_vmem_read(&d->vm, d->ctx, us_va, us, is64 ? 16 : 8);
    if (st != DL_OK)
        return st;
    uint16_t len = dl_le16(us), max = dl_le16(us + 2);
    uint64_t buf = is64 ? dl_le64(us + 8) : dl_le32(us + 4);
    if (len == 0)
        return dl_fail(d->ctx, DL_PARTIAL, "empty UNICODE_STRING at 0x%llx", (unsigned long long)us_va);
    if ((len & 1) || len > DL_MAX_USTRING || (max && max < len))
        return dl_fail(d->ctx, DL_PARTIAL, "implausible UNICODE_STRING at 0x%llx (Length %u)",
                       (unsigned long long)us_va, len);
    uint8_t tmp[DL_MAX_USTRING];
    st = dl_vmem_read(&d->vm, d->ctx, buf, tmp, len);
    if (st != DL_OK)
        return st;
    *out = dl_utf16_to_utf8(tmp, len / 2);
    return *out ? DL_OK : dl_fail(d->ctx, DL_ECORRUPT, "out of memory");
}

void dl_format_tag(uint32_t key, char buf[17])
{
    size_t o = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)(key >> (8 * i));
        if (c == '\\') {
            buf[o++] = '\\';
            buf[o++] = '\\';
        } else if (c >= 0x20 && c <= 0x7E) {
            buf[o++] = (char)c;
        } else {
            snprintf(buf + o, 5, "\\x%02x", c);
            o += 4;
        }
    }
    buf[o] = 0;
}

void dl_modules_free(dl_modules *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nloaded; i++) {
        free(m->loaded[i].name);
        free(m->loaded[i].path);
    }
    for (size_t i = 0; i < m->nunloaded; i++)
        free(m->unloaded[i].name);
    free(m->loaded);
    free(m->unloaded);
    free(m);
}

int dl_ascii_caseeq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}
