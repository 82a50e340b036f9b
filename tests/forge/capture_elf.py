"""QEMU-style ELF core (vm-captures.md §2): notes (CORE prstatus, QEMU QEMUCPUState,
VMCOREINFO) and the ELF writer / a small independent reader used by the checks."""
import os
import struct

from capture_phys import PAGE, ZERO

EM_386, EM_X86_64 = 3, 62
ET_CORE, PT_LOAD, PT_NOTE = 4, 1, 4
QEMU_STATE_SIZE = 0x1B8


def note(name, ntype, desc):
    nb = name.encode() + b'\0'
    out = struct.pack('<III', len(nb), len(desc), ntype)
    out += nb + bytes(-len(nb) % 4)
    out += desc + bytes(-len(desc) % 4)
    return out


def parse_notes(buf, align=4):
    """[(name, type, desc, offset_of_desc)]; stops (raises) on a note that does not fit.
    align: 4 for ELF notes as QEMU writes them, 8 for VirtualBox's padding."""
    out, o = [], 0
    while o + 12 <= len(buf):
        namesz, descsz, ntype = struct.unpack_from('<III', buf, o)
        no = o + 12
        do = no + ((namesz + align - 1) & ~(align - 1))
        end = do + ((descsz + align - 1) & ~(align - 1))
        if end > len(buf):
            raise ValueError('note at +0x%x (%d/%d) runs past the note segment' % (o, namesz, descsz))
        name = buf[no:no + namesz].rstrip(b'\0').decode('latin-1')
        out.append((name, ntype, buf[do:do + descsz], do))
        o = end
    return out


# segment descriptor flags as QEMU keeps them (the descriptor's high dword)
SEG = {
    ('x64', 'code', 0): 0x00209B00, ('x64', 'code', 3): 0x0020FB00,
    ('x64', 'data', 0): 0x00CF9300, ('x64', 'data', 3): 0x00CFF300,
    ('x86', 'code', 0): 0x00CF9B00, ('x86', 'code', 3): 0x00CFFB00,
    ('x86', 'data', 0): 0x00CF9300, ('x86', 'data', 3): 0x00CFF300,
}


