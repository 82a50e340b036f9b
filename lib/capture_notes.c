/* ELF notes of hypervisor captures (vm-captures.md §2, §2.1): QEMU's
 * per-vCPU QEMUCPUState, VirtualBox's VBCORE/VBCPU notes, and the
 * VMCOREINFO note in which the virtio-win fwcfg driver leaves a Windows
 * dump header. */
#include <string.h>

#include "bytes.h"
#include "capture.h"
#include "ctx.h"

#define MAX_NOTES_BYTES (16u << 20)
#define MAX_NOTE_RECORDS 8192

/* QEMUCPUState (QEMU dump/dump.c, vm-captures §2): CS selector +0x98, CS
 * flags +0xA0, GS base +0x108, IDT base +0x180, CR0 +0x188, CR3 +0x1A0,
 * CR4 +0x1A8, KERNEL_GS_BASE +0x1B0 when size >= 0x1B8. */
#define QEMU_STATE_MIN 0x1B0u

/* VirtualBox DBGFCOREDESCRIPTOR and DBGFCORECPU (include/VBox/vmm/dbgfcorefmt.h,
 * vm-captures §2.1): CS selector +0xA0, GS base +0xF0, CR0 +0x120, CR3
 * +0x130, CR4 +0x138, IDT base +0x190, EFER +0x1E8, KernelGSBase +0x218. */
#define VBOX_MAGIC 0xC01AC0DEu
#define VBOX_FORMAT_FIRST 0x00010004u /* DBGFCORECPU layout known from here */
#define VBOX_FORMAT_LAST 0x00010006u
#define VBOX_NT_CORE 0xB00u
#define VBOX_NT_CPU 0xB01u
#define VBOX_CPU_MIN 0x140u     /* through CR4 */
#define VBOX_CPU_KGS_END 0x220u /* through KernelGSBase */

#define CR0_PE 1ull
#define CR0_PG (1ull << 31)

unsigned dl_capture_modes(uint64_t cr0, uint64_t cr4, uint64_t efer, int has_efer)
{
    if (!(cr0 & CR0_PG))
        return 0;
    unsigned x64 = 1u << ((cr4 >> 12) & 1 ? DL_PAGING_X64_5 : DL_PAGING_X64_4);
    if (!(cr4 & (1u << 5)))
        return 1u << DL_PAGING_X86;
    if (has_efer)
        return (efer >> 10) & 1 ? x64 : 1u << DL_PAGING_PAE;
    return x64 | 1u << DL_PAGING_PAE;
}

static dl_vcpu *next_vcpu(dl_capture_notes *n)
{
    if (n->ncpu == DL_MAX_VCPUS)
        return NULL;
    dl_vcpu *c = &n->cpu[n->ncpu++];
    memset(c, 0, sizeof *c);
    return c;
}

static void qemu_state(dl_capture_notes *n, const uint8_t *desc, uint32_t size)
{
    dl_vcpu *c = size >= QEMU_STATE_MIN ? next_vcpu(n) : NULL;
    if (!c)
        return;
    uint32_t declared = dl_le32(desc + 4);
    c->from = "qemu-note";
    c->cs = dl_le32(desc + 0x98);
    c->gs_base = dl_le64(desc + 0x108);
    c->idt_base = dl_le64(desc + 0x180);
    c->cr3 = dl_le64(desc + 0x1A0);
    c->has_cr3 = 1;
    c->has_kernel_gs = declared >= 0x1B8 && size >= 0x1B8;
    c->kernel_gs_base = c->has_kernel_gs ? dl_le64(desc + 0x1B0) : 0;
    /* No EFER in the struct: CS.L (flags bit 21) set means long mode; clear,
     * a PAE CR4 may still be x64 running 32-bit code.  CR0 0: not filled. */
    uint64_t cr0 = dl_le64(desc + 0x188), cr4 = dl_le64(desc + 0x1A8);
    int long_mode = (dl_le32(desc + 0xA0) >> 21) & 1;
    c->modes = !cr0 ? 0 : long_mode ? dl_capture_modes(cr0, cr4, 1ull << 10, 1) : dl_capture_modes(cr0, cr4, 0, 0);
}

static void vbox_core(dl_capture_notes *n, const uint8_t *desc, uint32_t size)
{
    n->vbox_named = 1;
    if (size < 24 || dl_le32(desc) != VBOX_MAGIC || dl_le32(desc + 8) != 24)
        return;
    n->vbox = 1;
    n->vbox_format = dl_le32(desc + 4);
    n->vbox_cpus = dl_le32(desc + 20);
}

