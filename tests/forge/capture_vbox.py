"""VirtualBox ELF cores (`VBoxManage debugvm VM dumpvmcore`), written from
/work/shared/spec/vm-captures.md §2.1 only: the writer's layout, the VBCORE / VBCPU notes
(DBGFCORECPU, formats 0x00010004-0x00010006; 0x00010000 = a raw CPUMCTX-like blob), PT_LOADs
for every VirtualBox physical range (MMIO ranges with p_filesz 0), plus an independent reader
(PT_LOADs honouring p_filesz, notes walked with VirtualBox's 8-byte padding) used by the checks.

    Elf64_Ehdr | Phdr PT_NOTE | Phdr PT_LOAD x n | note VBCORE | note VBCPU x cCpus | data
"""
import struct

from capture_phys import PAGE
import capture_elf as E

EM_386, EM_X86_64 = 3, 62
ET_CORE, PT_LOAD, PT_NOTE, PF_R = 4, 1, 4, 4
NT_VBOXCORE, NT_VBOXCPU = 0xB00, 0xB01
VBCORE_MAGIC = 0xC01AC0DE
FORMATS = (0x00010000, 0x00010004, 0x00010005, 0x00010006)
# (VirtualBox version major<<24|minor<<16|build, SVN revision) written into VBCORE: illustrative
# values of releases of the era of each format (nothing reads them but Volatility 2's vboxinfo)
VBOX_VERSION = {0x00010000: (0x0401000C, 78361), 0x00010004: (0x05000014, 106931),
                0x00010005: (0x06010010, 140961), 0x00010006: (0x0700000E, 161095)}
CPU_SIZE = {0x00010004: 0x2240, 0x00010005: 0x2240, 0x00010006: 0x2248}
OLD_CTX_SIZE = 0x440            # forge's CPUMCTX-like blob for format 0x00010000

# guest physical ranges a VirtualBox PC has besides RAM (pfn, pages)
VGA_MMIO = (0xA0, 0x20)         # legacy VGA window 0xA0000-0xBFFFF: MMIO, p_filesz 0
VGA_ROM = (0xC0, 0x08)          # VGA BIOS 0xC0000-0xC7FFF: not RAM, carries data (filesz == memsz)
FRAMEBUFFER = (0xE0000, 0x1000)  # 16 MiB VRAM BAR at 0xE0000000: MMIO, p_filesz 0


def vnote(name, ntype, desc):
    """VirtualBox's note: n_namesz without the NUL, name and descriptor padded to 8,
    n_descsz = payload rounded up to 8."""
    nb = name.encode()
    d = desc + bytes(-len(desc) % 8)
    return struct.pack('<III', len(nb), len(d), ntype) + nb + bytes(-len(nb) % 8) + d


def seg_attr(qemu_flags):
    """QEMU keeps the descriptor's high dword (type at bit 8 ...); VirtualBox's attr word
    has type at bit 0 (§2.1: type 0-3, S 4, DPL 5-6, P 7, limit 19:16 8-11, AVL 12, L 13, D/B 14,
    G 15, unusable 16)."""
    return (qemu_flags >> 8) & 0xFFFF