class VCpu:
    """Register state of one vCPU (kernel or user mode)."""

    def __init__(self, index, arch, user, cr3, rip, rsp, rng, kpcr, teb, pcid=False):
        self.index, self.arch, self.user = index, arch, user
        self.cr3, self.rip, self.rsp = cr3, rip, rsp
        self.kpcr, self.teb = kpcr, teb
        x64 = arch == 'x64'
        self.regs = [rng.getrandbits(64 if x64 else 32) for _ in range(16 if x64 else 8)]
        if not x64:
            self.regs += [0] * 8
        self.rflags = 0x246 if user else 0x86
        if x64:
            self.cs, self.ss, self.ds, self.fs, self.gs = (0x33, 0x2B, 0x2B, 0x53, 0x2B) if user \
                else (0x10, 0x18, 0x2B, 0x53, 0x2B)
            self.fs_base = 0
            self.gs_base = teb if user else kpcr          # swapgs: GS.base = KPCR in kernel mode
            self.kernel_gs_base = kpcr if user else teb
        else:
            self.cs, self.ss, self.ds, self.fs, self.gs = (0x1B, 0x23, 0x23, 0x3B, 0) if user \
                else (0x08, 0x10, 0x23, 0x30, 0)
            self.fs_base = teb if user else kpcr
            self.gs_base = 0
            self.kernel_gs_base = 0
        self.cr0 = 0x80050033
        self.cr2 = rng.getrandbits(32 if not x64 else 47) & ~0xF
        if arch == 'x64':
            self.cr4 = 0x000506F8 | (0x20000 if pcid else 0)
        elif arch == 'x86-pae':
            self.cr4 = 0x000006B8
        else:
            self.cr4 = 0x00000698
        self.gdt = kpcr & ~0xFFF if kpcr else 0
        self.idt = (kpcr & ~0xFFF) + 0x1000 if kpcr else 0

    @property
    def mode(self):
        return 'x64' if self.arch == 'x64' else 'x86'

    def qemu_state(self, size=QEMU_STATE_SIZE):
        b = bytearray(size)
        struct.pack_into('<II', b, 0, 1, size)
        for i in range(16):
            struct.pack_into('<Q', b, 8 + 8 * i, self.regs[i] if i < len(self.regs) else 0)
        struct.pack_into('<QQ', b, 0x88, self.rip, self.rflags)
        ring = 3 if self.user else 0

        def seg(i, sel, kind, base, limit=0xFFFFFFFF, flags=None):
            f = SEG[(self.mode, kind, ring)] if flags is None else flags
            struct.pack_into('<IIIIQ', b, 0x98 + 24 * i, sel, limit, f, 0, base)
        seg(0, self.cs, 'code', 0)
        seg(1, self.ds, 'data', 0)
        seg(2, self.ds, 'data', 0)
        seg(3, self.fs, 'data', self.fs_base, flags=SEG[(self.mode, 'data', 3)])
        seg(4, self.gs, 'data', self.gs_base, flags=SEG[(self.mode, 'data', 3)])
        seg(5, self.ss, 'data', 0, flags=SEG[(self.mode, 'data', 0)])
        seg(6, 0, 'data', 0, limit=0, flags=0)                                 # ldt
        seg(7, 0x40 if self.mode == 'x64' else 0x28, 'data', self.kpcr + 0x100 if self.kpcr else 0,
            limit=0x67, flags=0x00008B00)                                     # tr (busy TSS)
        seg(8, 0, 'data', self.gdt, limit=0x7F if self.mode == 'x86' else 0x6F, flags=0)   # gdt
        seg(9, 0, 'data', self.idt, limit=0xFFF if self.mode == 'x64' else 0x7FF, flags=0)  # idt
        struct.pack_into('<QQQQQ', b, 0x188, self.cr0, 0, self.cr2, self.cr3, self.cr4)
        if size >= 0x1B8:
            struct.pack_into('<Q', b, 0x1B0, self.kernel_gs_base)
        return bytes(b)

    def prstatus(self):
        if self.mode == 'x64':
            b = bytearray(336)
            struct.pack_into('<I', b, 32, self.index + 1)
            r = self.regs
            # r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags
            # rsp ss fs_base gs_base ds es fs gs
            vals = [r[15], r[14], r[13], r[12], r[7], r[1], r[11], r[10], r[9], r[8], r[0], r[2],
                    r[3], r[4], r[5], (1 << 64) - 1, self.rip, self.cs, self.rflags, self.rsp,
                    self.ss, self.fs_base, self.gs_base, self.ds, self.ds, self.fs, self.gs]
            struct.pack_into('<27Q', b, 112, *vals)
            return bytes(b)
        b = bytearray(144)
        struct.pack_into('<I', b, 24, self.index + 1)
        r = [x & 0xFFFFFFFF for x in self.regs]
        # ebx ecx edx esi edi ebp eax ds es fs gs orig_eax eip cs eflags esp ss
        struct.pack_into('<7I4I6I', b, 72, r[1], r[2], r[3], r[4], r[5], r[7], r[0],
                         self.ds, self.ds, self.fs, self.gs, 0xFFFFFFFF, self.rip & 0xFFFFFFFF,
                         self.cs, self.rflags, self.rsp & 0xFFFFFFFF, self.ss)
        return bytes(b)


def build_notes(cpus, cpu_notes=True, vmcoreinfo=None):
    """All notes in QEMU's order: CORE × n, QEMU × n, VMCOREINFO. Returns (bytes, index) where
    index lists (name, type, desc_offset, desc_size)."""
    parts = []
    for c in cpus:
        parts.append(('CORE', 1, c.prstatus()))
    if cpu_notes:
        for c in cpus:
            parts.append(('QEMU', 0, c.qemu_state()))
    if vmcoreinfo is not None:
        parts.append(('VMCOREINFO', 0, vmcoreinfo))
    out, idx = b'', []
    for name, t, desc in parts:
        nb = len(name) + 1
        idx.append((name, t, len(out) + 12 + ((nb + 3) & ~3), len(desc)))
        out += note(name, t, desc)
    return out, idx


def elf_layout(blocks, notes_len, cls64, n_phdr=None):
    n = 1 + len(blocks)
    ehsz, phsz = (64, 56) if cls64 else (52, 32)
    note_off = ehsz + n * phsz
    mem_off = note_off + notes_len
    loads, off = [], mem_off
    for a, cnt in blocks:
        loads.append((a * PAGE, off, cnt * PAGE))
        off += cnt * PAGE
    return note_off, mem_off, loads, off


