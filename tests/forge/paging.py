"""Physical memory model and page tables (dump-format.md §4.1-§4.4).

Phys: RAM runs + a sparse page store (only written pages hold bytes).
PageTables: builds real x86 non-PAE / PAE / x64 4-level tables inside Phys and
keeps an oracle of what every mapped VA must translate to.
"""
import struct

PAGE = 0x1000


class Phys:
    def __init__(self, rng, phys_mb, arch):
        self.rng = rng
        self.arch = arch
        self.data = {}          # pfn -> bytearray(4096), only pages with content
        self.used = set()       # pfns handed out by alloc()
        self.runs = self._layout(phys_mb)
        self.max_pfn = max(b + n for b, n in self.runs)  # exclusive
        self.total = sum(n for _, n in self.runs)

    def _layout(self, phys_mb):
        """RAM runs with realistic holes: PFN 0 and 0x9f-0xff missing, a PCI
        hole below 4 GiB when RAM > 3 GiB, and a small firmware hole."""
        pages = phys_mb * 256
        runs = [(1, 0x9e)]
        left = pages - 0x9f
        base = 0x100
        # small firmware-reserved hole somewhere in the first RAM chunk
        first = min(left, 0xC0000 - base)
        cut = 0x100 + (self.rng.randrange(0x400, max(0x401, first // 2)) if first > 0x1000 else first)
        cut = min(cut, base + first)
        runs.append((base, cut - base))
        left -= cut - base
        base = cut + self.rng.randrange(1, 16)        # hole of 1..15 pages
        first = min(left, 0xC0000 - base) if base < 0xC0000 else 0
        if first > 0:
            runs.append((base, first))
            left -= first
        if left > 0 and self.arch == 'x86':             # non-PAE: RAM must stay below 4 GiB
            runs.append((0xC0010, min(left, 0x3FFE0)))
        elif left > 0:                                 # above the 3..4 GiB hole
            runs.append((0x100000, left))
        return [(b, n) for b, n in runs if n > 0]

    def in_ram(self, pfn):
        return any(b <= pfn < b + n for b, n in self.runs)

    def alloc(self, count=1, align=1, limit_pfn=None):
        """Random free RAM pfn (contiguous count pages, aligned)."""
        lim = min(self.max_pfn, limit_pfn or self.max_pfn)
        for _ in range(100000):
            b, n = self.rng.choice(self.runs)
            if b >= lim:
                continue
            hi = min(b + n, lim) - count
            if hi < b:
                continue
            p = self.rng.randrange(b, hi + 1)
            p -= p % align
            if p < b:
                continue
            rng_ = range(p, p + count)
            if any(q in self.used for q in rng_):
                continue
            self.used.update(rng_)
            return p
        raise RuntimeError("out of physical memory for %d pages" % count)

    def page(self, pfn):
        pg = self.data.get(pfn)
        if pg is None:
            pg = self.data[pfn] = bytearray(PAGE)
        return pg

    def write(self, pa, buf):
        off = 0
        while off < len(buf):
            pfn, po = divmod(pa + off, PAGE)
            n = min(PAGE - po, len(buf) - off)
            self.page(pfn)[po:po + n] = buf[off:off + n]
            off += n

    def read(self, pa, n):
        out = bytearray()
        while n > 0:
            pfn, po = divmod(pa, PAGE)
            k = min(PAGE - po, n)
            pg = self.data.get(pfn)
            out += pg[po:po + k] if pg is not None else bytes(k)
            pa += k
            n -= k
        return bytes(out)


# Mode descriptions: list of (shift, index_bits) from the root down; entry size.
MODES = {
    'x86':     dict(levels=[(22, 10), (12, 10)], esz=4, large={22: '4m'}),
    'x86-pae': dict(levels=[(30, 2), (21, 9), (12, 9)], esz=8, large={21: '2m'}),
    'x64':     dict(levels=[(39, 9), (30, 9), (21, 9), (12, 9)], esz=8, large={30: '1g', 21: '2m'}),
}

V = 0x1          # Valid / Present
KFLAGS = 0x63    # P | RW | A | D   (§4.1)
PS = 0x80
G = 0x100
WRITE_SW = 0x800  # bit 11 "Write" in a *valid* Windows PTE (§4.3) - must not be taken as Transition
NX = 1 << 63


class PageTables:
    def __init__(self, phys, arch, rng):
        self.phys, self.arch, self.rng = phys, arch, rng
        m = MODES['x64' if arch == 'arm64' else arch]
        self.levels, self.esz, self.large = m['levels'], m['esz'], m['large']
        self.limit = 0x100000 if arch == 'x86' else None    # non-PAE: tables below 4 GiB
        root_pfn = phys.alloc(limit_pfn=0x100000 if arch.startswith("x86") else None)  # CR3 is 32-bit on x86
        if arch == 'x86-pae':
            # PDPT is 32 bytes, 32-byte aligned, not page aligned (§1.2)
            self.root = root_pfn * PAGE + 0x20 * self.rng.randrange(1, 128)
        else:
            self.root = root_pfn * PAGE
        self.oracle = {}   # va page -> (kind, pa of page or None)
        self.large_maps = []  # (va, size, pa, kind)
        self.tables = {}   # (level, va prefix) -> table pa

    def va_mask(self):
        return (1 << 48) - 1 if self.esz == 8 and len(self.levels) == 4 else 0xFFFFFFFF

    def idx(self, va, level):
        shift, bits = self.levels[level]
        return (va >> shift) & ((1 << bits) - 1)

    def entry_pa(self, table_pa, va, level):
        return table_pa + self.idx(va, level) * self.esz

    def rd(self, pa):
        return struct.unpack('<I' if self.esz == 4 else '<Q', self.phys.read(pa, self.esz))[0]

    def wr(self, pa, val):
        self.phys.write(pa, struct.pack('<I' if self.esz == 4 else '<Q', val))

    def inter_flags(self, level):
        if self.arch == 'x86-pae' and level == 0:
            return V                         # PAE PDPTE: only P (other low bits reserved)
        return KFLAGS

    def table_for(self, va, level, absent_ok=False):
        """Physical address of the table at `level` covering va, creating tables."""
        t = self.root
        for lv in range(level):
            e_pa = self.entry_pa(t, va, lv)
            e = self.rd(e_pa)
            if e & V:
                if (e & PS) and lv > 0:
                    raise ValueError('large page in the way at %x' % va)
                t = e & 0x000FFFFFFFFFF000 if self.esz == 8 else e & 0xFFFFF000
            else:
                if e != 0 and not absent_ok:
                    raise ValueError('software entry in the way at %x' % va)
                pfn = self.phys.alloc(limit_pfn=self.limit)
                self.wr(e_pa, pfn * PAGE | self.inter_flags(lv))
                t = pfn * PAGE
        return t

    def map4k(self, va, pfn, flags=KFLAGS | G, kind='valid'):
        last = len(self.levels) - 1
        t = self.table_for(va, last)
        self.wr(self.entry_pa(t, va, last), pfn * PAGE | flags)
        self.oracle[va & ~0xFFF] = (kind, pfn * PAGE)

    def map_large(self, va, pa, shift):
        lv = [s for s, _ in self.levels].index(shift)
        t = self.table_for(va, lv)
        self.wr(self.entry_pa(t, va, lv), pa | KFLAGS | PS | G)
        self.large_maps.append((va, 1 << shift, pa, 'large-' + self.large[shift]))

    def set_leaf(self, va, raw, kind, pa=None):
        """Final PTE with an arbitrary (software) value."""
        last = len(self.levels) - 1
        t = self.table_for(va, last)
        self.wr(self.entry_pa(t, va, last), raw)
        self.oracle[va & ~0xFFF] = (kind, pa)

    def set_entry(self, va, level, raw):
        t = self.table_for(va, level)
        self.wr(self.entry_pa(t, va, level), raw)

    def pte_addr(self, va):
        last = len(self.levels) - 1
        return self.entry_pa(self.table_for(va, last), va, last)

    # Windows software PTE encodings (§4.3)
    def transition(self, pfn, swizzle_bit=None):
        e = (pfn << 12) | 0x800 | (4 << 5)          # Transition=1, Protection=READWRITE
        if swizzle_bit:
            e |= 1 << swizzle_bit                   # bit 4 (SwizzleBit) stays 0 -> must be unswizzled
        return e

    def pagefile(self, high, low=1):
        if self.esz == 4:
            return ((high & 0xFFFFF) << 12) | ((low & 0xF) << 1) | (4 << 5)
        if self.arch in ('x64', 'arm64'):
            return (high << 32) | ((low & 0xF) << 12) | (4 << 5) | 0x10   # SwizzleBit set = not swizzled
        return (high << 32) | ((low & 0xF) << 1) | (4 << 5)

    def lookup(self, va):
        """Oracle translation of a VA: (kind, pa or None) or None if never mapped."""
        e = self.oracle.get(va & ~0xFFF)
        if e is not None:
            return (e[0], None if e[1] is None else e[1] + (va & 0xFFF))
        for lva, size, pa, kind in self.large_maps:
            if lva <= va < lva + size:
                return (kind, pa + va - lva)
        return None
