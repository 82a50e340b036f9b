/* Where ELF cores and kdump-compressed files keep their notes, and which
 * physical ranges an ELF core declares without holding them (vm-captures
 * §2, §2.1, §3).  libkdumpfile reads the memory; it skips these notes and
 * reads a truncated or MMIO segment as zeros. */
#include <string.h>

#include "bytes.h"
#include "capture.h"
#include "ctx.h"

#define MAX_PHDRS 65535u

static void add_gap(dl_elf_facts *f, uint64_t pa_from, uint64_t pa_to, int truncated)
{
    /* A partly held page is not held. */
    uint64_t first = pa_from >> 12, end = (pa_to + 0xFFF) >> 12;
    if (end > first && f->ngap < (int)(sizeof f->gap / sizeof f->gap[0]))
        f->gap[f->ngap++] = (dl_elf_gap){first, end - first, truncated};
}

void dl_capture_elf_notes(dl_dump *d, dl_capture_notes *notes, dl_elf_facts *f)
{
    memset(f, 0, sizeof *f);
    uint8_t e[64];
    if (dl_source_read(d->src, d->ctx, 0, e, sizeof e) != DL_OK)
        return;
    int is64 = e[4] == 2;
    f->machine = dl_le16(e + 18);
    uint64_t phoff = is64 ? dl_le64(e + 32) : dl_le32(e + 28);
    uint16_t phentsize = dl_le16(e + (is64 ? 54 : 42));
    uint32_t phnum = dl_le16(e + (is64 ? 56 : 44));
    if (phentsize < (is64 ? 56 : 32))
        return;
    if (phnum == 0xFFFF) {
        /* PN_XNUM: the count is in section header 0's sh_info (QEMU, §2). */
        uint64_t shoff = is64 ? dl_le64(e + 40) : dl_le32(e + 32);
        uint8_t info[4];
        if (shoff && dl_source_read(d->src, d->ctx, shoff + (is64 ? 44 : 28), info, 4) == DL_OK)
            phnum = dl_le32(info);
    }
    uint64_t size = d->src->size;
    for (uint32_t i = 0; i < phnum && i < MAX_PHDRS; i++) {
        uint8_t p[56];
        if (dl_source_read(d->src, d->ctx, phoff + (uint64_t)i * phentsize, p, is64 ? 56 : 32) != DL_OK)
            break;
        uint64_t off = is64 ? dl_le64(p + 8) : dl_le32(p + 4);
        uint64_t filesz = is64 ? dl_le64(p + 32) : dl_le32(p + 16);
        if (dl_le32(p) == 4 /* PT_NOTE */) {
            dl_capture_parse_notes(d, d->src, off, filesz, notes);
            continue;
        }
        if (dl_le32(p) != 1 /* PT_LOAD */)
            continue;
        uint64_t pa = is64 ? dl_le64(p + 24) : dl_le32(p + 12);
        uint64_t memsz = is64 ? dl_le64(p + 40) : dl_le32(p + 20);
        if (filesz > memsz)
            filesz = memsz;
        /* VirtualBox MMIO ranges: p_filesz 0 (or short), nothing in the file. */
        if (memsz > filesz && pa + memsz > pa)
            add_gap(f, pa + filesz, pa + memsz, 0);
        if (filesz && (off > size || filesz > size - off)) {
            uint64_t kept = off < size ? size - off : 0;
            add_gap(f, pa + kept, pa + filesz, 1);
        }
    }
    dl_ctx_clear_error(d->ctx);
}

/* disk_dump_header: the writer's 64- or 32-bit layout, told apart by a
 * sane block_size (§3.1); the sub-header at block 1 locates the notes. */
void dl_capture_kdump_notes(dl_dump *d, dl_source *src, dl_capture_notes *notes)
{
    uint8_t h[464];
    if (dl_source_read(src, d->ctx, 0, h, sizeof h) != DL_OK)
        return;
    for (int is64 = 1; is64 >= 0; is64--) {
        uint32_t block = dl_le32(h + (is64 ? 428 : 416));
        if (block < 1024 || block > 65536 || (block & (block - 1)))
            continue;
        uint8_t sub[64];
        if (dl_source_read(src, d->ctx, block, sub, sizeof sub) != DL_OK)
            break;
        uint64_t off = dl_le64(sub + (is64 ? 48 : 32)), len = dl_le64(sub + (is64 ? 56 : 40));
        if (off && len)
            dl_capture_parse_notes(d, src, off, len, notes);
        break;
    }
    dl_ctx_clear_error(d->ctx);
}
