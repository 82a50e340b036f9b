/* Decoding an encoded KDBG without symbols (pool-internals.md §1.5: the
 * algorithm of vol2 win8_kdbg.py / MemProcFS, the key search of vol2's
 * KdCopyDataBlock heuristic): find `cmp byte [rip+x],0` (the flag), then up
 * to the first ret a `lea r64,[rip+x]`, a `mov r64,[rip+x]` (KiWaitNever),
 * a `mov/xor r64,[rip+x]` (KiWaitAlways) and a bswap. */
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "kdbg.h"
#include "kernel.h"
#include "pe.h"

#define SEARCH_SPAN 300

static uint64_t rol64(uint64_t x, unsigned n)
{
    n &= 63;
    return n ? (x << n) | (x >> (64 - n)) : x;
}

static uint64_t bswap64(uint64_t x)
{
    uint64_t r = 0;
    for (int i = 0; i < 8; i++)
        r = (r << 8) | ((x >> (8 * i)) & 0xFF);
    return r;
}

uint64_t dl_kdbg_decode_word(const dl_kdbg_keys *k, uint64_t e)
{
    uint64_t x = e ^ k->wait_never;
    x = rol64(x, (unsigned)(k->wait_never & 0xFF));
    x ^= k->flag_va;
    x = bswap64(x);
    return x ^ k->wait_always;
}

/* RIP-relative target of a disp32 at p (instruction ends at p + 4 + tail). */
static uint64_t rip_target(uint64_t insn_va_end, const uint8_t *disp)
{
    return insn_va_end + (uint64_t)(int64_t)(int32_t)dl_le32(disp);
}

/* REX.W (+R) opcode modrm(mod=00, rm=101): a [rip+disp32] operand. */
static int rip_op(const uint8_t *p, uint8_t opcode)
{
    return (p[0] == 0x48 || p[0] == 0x4C) && p[1] == opcode && (p[2] & 0xC7) == 0x05;
}

/* Try the candidate function at code[i] (the cmp); fills keys and the
 * address its lea names (the KDBG). */
static int parse_candidate(dl_dump *d, const uint8_t *code, size_t len, uint64_t code_va, size_t i, dl_kdbg_keys *k,
                           uint64_t *block)
{
    if (i + 7 > len)
        return 0;
    k->flag_va = rip_target(code_va + i + 7, code + i + 2);
    int have_lea = 0, have_never = 0, have_always = 0, have_bswap = 0;
    for (size_t j = i + 7; j + 7 <= len && j < i + SEARCH_SPAN; j++) {
        const uint8_t *p = code + j;
        if (p[0] == 0xC3)
            break;
        if ((p[0] == 0x48 || p[0] == 0x49) && p[1] == 0x0F && p[2] >= 0xC8 && p[2] <= 0xCF)
            have_bswap = 1;
        if (!have_lea && rip_op(p, 0x8D)) {
            have_lea = 1;
            *block = rip_target(code_va + j + 7, p + 3);
            j += 6;
        } else if (have_lea && !have_never && rip_op(p, 0x8B)) {
            uint64_t at = rip_target(code_va + j + 7, p + 3);
            if (dl_vmem_read_u64(&d->vm, d->ctx, at, &k->wait_never) != DL_OK)
                return 0;
            have_never = 1;
            j += 6;
        } else if (have_never && !have_always && (rip_op(p, 0x8B) || rip_op(p, 0x33))) {
            uint64_t at = rip_target(code_va + j + 7, p + 3);
            if (dl_vmem_read_u64(&d->vm, d->ctx, at, &k->wait_always) != DL_OK)
                return 0;
            have_always = 1;
            j += 6;
        }
    }
    return have_lea && have_never && have_always && have_bswap;
}

int dl_kdbg_find_keys(dl_dump *d, uint64_t *va, dl_kdbg_keys *keys, uint32_t *size)
{
    uint64_t nt;
    dl_image img;
    if (!dl_nt_base(d, &nt) || dl_image_load(d, nt, 0, &img) != DL_OK)
        return 0;
    for (int s = 0; s < img.nsec; s++) {
        if (!dl_section_is_code(&img.sec[s]))
            continue;
        dl_window w;
        if (dl_window_read(d, img.sec[s].va, img.sec[s].size, &w) != DL_OK)
            continue;
        for (size_t i = 0; i + 7 <= w.len; i++) {
            if (w.data[i] != 0x80 || w.data[i + 1] != 0x3D || w.data[i + 6] != 0x00)
                continue;
            dl_kdbg_keys k;
            uint64_t block = 0, word;
            if (!parse_candidate(d, w.data, w.len, w.va, i, &k, &block))
                continue;
            if (*va)
                block = *va;
            if (dl_vmem_read_u64(&d->vm, d->ctx, block + 0x10, &word) != DL_OK)
                continue;
            uint64_t plain = dl_kdbg_decode_word(&k, word);
            uint32_t tag = (uint32_t)plain, sz = (uint32_t)(plain >> 32);
            uint8_t flag = 0;
            dl_vmem_read(&d->vm, d->ctx, k.flag_va, &flag, 1);
            if (tag == 0x4742444Bu && sz >= 0x200 && sz <= 0x1000 && sz % 8 == 0 && flag) {
                *keys = k;
                *size = sz;
                *va = block;
                dl_window_free(&w);
                return 1;
            }
        }
        dl_window_free(&w);
    }
    return 0;
}