static void vbox_cpu(dl_capture_notes *n, const uint8_t *desc, uint32_t size)
{
    n->vbox_notes++;
    n->vbox_named = 1;
    /* Formats before 0x00010004 hold a private CPUMCTX: no registers. */
    if (!n->vbox || n->vbox_format < VBOX_FORMAT_FIRST || size < VBOX_CPU_MIN)
        return;
    dl_vcpu *c = next_vcpu(n);
    if (!c)
        return;
    uint64_t cr0 = dl_le64(desc + 0x120), cr4 = dl_le64(desc + 0x138);
    uint64_t efer = size >= 0x1F0 ? dl_le64(desc + 0x1E8) : 0;
    c->from = "vbox-note";
    c->cs = dl_le16(desc + 0xA0);
    c->gs_base = dl_le64(desc + 0xF0);
    c->cr3 = dl_le64(desc + 0x130);
    c->idt_base = size >= 0x198 ? dl_le64(desc + 0x190) : 0;
    c->modes = dl_capture_modes(cr0, cr4, efer, size >= 0x1F0);
    c->has_cr3 = (cr0 & (CR0_PE | CR0_PG)) == (CR0_PE | CR0_PG) && c->modes;
    c->has_kernel_gs = size >= VBOX_CPU_KGS_END;
    c->kernel_gs_base = c->has_kernel_gs ? dl_le64(desc + 0x218) : 0;
}

/* Names are compared over n_namesz bytes, with or without the NUL
 * (VirtualBox's count leaves it out). */
static int note_named(const char *name, uint32_t namesz, const char *want)
{
    size_t w = strlen(want);
    return (namesz == w || (namesz == w + 1 && !name[w])) && !memcmp(name, want, w);
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
        /* 4-byte padding; VirtualBox pads to 8 but lands on the same offsets. */
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
        if (note_named(name, namesz, "QEMU") && type == 0)
            qemu_state(n, desc, take);
        else if (note_named(name, namesz, "VBCORE") && type == VBOX_NT_CORE)
            vbox_core(n, desc, take);
        else if (note_named(name, namesz, "VBCPU") && type == VBOX_NT_CPU)
            vbox_cpu(n, desc, take);
        else if (note_named(name, namesz, "VMCOREINFO") && take >= 0x1000 &&
                 (!memcmp(desc, "PAGEDU64", 8) || !memcmp(desc, "PAGEDUMP", 8))) {
            memcpy(n->windows_header, desc, take);
            n->windows_header_len = take;
        }
        at = next;
    }
    dl_ctx_clear_error(d->ctx);
}

static void drop_vcpus_from(dl_capture_notes *n, const char *from)
{
    int kept = 0;
    for (int i = 0; i < n->ncpu; i++)
        if (strcmp(n->cpu[i].from, from))
            n->cpu[kept++] = n->cpu[i];
    n->ncpu = kept;
}

void dl_capture_notes_check(dl_dump *d, dl_capture_notes *n)
{
    if (!n->vbox) {
        if (n->vbox_notes) {
            dl_warn(d->ctx, "vbox-notes", "VBCPU notes without a valid VBCORE descriptor: registers not used");
            drop_vcpus_from(n, "vbox-note");
        }
        return;
    }
    if (n->vbox_format < VBOX_FORMAT_FIRST || (n->vbox_format & 0xFFFF0000u) != 0x00010000u) {
        dl_warn(d->ctx, "vbox-notes",
                "VirtualBox core format 0x%08x keeps vCPU registers in a layout not known: CR3 is searched for",
                n->vbox_format);
        drop_vcpus_from(n, "vbox-note");
    } else if (n->vbox_notes != n->vbox_cpus) {
        dl_warn(d->ctx, "vbox-notes", "VirtualBox core declares %u vCPUs but holds %u VBCPU notes: registers not used",
                n->vbox_cpus, n->vbox_notes);
        drop_vcpus_from(n, "vbox-note");
    } else if (n->vbox_format > VBOX_FORMAT_LAST) {
        dl_warn(d->ctx, "vbox-notes",
                "VirtualBox core format 0x%08x is newer than known: control registers read at the 0x%08x offsets",
                n->vbox_format, VBOX_FORMAT_LAST);
    }
}
