/* ELF notes of hypervisor captures (vm-captures.md §2): QEMU's per-vCPU
 * QEMUCPUState ("QEMU", type 0: CS +0x98, GS base +0x108, IDT base +0x180,
 * CR3 +0x1A0, KERNEL_GS_BASE +0x1B0 when size >= 0x1B8) and the VMCOREINFO
 * note in which the virtio-win fwcfg driver leaves a Windows dump header. */
#include <string.h>

#include "bytes.h"
#include "capture.h"
#include "ctx.h"

#define MAX_NOTES_BYTES (16u << 20)
#define MAX_NOTE_RECORDS 8192
#define QEMU_STATE_MIN 0x1B0u

static void qemu_state(dl_capture_notes *n, const uint8_t *desc, uint32_t size)
{
    if (size < QEMU_STATE_MIN || n->ncpu == DL_MAX_VCPUS)
        return;
    uint32_t declared = dl_le32(desc + 4);
    dl_vcpu *c = &n->cpu[n->ncpu++];
    c->cs = dl_le32(desc + 0x98);
    c->gs_base = dl_le64(desc + 0x108);
    c->idt_base = dl_le64(desc + 0x180);
    c->cr3 = dl_le64(desc + 0x1A0);
    c->has_kernel_gs = declared >= 0x1B8 && size >= 0x1B8;
    c->kernel_gs_base = c->has_kernel_gs ? dl_le64(desc + 0x1B0) : 0;
}

void dl_capture_parse_notes(dl_dump *d, dl_source *src, uint64_t off, uint64_t len, dl_capture_notes *n)
{
    if (len > MAX_NOTES_BYTES || off > src->size || len > src->size - off) {
        dl_warn(d->ctx, "capture-notes", "the note segment (0x%llx bytes at 0x%llx) runs past the end of the file",
                (unsigned long long)len, (unsigned long long)off);
        if (off > src->size)
            return;
        len = src->size - off < MAX_NOTES_BYTES ? src->size - off : MAX_NOTES_BYTES;
    }
    uint8_t desc[0x2000];
    uint64_t at = off, end = off + len;
    for (int rec = 0; rec < MAX_NOTE_RECORDS && at + 12 <= end; rec++) {
        uint8_t h[12];
        if (dl_source_read(src, d->ctx, at, h, 12) != DL_OK)
            break;
        uint32_t namesz = dl_le32(h), descsz = dl_le32(h + 4), type = dl_le32(h + 8);
        uint64_t name_at = at + 12, desc_at = name_at + ((namesz + 3ull) & ~3ull);
        uint64_t next = desc_at + ((descsz + 3ull) & ~3ull);
        if (namesz > 64 || next > end) {
            dl_warn(d->ctx, "capture-notes", "a note at 0x%llx declares sizes past its segment; notes after it ignored",
                    (unsigned long long)at);
            break;
        }
        char name[65] = {0};
        if (dl_source_read(src, d->ctx, name_at, name, namesz) != DL_OK)
            break;
        uint32_t take = descsz < sizeof desc ? descsz : (uint32_t)sizeof desc;
        if (dl_source_read(src, d->ctx, desc_at, desc, take) != DL_OK)
            break;
        if (!strcmp(name, "QEMU") && type == 0)
            qemu_state(n, desc, take);
        else if (!strcmp(name, "VMCOREINFO") && take >= 0x1000 &&
                 (!memcmp(desc, "PAGEDU64", 8) || !memcmp(desc, "PAGEDUMP", 8))) {
            memcpy(n->windows_header, desc, take);
            n->windows_header_len = take;
        }
        at = next;
    }
    dl_ctx_clear_error(d->ctx);
}
