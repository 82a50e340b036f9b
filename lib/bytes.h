/* Little-endian decoding from byte buffers: structures are decoded field by
 * field from their documented offsets, never by casting packed structs. */
#ifndef DL_BYTES_H
#define DL_BYTES_H

#include <stdint.h>

static inline uint16_t dl_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t dl_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t dl_le64(const uint8_t *p)
{
    return (uint64_t)dl_le32(p) | ((uint64_t)dl_le32(p + 4) << 32);
}

/* Pointer-sized field: 4 bytes on 32-bit targets, 8 on 64-bit. */
static inline uint64_t dl_leptr(const uint8_t *p, int bits)
{
    return bits == 64 ? dl_le64(p) : dl_le32(p);
}

#define DL_PAGE_SIZE 4096u
#define DL_PAGE_SHIFT 12
/* The 'PAGE' filler the dump writer leaves in fields it does not set. */
#define DL_FILLER32 0x45474150u
#define DL_FILLER64 0x4547415045474150ull

#endif