def write_elf(path, guest, notes, cls64, machine, vaddr_zero=False):
    """Ehdr | PT_NOTE | PT_LOAD × blocks | notes | memory (memory not page aligned)."""
    note_off, mem_off, loads, total = elf_layout(guest.blocks, len(notes), cls64)
    n = 1 + len(loads)
    if cls64:
        eh = b'\x7fELF' + bytes([2, 1, 1, 0]) + bytes(8)
        eh += struct.pack('<HHIQQQIHHHHHH', ET_CORE, machine, 1, 0, 64, 0, 0, 64, 56, n, 64, 0, 0)
        ph = struct.pack('<IIQQQQQQ', PT_NOTE, 0, note_off, 0, 0, len(notes), len(notes), 0)
        for pa, off, size in loads:
            ph += struct.pack('<IIQQQQQQ', PT_LOAD, 0, off, 0 if vaddr_zero else pa, pa, size, size, 0)
    else:
        eh = b'\x7fELF' + bytes([1, 1, 1, 0]) + bytes(8)
        eh += struct.pack('<HHIIIIIHHHHHH', ET_CORE, machine, 1, 0, 52, 0, 0, 52, 32, n, 40, 0, 0)
        ph = struct.pack('<IIIIIIII', PT_NOTE, note_off, 0, 0, len(notes), len(notes), 0, 0)
        for pa, off, size in loads:
            ph += struct.pack('<IIIIIIII', PT_LOAD, off, 0 if vaddr_zero else pa, pa, size, size, 0, 0)
    head = eh + ph
    assert len(head) == note_off
    write_core(path, head + notes, loads, guest, total)
    return dict(note_off=note_off, note_size=len(notes), mem_off=mem_off, size=total,
                loads=[[hex(pa), hex(off), hex(size)] for pa, off, size in loads])


def write_core(path, head, loads, guest, total):
    """head (headers + notes), then each PT_LOAD's pages [(paddr, offset, filesz)], sparse."""
    with open(path, 'wb') as f:
        f.write(head)
        for (pa, off, size) in loads:
            first = pa // PAGE
            for p in sorted(k for k in guest.pages if first <= k < first + size // PAGE):
                f.seek(off + (p - first) * PAGE)
                f.write(guest.pages[p])
        f.truncate(total)


class ElfReader:
    """Independent reader: PT_LOADs by p_paddr + notes (for the checks)."""

    def __init__(self, path):
        self.f = open(path, 'rb')
        h = self.f.read(64)
        if h[:4] != b'\x7fELF':
            raise ValueError('not ELF')
        self.cls64 = h[4] == 2
        if self.cls64:
            (self.type, self.machine, _, _, phoff, _, _, _, phes, phn) = struct.unpack_from('<HHIQQQIHHH', h, 16)
        else:
            (self.type, self.machine, _, _, phoff, _, _, _, phes, phn) = struct.unpack_from('<HHIIIIIHHH', h, 16)
        self.f.seek(phoff)
        ph = self.f.read(phes * phn)
        self.loads, self.notes = [], []
        for i in range(phn):
            if self.cls64:
                t, fl, off, va, pa, fs, ms, al = struct.unpack_from('<IIQQQQQQ', ph, i * phes)
            else:
                t, off, va, pa, fs, ms, fl, al = struct.unpack_from('<IIIIIIII', ph, i * phes)
            if t == PT_LOAD:
                self.loads.append((pa, off, fs, ms))
            elif t == PT_NOTE:
                self.f.seek(off)
                self.notes = parse_notes(self.f.read(fs))

    def nonzero_pfns(self):
        out = []
        fd = self.f.fileno()
        for a, off, fs, ms in self.loads:
            out += [a // PAGE + i for i in _data_pages(fd, off, fs)]
        return [p for p in out if (self.read_page(p) or ZERO) != ZERO]

    def read_page(self, pfn):
        pa = pfn * PAGE
        for a, off, fs, ms in self.loads:
            if a <= pa < a + fs:
                self.f.seek(off + pa - a)
                b = self.f.read(PAGE)
                return b + bytes(PAGE - len(b))
        return None


def _data_pages(fd, start, length):
    """Page indexes (relative to start) that touch data extents of [start, start+length)."""
    out, pos, end = set(), start, start + length
    while pos < end:
        try:
            d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        if d >= end:
            break
        h = min(os.lseek(fd, d, os.SEEK_HOLE), end)
        out.update(range(max(0, (d - start - PAGE + 1) // PAGE), (h - start + PAGE - 1) // PAGE))
        pos = h
    return sorted(i for i in out if i < length // PAGE)