def dbgfcorecpu(c, fmt, nt_base, rng):
    """DBGFCORECPU (§2.1 table) of one vCPU (capture_elf.VCpu)."""
    from capture_elf import SEG
    size = CPU_SIZE[fmt]
    b = bytearray(size)
    x64 = c.arch == 'x64'
    r = c.regs
    # rax rbx rcx rdx rsi rdi r8..r15 ; rip rsp rbp rflags
    gpr = [r[0], r[1], r[2], r[3], r[4], r[5]] + [r[i] if i < len(r) else 0 for i in range(8, 16)]
    struct.pack_into('<14Q', b, 0, *gpr)
    struct.pack_into('<QQQQ', b, 0x70, c.rip, c.rsp, r[7], c.rflags)
    ring = 3 if c.user else 0
    mode = c.mode

    def seg(i, sel, base, limit, attr):
        struct.pack_into('<QIIH', b, 0x90 + 24 * i, base, limit, attr, sel)
    code = seg_attr(SEG[(mode, 'code', ring)])
    data = seg_attr(SEG[(mode, 'data', ring)])
    data3 = seg_attr(SEG[(mode, 'data', 3)])
    lim = 0xFFFFFFFF
    seg(0, c.cs, 0, lim, code)                          # cs
    seg(1, c.ds, 0, lim, data)                          # ds
    seg(2, c.ds, 0, lim, data)                          # es
    seg(3, c.fs, c.fs_base, lim, data3)                 # fs
    seg(4, c.gs, c.gs_base, lim, data3)                 # gs
    seg(5, c.ss, 0, lim, seg_attr(SEG[(mode, 'data', 0)]) if not c.user else data)   # ss
    struct.pack_into('<QQQQ', b, 0x120, c.cr0, c.cr2, c.cr3, c.cr4)
    struct.pack_into('<Q', b, 0x140 + 6 * 8, 0xFFFF0FF0)            # dr6
    struct.pack_into('<Q', b, 0x140 + 7 * 8, 0x400)                 # dr7
    struct.pack_into('<QI', b, 0x180, c.gdt, 0x6F if x64 else 0x3FF)
    struct.pack_into('<QI', b, 0x190, c.idt, 0xFFF if x64 else 0x7FF)
    struct.pack_into('<QIIH', b, 0x1A0, 0, 0, 0x10000, 0)           # ldtr: unusable
    struct.pack_into('<QIIH', b, 0x1B8, c.kpcr + 0x100 if c.kpcr else 0, 0x67, 0x8B,
                     0x40 if x64 else 0x28)                          # tr: busy TSS
    if x64:
        sysenter = (0, 0, 0)
        efer = 0xD01                                                 # SCE | LME | LMA | NXE
        star, lstar, cstar, sfmask = 0x0023001000000000, nt_base + 0x3A1C0, nt_base + 0x3A040, 0x4700
    else:
        sysenter = (0x08, nt_base + 0x6A0F0, c.kpcr + 0x2000 if c.kpcr else 0)
        efer = 0x800 if c.arch == 'x86-pae' else 0                   # NXE (PAE kernels), LMA clear
        star = lstar = cstar = sfmask = 0
    struct.pack_into('<QQQ', b, 0x1D0, *sysenter)
    struct.pack_into('<QQQQQQQQ', b, 0x1E8, efer, star, 0x0007010600070106, lstar, cstar, sfmask,
                     c.kernel_gs_base, 0xFEE00900 if c.index == 0 else 0xFEE00800)
    xcr0 = 7 if x64 else 3
    if fmt >= 0x00010006:
        struct.pack_into('<Q', b, 0x228, c.index)                   # msrTscAux
        xo, co, xs = 0x230, 0x240, 0x248
    else:
        xo, co, xs = 0x228, 0x238, 0x240
    struct.pack_into('<QQ', b, xo, xcr0, 0)
    struct.pack_into('<I', b, co, 0x340 if x64 else 0x240)          # cbExt
    struct.pack_into('<HHBBHQ', b, xs, 0x027F, 0, 0, 0, 0, 0)       # FCW
    struct.pack_into('<II', b, xs + 24, 0x1F80, 0xFFFF)             # MXCSR, MXCSR_MASK
    for i in range(16 if x64 else 8):                               # some XMM contents
        struct.pack_into('<QQ', b, xs + 0xA0 + 16 * i, rng.getrandbits(64), rng.getrandbits(64))
    struct.pack_into('<Q', b, xs + 512, xcr0)                       # XSTATE_BV
    return bytes(b)


def old_cpumctx(c, kernel_cr3, rng):
    """Format 0x00010000: VirtualBox's internal CPUMCTX copied raw (§2.1: a private struct; do
    not read registers from it). The forge's stand-in has a different layout: the 512-byte
    FXSAVE image first, then GPRs, segments, control registers at other offsets. The XMM
    registers hold arbitrary data; xmm9's low qword (descriptor offset 0x130, where DBGFCORECPU
    keeps cr3) holds the kernel's page-table base and xmm0's low word (0x0A0, the cs selector in
    DBGFCORECPU) has RPL 0, so a reader that ignores the format reports a wrong source."""
    b = bytearray(OLD_CTX_SIZE)
    struct.pack_into('<HH', b, 0, 0x027F, 0)
    struct.pack_into('<II', b, 24, 0x1F80, 0xFFFF)
    for i in range(16):
        struct.pack_into('<QQ', b, 0xA0 + 16 * i, rng.getrandbits(64) & ~3, rng.getrandbits(64))
    struct.pack_into('<Q', b, 0x130, kernel_cr3)
    r = c.regs + [0] * (16 - len(c.regs))
    # rdi rsi rbp rax rbx rdx rcx rsp r8..r15
    struct.pack_into('<16Q', b, 0x200, r[5], r[4], r[7], r[0], r[1], r[3], r[2], c.rsp, *r[8:16])
    struct.pack_into('<QQ', b, 0x280, c.rip, c.rflags)
    for i, (sel, base) in enumerate(((c.ds, 0), (c.cs, 0), (c.ss, 0), (c.ds, 0), (c.fs, c.fs_base),
                                     (c.gs, c.gs_base))):
        struct.pack_into('<HHIQII', b, 0x290 + 24 * i, sel, 0, 0, base, 0xFFFFFFFF, 0)
    struct.pack_into('<QQQQ', b, 0x320, c.cr0, c.cr2, c.cr3, c.cr4)
    return bytes(b)


