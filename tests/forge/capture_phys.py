"""Physical memory of a forged type-1 MEMORY.DMP, as a hypervisor would see it.

Written from /work/shared/spec/dump-format.md §1.2-§1.4, §2.2 (header, PhysicalMemoryBlock,
run-based body) and vm-captures.md §2 (QEMU RAM blocks), §7.1 (CR3 sources: self-map, low stub).

Guest = a dict {pfn: 4096-byte page} of the *non-zero* pages only (zero pages cost nothing),
the Windows RAM runs from the header, and QEMU-like RAM blocks that cover them.
"""
import os
import random
import struct

PAGE = 0x1000
ZERO = bytes(PAGE)
FILLER = 0x45474150          # 'PAGE'


class DumpError(Exception):
    pass


def _u32(b, o):
    return struct.unpack_from('<I', b, o)[0]


def _u64(b, o):
    return struct.unpack_from('<Q', b, o)[0]


class SourceDump:
    """Header + run list + sparse page reader of a type-1 (run-based) dump (§1.4, §2.2)."""

    def __init__(self, path):
        self.path = path
        with open(path, 'rb') as f:
            hdr = f.read(0x2000)
        if len(hdr) < 0x1000 or hdr[:4] != b'PAGE':
            raise DumpError('%s: not a Windows crash dump' % path)
        if hdr[4:8] == b'DU64':
            self.bits, self.hsize = 64, 0x2000
            if len(hdr) < 0x2000:
                raise DumpError('truncated 64-bit header')
            self.dtb = _u64(hdr, 0x10)
            self.machine = _u32(hdr, 0x30)
            self.processors = _u32(hdr, 0x34)
            self.kdbg = _u64(hdr, 0x80)
            self.dump_type = _u32(hdr, 0xF98)
            self.pae = None
            nruns = _u32(hdr, 0x88)
            if nruns > 43:
                raise DumpError('NumberOfRuns %d' % nruns)
            self.runs = [(_u64(hdr, 0x98 + 16 * i), _u64(hdr, 0xA0 + 16 * i)) for i in range(nruns)]
        elif hdr[4:8] == b'DUMP':
            self.bits, self.hsize = 32, 0x1000
            self.dtb = _u32(hdr, 0x10)
            self.machine = _u32(hdr, 0x20)
            self.processors = _u32(hdr, 0x24)
            self.kdbg = _u32(hdr, 0x60)
            self.dump_type = _u32(hdr, 0xF88)
            self.pae = bool(hdr[0x5C])
            nruns = _u32(hdr, 0x64)
            if nruns > 86:
                raise DumpError('NumberOfRuns %d' % nruns)
            self.runs = [(_u32(hdr, 0x6C + 8 * i), _u32(hdr, 0x70 + 8 * i)) for i in range(nruns)]
        else:
            raise DumpError('%s: bad ValidDump' % path)
        if self.dump_type != 1:
            raise DumpError('%s: DumpType %d; capture.py needs a type-1 (run-based) dump'
                            % (path, self.dump_type))
        self.header = hdr[:self.hsize]
        if self.bits == 64:
            self.arch = 'x64' if self.machine == 0x8664 else 'arm64'
        else:
            self.arch = 'x86-pae' if self.pae else 'x86'
        if self.arch == 'arm64':
            raise DumpError('arm64 guests are not QEMU x86 captures')
        self.file_size = os.path.getsize(path)
        need = self.hsize + PAGE * sum(n for _, n in self.runs)
        if self.file_size < need:
            raise DumpError('%s: body truncated (%d < %d)' % (path, self.file_size, need))

    def nonzero_pages(self):
        """{pfn: page} for every non-zero page of the runs; holes skipped with SEEK_DATA."""
        pages = {}
        fd = os.open(self.path, os.O_RDONLY)
        try:
            off = self.hsize
            for base, count in self.runs:
                start, end = off, off + count * PAGE
                pos = start
                while pos < end:
                    try:
                        d = os.lseek(fd, pos, os.SEEK_DATA)
                    except OSError:
                        break                       # no data after pos
                    if d >= end:
                        break
                    h = os.lseek(fd, d, os.SEEK_HOLE)
                    a = start + (d - start) // PAGE * PAGE
                    b = min(end, h)
                    os.lseek(fd, a, os.SEEK_SET)
                    buf = os.read(fd, b - a)
                    for i in range(0, len(buf), PAGE):
                        pg = buf[i:i + PAGE]
                        if len(pg) == PAGE and pg != ZERO:
                            pages[base + (a - start + i) // PAGE] = pg
                    pos = max(b, a + PAGE)
                off = end
        finally:
            os.close(fd)
        return pages


def qemu_blocks(runs, bios=True):
    """QEMU-like RAM blocks (vm-captures §2): [0,0xA0000), [0xC0000, top below 4 GiB),
    the BIOS ROM just below 4 GiB, [4 GiB, top). Every Windows run page lies in a block;
    pages Windows never uses (page 0, firmware holes, 0xC0-0xFF, ROM) are in them too."""
    G4 = 0x100000
    low_end = max((b + n for b, n in runs if b < G4), default=0x100)
    low_end = min(max(low_end, 0x100), G4)
    hi = [(b, n) for b, n in runs if b + n > G4]
    blocks = [[0, 0xA0], [0xC0, low_end]]
    if any(b < 0xC0 and b + n > 0xA0 for b, n in runs):     # Windows uses the VGA window: merge
        blocks = [[0, low_end]]
    if bios and low_end <= G4 - 0x40:
        blocks.append([G4 - 0x40, G4])                       # 256 KiB pc.bios
    if hi:
        blocks.append([G4, max(b + n for b, n in hi)])
    return [(a, b - a) for a, b in blocks if b > a]


def in_blocks(blocks, pfn):
    return any(a <= pfn < a + n for a, n in blocks)


class Guest:
    """Mutable guest memory: sparse pages + runs + blocks + the kernel's CR3."""

    def __init__(self, src, seed, bios=True, blocks=None, reserved=()):
        """blocks: the capture's own page ranges [(pfn, n)] (default: QEMU's RAM blocks);
        reserved: pfns the capture fills itself (never handed out as spare pages)."""
        self.src = src
        self.arch = src.arch
        self.bits = src.bits
        self.pages = src.nonzero_pages()
        self.runs = list(src.runs)
        self.blocks = qemu_blocks(self.runs, bios) if blocks is None else list(blocks)
        self.rng = random.Random(0xCA97 ^ seed)
        if self.arch == 'x64':
            self.cr3 = src.dtb                              # may carry PCID bits
            self.root = src.dtb & 0x000FFFFFFFFFF000
        elif self.arch == 'x86-pae':
            self.cr3 = src.dtb & 0xFFFFFFE0
            self.root = self.cr3
        else:
            self.cr3 = src.dtb & 0xFFFFF000
            self.root = self.cr3
        ram = set()
        for b, n in self.runs:
            ram.update(range(b, b + n))
        # pages QEMU has but Windows never uses: where the capture puts its own structures
        reserved = set(reserved)
        self.spare = [p for a, n in self.blocks for p in range(a, a + n)
                      if p not in ram and p not in self.pages and 0 < p < 0x100000
                      and not (0xFFFC0 <= p < 0x100000) and p not in reserved]
        self.added = {}                                     # what the capture added, for the truth

    def take_spare(self, below=None, above=None):
        for i, p in enumerate(self.spare):
            if (below is None or p < below) and (above is None or p >= above):
                return self.spare.pop(i)
        raise RuntimeError('no spare non-RAM page left in the QEMU blocks')

    # --- raw access
    def read(self, pa, n):
        out = bytearray()
        while n > 0:
            pfn, po = divmod(pa, PAGE)
            k = min(PAGE - po, n)
            pg = self.pages.get(pfn)
            out += pg[po:po + k] if pg is not None else bytes(k)
            pa += k
            n -= k
        return bytes(out)

    def write(self, pa, buf):
        off = 0
        while off < len(buf):
            pfn, po = divmod(pa + off, PAGE)
            k = min(PAGE - po, len(buf) - off)
            pg = bytearray(self.pages.get(pfn, ZERO))
            pg[po:po + k] = buf[off:off + k]
            if bytes(pg) == ZERO:
                self.pages.pop(pfn, None)
            else:
                self.pages[pfn] = bytes(pg)
            off += k

    def q(self, pa):
        return struct.unpack('<Q', self.read(pa, 8))[0]

    def d(self, pa):
        return struct.unpack('<I', self.read(pa, 4))[0]

    def wq(self, pa, v):
        self.write(pa, struct.pack('<Q', v))

    def wd(self, pa, v):
        self.write(pa, struct.pack('<I', v))

    def page_of(self, pfn):
        return self.pages.get(pfn, ZERO)

    def is_present(self, pfn):
        return in_blocks(self.blocks, pfn)

    def max_pfn(self):
        return max(a + n for a, n in self.blocks)

    # --- kernel translation (hardware semantics; enough to check the capture's own additions)
    def vtop(self, va, root=None):
        # One hardware walker for the capture forge (capture_cr3.vtop); a Guest
        # reads through the same q()/d() interface.
        import capture_cr3
        return capture_cr3.vtop(self, self.arch, self.root if root is None else root, va)

    # --- CR3 sources an analyzer may use without the header (vm-captures §7.1)
    def add_self_map(self, build, avoid_vas=()):
        """The self-referencing top-level entry every Windows kernel has (§7.1 item 4)."""
        if self.arch == 'x64':
            def slot(va):
                return (va >> 39) & 0x1FF
            used = {slot(v) for v in avoid_vas}
            free = [i for i in range(0x100, 0x200)
                    if self.q(self.root + 8 * i) == 0 and i not in used]
            if build < 14393 and 0x1ED in free:
                idx = 0x1ED                                  # fixed index before Win10 1607
            else:
                idx = self.rng.choice(free)
            self.wq(self.root + 8 * idx, self.root | 0x63)
            va = 0xFFFF000000000000 | (idx << 39)
            self.added['self_map'] = {'level': 'pml4', 'index': idx, 'table': hex(self.root),
                                      'pte_base': hex(va)}
        elif self.arch == 'x86':
            if self.d(self.root + 4 * 0x300) != 0:
                raise RuntimeError('PD[0x300] already used')
            self.wd(self.root + 4 * 0x300, self.root | 0x63)
            self.added['self_map'] = {'level': 'pd', 'index': 0x300, 'table': hex(self.root),
                                      'pte_base': '0xc0000000'}
        else:
            pds = []
            for i in range(4):
                e = self.q(self.root + 8 * i)
                if not e & 1:
                    pfn = self.take_spare(below=0x100000)
                    self.wq(self.root + 8 * i, pfn * PAGE | 1)
                    e = pfn * PAGE | 1
                pds.append(e & 0x000FFFFFFFFFF000)
            for i in range(4):
                if self.q(pds[3] + 8 * i) != 0:
                    raise RuntimeError('PD3[%d] already used' % i)
            for i in range(4):
                self.wq(pds[3] + 8 * i, pds[i] | 0x63)
            self.added['self_map'] = {'level': 'pae-pd3', 'index': 3, 'table': hex(pds[3]),
                                      'pds': [hex(p) for p in pds], 'pte_base': '0xc0000000'}

    def add_low_stub(self, nt_base):
        """x64 PROCESSOR_START_BLOCK in the first MiB (§7.1 item 3), in a page Windows does
        not list as RAM (so the MEMORY.DMP has no trace of it)."""
        if self.arch != 'x64':
            raise RuntimeError('the low stub is an x64 structure')
        pfn = self.take_spare(below=0xA0)
        pa = pfn * PAGE
        jmp = 0x00000001000600E9 | (0x2B << 8)          # E9 2B 06 00 | CompletionFlag 1
        self.wq(pa, jmp)
        self.wq(pa + 0x70, (nt_base + 0x1000 + 0x240) & ~3)     # LmTarget: a kernel entry
        self.wq(pa + 0xA0, self.root)                    # CR3, PCID bits clear
        self.wq(pa + 0xA8, 0x350EF8)                     # CR4 (PAE|PGE|OSFXSR...), LA57 clear
        self.added['low_stub'] = {'pa': hex(pa), 'cr3': hex(self.root)}

    def add_user_cr3(self, k):
        """A user-mode process's page tables (KVA-shadow style: maps user code, no kernel).
        Returns the CR3 value."""
        code_va = 0x00007FF600000000 + 0x10000 * (k + 1) if self.arch == 'x64' else 0x00400000 + 0x10000 * k
        code = self.take_spare()
        self.write(code * PAGE, (b'\x48\x83\xec\x28\xe8\x00\x00\x00\x00\xcc' * 409)[:PAGE])
        if self.arch == 'x64':
            t = [self.take_spare() for _ in range(4)]
            for lv, sh in enumerate((39, 30, 21)):
                self.wq(t[lv] * PAGE + ((code_va >> sh) & 0x1FF) * 8, t[lv + 1] * PAGE | 0x67)
            self.wq(t[3] * PAGE + ((code_va >> 12) & 0x1FF) * 8, code * PAGE | 0x25)
            cr3 = t[0] * PAGE | ((k + 1) & 0xFFF if self.cr3 & 0xFFF else 0)     # PCID like the kernel's
            root = t[0] * PAGE
        elif self.arch == 'x86-pae':
            t = [self.take_spare(below=0x100000) for _ in range(3)]
            root = t[0] * PAGE + 0x20 * (1 + k % 100)
            self.wq(root + ((code_va >> 30) & 3) * 8, t[1] * PAGE | 1)
            self.wq(t[1] * PAGE + ((code_va >> 21) & 0x1FF) * 8, t[2] * PAGE | 0x67)
            self.wq(t[2] * PAGE + ((code_va >> 12) & 0x1FF) * 8, code * PAGE | 0x25)
            cr3 = root
        else:
            t = [self.take_spare(below=0x100000) for _ in range(2)]
            root = t[0] * PAGE
            self.wd(root + ((code_va >> 22) & 0x3FF) * 4, t[1] * PAGE | 0x67)
            self.wd(t[1] * PAGE + ((code_va >> 12) & 0x3FF) * 4, code * PAGE | 0x25)
            cr3 = root
        assert self.vtop(code_va, root) == code * PAGE
        return cr3, code_va

    def scramble_tables(self):
        """no-cr3 defect: the kernel's top-level table no longer translates anything."""
        if self.arch == 'x86-pae':
            junk = bytes(self.rng.randrange(256) & 0xFE for _ in range(32))
            self.write(self.root, junk)                      # 4 PDPTEs, none present
            return
        size = PAGE
        junk = bytearray(self.rng.getrandbits(8) for _ in range(size))
        esz = 8 if self.arch == 'x64' else 4
        for i in range(0, size, esz):
            junk[i] &= 0xFE                                  # present bit clear everywhere
        self.write(self.root, bytes(junk))
