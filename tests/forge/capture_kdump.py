"""kdump-compressed files as QEMU writes them (vm-captures.md §3.1-§3.4), makedumpfile's
flattened stream (§3.5), and small independent readers for both (used by the checks)."""
import os
import struct
import zlib

from capture_phys import PAGE, ZERO

ZLIB, LZO, SNAPPY, ZSTD = 0x1, 0x2, 0x4, 0x20
DESC = 24
FLAT_CHUNK = 16 * 1024


def _popcount(b):
    return sum(bin(x).count('1') for x in b)


def kdump_segments(guest, notes, note_index, cls64, nr_cpus, machine=b'x86_64'):
    """The kdump file as [(offset, bytes)] (sorted, non-overlapping) + total size + facts.
    cls64 picks the writer's header layout (QEMU: by the ELF class)."""
    bs = PAGE
    max_mapnr = guest.max_pfn()
    sub_size = 104 if cls64 else 80
    S = (sub_size + len(notes) + bs - 1) // bs
    X = ((max_mapnr + 7) // 8 + bs - 1) // bs
    bm = bytearray(X * bs)
    for a, n in guest.blocks:
        for p in range(a, a + n):
            bm[p >> 3] |= 1 << (p & 7)
    bm = bytes(bm)
    pfns = [p for a, n in sorted(guest.blocks) for p in range(a, a + n)]
    desc_off = (1 + S + 2 * X) * bs
    data_off = desc_off + DESC * len(pfns)
    # data area: the shared zero page first, then the non-zero pages in PFN order
    zero_desc = struct.pack('<QIIQ', data_off, bs, 0, 0)
    data = bytearray(ZERO)
    descs = bytearray()
    for p in pfns:
        pg = guest.pages.get(p)
        if pg is None:
            descs += zero_desc
            continue
        c = zlib.compress(pg, 1)
        off = data_off + len(data)
        if len(c) < bs:
            descs += struct.pack('<QIIQ', off, len(c), ZLIB, 0)
            data += c
        else:
            descs += struct.pack('<QIIQ', off, bs, 0, 0)
            data += pg
    total = data_off + len(data)
    # disk_dump_header
    h = bytearray(bs)
    h[0:8] = b'KDUMP   '
    struct.pack_into('<i', h, 8, 6)
    h[12 + 4 * 65:12 + 4 * 65 + len(machine)] = machine           # utsname.machine
    if cls64:
        o = 424                                                     # timestamp (16) at 408 = 0
    else:
        o = 412                                                     # timestamp (8) at 404 = 0
    struct.pack_into('<IiiiIIIIIi', h, o, ZLIB, bs, S, 2 * X, min(max_mapnr, 0xFFFFFFFF),
                     0, 0, 0, 0, nr_cpus)
    # kdump_sub_header + notes
    vmci = [(do, ds) for name, t, do, ds in note_index if name == 'VMCOREINFO']
    note_at = bs + sub_size
    sub = bytearray(sub_size)
    if cls64:
        struct.pack_into('<QiiQQ', sub, 0, 0, 1, 0, 0, 0)
        if vmci:
            struct.pack_into('<QQ', sub, 32, note_at + vmci[0][0], vmci[0][1])
        struct.pack_into('<QQ', sub, 48, note_at, len(notes))
        struct.pack_into('<QQQ', sub, 80, 0, max_mapnr, max_mapnr)
    else:
        struct.pack_into('<IiiII', sub, 0, 0, 1, 0, 0, 0)
        if vmci:
            struct.pack_into('<QI', sub, 20, note_at + vmci[0][0], vmci[0][1])
        struct.pack_into('<QI', sub, 32, note_at, len(notes))
        struct.pack_into('<QQQ', sub, 56, 0, max_mapnr, max_mapnr)
    segs = [(0, bytes(h[:bs])), (bs, bytes(sub) + notes),
            ((1 + S) * bs, bm), ((1 + S + X) * bs, bm),
            (desc_off, bytes(descs)), (data_off, bytes(data))]
    facts = dict(layout='64' if cls64 else '32', block_size=bs, sub_hdr_size=S, bitmap_blocks=2 * X,
                 max_mapnr=max_mapnr, note_offset=note_at, note_size=len(notes),
                 desc_offset=desc_off, data_offset=data_off, pages=len(pfns),
                 nonzero_pages=sum(1 for p in pfns if p in guest.pages), size=total)
    return segs, total, facts


def write_segments(path, segs, total):
    with open(path, 'wb') as f:
        for off, b in segs:
            # skip whole zero pages inside a segment (sparse file)
            for i in range(0, len(b), PAGE):
                chunk = b[i:i + PAGE]
                if chunk.count(0) != len(chunk):
                    f.seek(off + i)
                    f.write(chunk)
        f.truncate(total)


def flat_records(segs, total):
    """(offset, bytes) records as QEMU's flattened writer emits them: 16 KiB chunks; all-zero
    chunks left out except the last one, which fixes the rebuilt file's size."""
    recs = []
    for off, b in segs:
        for i in range(0, len(b), FLAT_CHUNK):
            chunk = b[i:i + FLAT_CHUNK]
            recs.append((off + i, chunk))
    last = max(recs, key=lambda r: r[0] + len(r[1]))
    assert last[0] + len(last[1]) == total
    return [r for r in recs if r is last or r[1].count(0) != len(r[1])]


def flat_header():
    h = bytearray(PAGE)
    h[0:12] = b'makedumpfile'
    struct.pack_into('>qq', h, 16, 1, 1)
    return bytes(h)


def write_flat(path, recs, end=True, lie_last=0):
    with open(path, 'wb') as f:
        f.write(flat_header())
        for i, (off, b) in enumerate(recs):
            size = len(b)
            if lie_last and i == len(recs) - 1:
                size += lie_last                 # flat-past-end: record claims more than the stream has
            f.write(struct.pack('>qq', off, size) + b)
        if end:
            f.write(struct.pack('>qq', -1, -1))


def unflatten(path, out):
    """Rebuild a plain kdump file from a flattened stream (independent of makedumpfile -R)."""
    with open(path, 'rb') as f, open(out, 'wb') as o:
        h = f.read(PAGE)
        if h[:12] != b'makedumpfile' or struct.unpack_from('>qq', h, 16) != (1, 1):
            raise ValueError('not a flattened makedumpfile stream')
        covered = []
        while True:
            r = f.read(16)
            if len(r) < 16:
                raise ValueError('stream ends without the end record')
            off, size = struct.unpack('>qq', r)
            if off == -1 and size == -1:
                break
            if off < 0 or size < 0:
                raise ValueError('bad record (%d, %d)' % (off, size))
            b = f.read(size)
            if len(b) != size:
                raise ValueError('record at 0x%x runs past the end of the stream' % off)
            for a, e in covered:
                if off < e and a < off + size:
                    raise ValueError('record [0x%x,0x%x) overlaps [0x%x,0x%x)' % (off, off + size, a, e))
            covered.append((off, off + size))
            o.seek(off)
            o.write(b)
        o.truncate(max(e for _, e in covered))


class KdumpReader:
    """Independent reader of a kdump-compressed file (either header layout)."""

    def __init__(self, path):
        self.f = open(path, 'rb')
        h = self.f.read(PAGE)
        if h[:8] not in (b'KDUMP   ', b'DISKDUMP'):
            raise ValueError('not kdump')
        self.layout = None
        for lay, o in (('32', 416), ('64', 428)):       # libkdumpfile: 32-bit first, then 64-bit
            bs, S, B, mm = struct.unpack_from('<iiiI', h, o)
            if bs == PAGE and B > 0 and 8 * B * bs // 2 >= mm and 0 < S < 1 << 20:
                self.layout, self.bs, self.S, self.B = lay, bs, S, B
                self.status = struct.unpack_from('<I', h, o - 4)[0]
                self.nr_cpus = struct.unpack_from('<i', h, o + 32)[0]
                break
        if self.layout is None:
            raise ValueError('no plausible disk_dump_header layout')
        self.f.seek(self.bs)
        sub = self.f.read(104)
        if self.layout == '64':
            self.max_mapnr = struct.unpack_from('<Q', sub, 96)[0]
            no, ns = struct.unpack_from('<QQ', sub, 48)
            vo, vs = struct.unpack_from('<QQ', sub, 32)
        else:
            self.max_mapnr = struct.unpack_from('<Q', sub, 72)[0]
            no, ns = struct.unpack_from('<QI', sub, 32)
            vo, vs = struct.unpack_from('<QI', sub, 20)
        self.f.seek(no)
        from capture_elf import parse_notes
        self.notes = parse_notes(self.f.read(ns))
        self.vmcoreinfo = None
        if vo and vs:
            self.f.seek(vo)
            self.vmcoreinfo = self.f.read(vs)
        X = self.B // 2
        self.f.seek((1 + self.S) * self.bs)
        self.bm1 = self.f.read(X * self.bs)
        self.bm2 = self.f.read(X * self.bs)
        self.desc_off = (1 + self.S + self.B) * self.bs
        # rank table per 4096-bit chunk
        self.rank = [0]
        for i in range(0, len(self.bm2), 512):
            self.rank.append(self.rank[-1] + _popcount(self.bm2[i:i + 512]))

    def nonzero_pfns(self):
        out = []
        X = len(self.bm2)
        r = 0
        self.f.seek(self.desc_off)
        descs = self.f.read(DESC * self.rank[-1])
        zero_off = None
        seen = {}                                # compressed bytes -> is a zero page
        for i in range(X):
            byte = self.bm2[i]
            if not byte:
                continue
            for b in range(8):
                if byte >> b & 1:
                    off, size, flags, _ = struct.unpack_from('<QIIQ', descs, DESC * r)
                    r += 1
                    if off == zero_off:
                        continue
                    p = i * 8 + b
                    self.f.seek(off)
                    raw = self.f.read(size)
                    z = seen.get(raw)
                    if z is None:
                        z = seen[raw] = (zlib.decompress(raw) if flags & ZLIB else raw) == ZERO
                    if not z:
                        out.append(p)
                    elif not flags:
                        zero_off = off           # the shared zero page (QEMU layout)
        return out

    def ram(self, pfn):
        return pfn < self.max_mapnr and self.bm1[pfn >> 3] >> (pfn & 7) & 1

    def read_page(self, pfn):
        if pfn >= self.max_mapnr or not self.bm2[pfn >> 3] >> (pfn & 7) & 1:
            return None
        c = pfn // 4096
        r = self.rank[c] + _popcount(self.bm2[c * 512:pfn >> 3]) + \
            bin(self.bm2[pfn >> 3] & ((1 << (pfn & 7)) - 1)).count('1')
        self.f.seek(self.desc_off + DESC * r)
        off, size, flags, _ = struct.unpack('<QIIQ', self.f.read(DESC))
        self.f.seek(off)
        b = self.f.read(size)
        if flags & ZLIB:
            return zlib.decompress(b)
        if flags:
            raise ValueError('page %x: compression 0x%x not handled here' % (pfn, flags))
        return b