def ranges(guest):
    """VirtualBox physical ranges: the QEMU-like RAM blocks (the VGA BIOS pages split off as a
    ROM range with data), the VGA window and a 16 MiB framebuffer as MMIO (p_filesz 0). Returns
    [(pfn, pages, has_data, what)] in the writer's (PGM's) order, which is not sorted: RAM
    ranges first, then the device ranges."""
    ram, dev = [], [(VGA_MMIO[0], VGA_MMIO[1], False, 'mmio-vga'),
                    (FRAMEBUFFER[0], FRAMEBUFFER[1], False, 'mmio-framebuffer')]
    for a, n in guest.blocks:
        if a == 0x100000 - 0x40 and n == 0x40:
            dev.append((a, n, True, 'rom-bios'))
        elif a <= VGA_ROM[0] < a + n:
            if a < VGA_ROM[0]:
                ram.append((a, VGA_ROM[0] - a, True, 'ram'))
            dev.append((VGA_ROM[0], VGA_ROM[1], True, 'rom-vga'))
            e = VGA_ROM[0] + VGA_ROM[1]
            if a + n > e:
                ram.append((e, a + n - e, True, 'ram'))
        else:
            ram.append((a, n, True, 'ram'))
    # RAM above 4 GiB last among the RAM ranges, device ranges interleaved after the first one
    out = ram[:1] + dev[:1] + ram[1:] + dev[1:]
    allr = sorted((a, a + n) for a, n, _, _ in out)
    for (a0, e0), (a1, e1) in zip(allr, allr[1:]):
        assert e0 <= a1, 'VirtualBox ranges overlap at pfn %#x' % a1
    return out


def vga_rom_pages(rng):
    """VGA BIOS image: 55 AA, size byte, some code-ish bytes; later pages random too."""
    out = {}
    for i in range(VGA_ROM[1]):
        pg = bytearray(rng.getrandbits(8) for _ in range(PAGE))
        if i == 0:
            pg[0:3] = bytes([0x55, 0xAA, VGA_ROM[1] * PAGE // 512])
            pg[3:6] = b'\xe9\x8d\x00'
            pg[0x1E:0x26] = b'IBM\x00VBOX'
        out[VGA_ROM[0] + i] = bytes(pg)
    return out


def write_vbox(path, guest, cpus, fmt, machine, nt_base, kernel_cr3, rng, defect=None):
    """Write the core; returns facts (offsets, PT_LOADs in file order)."""
    rs = ranges(guest)
    n = 1 + len(rs)
    note_off = 64 + 56 * n
    descs = []
    for c in cpus:
        descs.append(dbgfcorecpu(c, fmt, nt_base, rng) if fmt in CPU_SIZE else old_cpumctx(c, kernel_cr3, rng))
    ver, rev = VBOX_VERSION[fmt]
    ncpu = len(cpus)
    magic = VBCORE_MAGIC
    if defect == 'vbox-cpu-count':
        ncpu = len(cpus) + 1                     # VBCORE claims one vCPU more than VBCPU notes
    if defect == 'vbox-bad-magic':
        magic = 0xC01AC0DF
    core = struct.pack('<IIIIII', magic, fmt, 24, ver, rev, ncpu)
    notes = vnote('VBCORE', NT_VBOXCORE, core)
    cpu_note_offs = []
    for d in descs:
        cpu_note_offs.append(note_off + len(notes) + 12 + 8)
        notes += vnote('VBCPU', NT_VBOXCPU, d)
    mem_off = note_off + len(notes)
    eh = b'\x7fELF' + bytes([2, 1, 0, 0]) + bytes(8)          # EI_VERSION left 0 (§2.1)
    eh += struct.pack('<HHIQQQIHHHHHH', ET_CORE, machine, 1, 0, 64, 0, 0, 64, 56, n, 64, 0, 0)
    ph = struct.pack('<IIQQQQQQ', PT_NOTE, PF_R, note_off, 0, 0, len(notes), len(notes), 0)
    loads, off = [], mem_off
    for a, cnt, data, what in rs:
        fs = cnt * PAGE if data else 0
        ph += struct.pack('<IIQQQQQQ', PT_LOAD, PF_R, off, 0, a * PAGE, fs, cnt * PAGE, 0)
        loads.append((a * PAGE, off, fs, cnt * PAGE, what))
        off += fs
    head = eh + ph
    assert len(head) == note_off
    E.write_core(path, head + notes, [(pa, o, fs) for pa, o, fs, _, _ in loads if fs], guest, off)
    return dict(note_off=note_off, note_size=len(notes), mem_off=mem_off, size=off,
                format=hex(fmt), vbcore=dict(magic=hex(magic), format=hex(fmt), cbSelf=24,
                                             version=hex(ver), revision=rev, cCpus=ncpu),
                vbcpu_size=hex(len(descs[0])), vbcpu_desc_offsets=[hex(x) for x in cpu_note_offs],
                loads=[[hex(pa), hex(o), hex(fs), hex(ms), what] for pa, o, fs, ms, what in loads])


# ------------------------------------------------------------------ independent reader
def parse_vbox_notes(buf):
    """[(name, type, desc)] walking with VirtualBox's 8-byte padding (n_namesz without NUL).
    Raises ValueError on a note that does not fit."""
    return [(name, ntype, desc) for name, ntype, desc, _ in E.parse_notes(buf, align=8)]


class VBoxReader:
    """PT_LOADs by p_paddr honouring p_filesz (a page beyond p_filesz is not in the file),
    VBCORE / VBCPU notes, guest mode and CR3 candidates from the registers (§2.1 checks)."""

    def __init__(self, path):
        self.f = open(path, 'rb')
        h = self.f.read(64)
        if h[:4] != b'\x7fELF' or h[4] != 2:
            raise ValueError('not ELF64')
        self.ei_version = h[6]
        (self.type, self.machine, self.e_version, _, phoff, shoff, _, _, phes, phn, _, shn, _) = \
            struct.unpack_from('<HHIQQQIHHHHHH', h, 16)
        self.shnum = shn
        self.f.seek(phoff)
        ph = self.f.read(phes * phn)
        self.loads, self.mmio, self.notes = [], [], []
        for i in range(phn):
            t, fl, off, va, pa, fs, ms, al = struct.unpack_from('<IIQQQQQQ', ph, i * phes)
            if t == PT_LOAD:
                if fs == ms and fs > 0:
                    self.loads.append((pa, off, fs))
                elif fs == 0 and ms > 0:
                    self.mmio.append((pa, ms))
                else:
                    raise ValueError('PT_LOAD %#x: p_filesz %#x of p_memsz %#x' % (pa, fs, ms))
            elif t == PT_NOTE:
                self.note_off, self.note_size = off, fs
                self.f.seek(off)
                self.notes = parse_vbox_notes(self.f.read(fs))
        self.loads.sort()
        for (a, _, s), (b, _, _) in zip(self.loads, self.loads[1:]):
            if a + s > b:
                raise ValueError('PT_LOADs overlap at %#x' % b)

    def read_page(self, pfn):
        pa = pfn * PAGE
        for a, off, fs in self.loads:
            if a <= pa < a + fs:
                self.f.seek(off + pa - a)
                b = self.f.read(PAGE)
                return b + bytes(PAGE - len(b))
        return None

    def nonzero_pfns(self):
        from capture_elf import _data_pages
        out = []
        for a, off, fs in self.loads:
            out += [a // PAGE + i for i in _data_pages(self.f.fileno(), off, fs)]
        return [p for p in out if self.read_page(p).count(0) != PAGE]

    def core(self):
        c = [d for n, t, d in self.notes if n == 'VBCORE' and t == NT_VBOXCORE]
        if not c or len(c[0]) < 24:
            return None
        m, fmt, cb, ver, rev, ncpu = struct.unpack_from('<6I', c[0], 0)
        return dict(magic=m, format=fmt, cbSelf=cb, version=ver, revision=rev, cCpus=ncpu)

    def cpu_states(self):
        """-> (states [(source, cr3, cs selector, gs base)], guest mode | None, why)."""
        core = self.core()
        cpus = [d for n, t, d in self.notes if n == 'VBCPU' and t == NT_VBOXCPU]
        if core is None:
            return [], None, 'no VBCORE note'
        if core['magic'] != VBCORE_MAGIC:
            return [], None, 'VBCORE magic %#x' % core['magic']
        if not 0x00010004 <= core['format'] <= 0x00010006:
            return [], None, 'format %#x: registers not readable' % core['format']
        if core['cbSelf'] != 24:
            return [], None, 'cbSelf %d' % core['cbSelf']
        if core['cCpus'] != len(cpus):
            return [], None, 'cCpus %d but %d VBCPU notes' % (core['cCpus'], len(cpus))
        out, modes = [], set()
        for d in cpus:
            if len(d) < 0x140:
                continue
            cr0, _, cr3, cr4 = struct.unpack_from('<4Q', d, 0x120)
            if cr0 & 0x80000001 != 0x80000001:
                continue
            efer = struct.unpack_from('<Q', d, 0x1E8)[0] if len(d) >= 0x1F0 else 0
            modes.add('x64' if efer & 0x400 else 'x86-pae' if cr4 & 0x20 else 'x86')
            out.append(('vbox-note', cr3, struct.unpack_from('<H', d, 0xA0)[0],
                        struct.unpack_from('<Q', d, 0xF0)[0]))
        mode = modes.pop() if len(modes) == 1 else None
        return out, mode, None
