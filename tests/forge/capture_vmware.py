"""VMware suspend / snapshot captures, written from /work/shared/spec/vm-captures.md §4.1 only:
NAME.vmem (guest RAM, region-compacted) + NAME.vmss / NAME.vmsn (state file: header, group
table, tags), or a state file carrying the RAM inline in a `Memory` block. Plus an independent
reader of the state file (tag walk with bound checks, region table, `cpu` group) used by the
checks.

State file: u32 magic | u32 version | u32 groups | 80-byte group entries {char name[64],
u64 offset, u64 size} | each group's tags, ended by a u16 0.
Tag: u16 head (bits 0-5 value size, 6-7 number of indices, 8-15 name length) | name |
u32 indices | value (size 0..61 inline; 63 block / 62 compressed block: u64 size in file,
u64 size in memory, u16 pad length, pad, data).
"""
import os
import struct
import zlib

from capture_phys import PAGE, ZERO

MAGICS = {'bed2': 0xBED2BED2, 'bad1': 0xBAD1BAD1, 'bed3': 0xBED3BED3}
VERSION_WORD = 8                 # crash prints it as "version"; nobody else reads it [forge's value]
BLOCK, CBLOCK = 63, 62
G4 = 0x100000                    # pfn of 4 GiB


# ------------------------------------------------------------------ tags
def tag(name, indices=(), value=None, size=None):
    """An inline tag: value int of `size` bytes, or bytes (size = len)."""
    nb = name.encode()
    if isinstance(value, (bytes, bytearray)):
        v = bytes(value)
    else:
        v = int(value).to_bytes(size, 'little')
    assert len(v) <= 61 and len(indices) <= 3 and len(nb) <= 255
    head = len(v) | len(indices) << 6 | len(nb) << 8
    return struct.pack('<H', head) + nb + b''.join(struct.pack('<I', i) for i in indices) + v


def block_tag(name, indices, data, pos, align=8, pad=None, compressed=False, mem_size=None,
              file_size=None):
    """A block tag (value size 63, or 62 when compressed) placed at file offset `pos`:
    the pad makes the data start `align`-aligned in the file (pad may be given).
    file_size: the size in the file when `data` is written separately (data = b'').
    Returns (bytes, offset of the data inside the returned bytes)."""
    nb = name.encode()
    head = (CBLOCK if compressed else BLOCK) | len(indices) << 6 | len(nb) << 8
    pre = struct.pack('<H', head) + nb + b''.join(struct.pack('<I', i) for i in indices)
    fixed = len(pre) + 8 + 8 + 2
    if pad is None:
        pad = -(pos + fixed) % align
    fsz = len(data) if file_size is None else file_size
    out = pre + struct.pack('<QQH', fsz, fsz if mem_size is None else mem_size, pad)
    out += bytes(pad)
    return out + data, len(out)


END = struct.pack('<H', 0)


# ------------------------------------------------------------------ layout
def regions(runs, layout):
    """VMware regions [(ppn, pagenum, size)] for the guest's RAM (Windows runs):
    'one'   one region [0, top below 4 GiB) (+ [4 GiB, top) continuing where it ends);
    'hole'  the .vmem also leaves out pfns 0xA0-0xFF (VGA window + option ROMs):
            [0, 0xA0) and [0x100, top below 4 GiB) (+ above 4 GiB);
    'none'  no region table: the .vmem is flat (offset = physical address)."""
    low_end = max((b + n for b, n in runs if b < G4), default=0x100)
    low_end = min(max(low_end, 0x100), G4)
    hi = max((b + n for b, n in runs if b + n > G4), default=None)
    if layout == 'none':
        return []
    parts = [(0, low_end)] if layout == 'one' else [(0, 0xA0), (0x100, low_end)]
    if hi:
        parts.append((G4, hi))
    out, page = [], 0
    for a, e in parts:
        out.append((a, page, e - a))
        page += e - a
    return out


def flat_blocks(runs):
    low_end = max((b + n for b, n in runs if b < G4), default=0x100)
    hi = max((b + n for b, n in runs if b + n > G4), default=None)
    return [(0, max(low_end, 0x100))] + ([(G4, hi - G4)] if hi else [])


def guest_blocks(runs, layout):
    """The guest pfn ranges the capture holds."""
    if layout == 'none':
        return flat_blocks(runs)
    return [(p, n) for p, _, n in regions(runs, layout)]


def vmem_size(regs, runs):
    if not regs:
        b = flat_blocks(runs)
        return (b[-1][0] + b[-1][1]) * PAGE
    return sum(n for _, _, n in regs) * PAGE


# ------------------------------------------------------------------ groups
def checkpoint_group(ram_mb, ncpu):
    return (tag('version', (), 8, 4) + tag('memSize', (), ram_mb, 4) + tag('numVCPUs', (), ncpu, 4)
            + tag('checkpointName', (), b'forge\0'))


def mksvmx_group(pos):
    png = b'\x89PNG\r\n\x1a\n' + struct.pack('>I', 13) + b'IHDR' + struct.pack('>IIBBBBB', 64, 48, 8, 2, 0, 0, 0) \
        + b'\x00' * 4 + struct.pack('>I', 0) + b'IEND\xaeB`\x82'
    b, _ = block_tag('imageData', (), png, pos, align=1, pad=0)
    return b + tag('imageSize', (), len(png), 4)


def svga_group():
    return tag('vramSize', (), 16 << 20, 4) + tag('svga.guestBackedPrimary', (), 1, 1)


def cpu_group(cpus, pos, cr_inline=False):
    """cpu:numVCPUs, then per vCPU rip/rsp/eflags, S/S.limit/S.ar/S.base64 [cpu][seg],
    DR64 (a 72-byte block shaped like CR64), CR64 (block of 72 bytes, CR3 at data+24; or
    CR64[cpu][n] inline u64), IDTR (inline 10 bytes), GDTR."""
    out = bytearray(tag('cpu:numVCPUs', (), len(cpus), 4))
    cr_data_offs = []
    for c in cpus:
        i = c.index
        out += tag('rip', (i,), c.rip, 8) + tag('rsp', (i,), c.rsp, 8) + tag('eflags', (i,), c.rflags, 4)
        # seg 0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS, 6 LDTR, 7 TR
        sels = [c.ds, c.cs, c.ss, c.ds, c.fs, c.gs, 0, 0x40 if c.arch == 'x64' else 0x28]
        bases = [0, 0, 0, 0, c.fs_base, c.gs_base, 0, c.kpcr + 0x100 if c.kpcr else 0]
        for s in range(8):
            out += tag('S', (i, s), sels[s], 4)
        for s in range(8):
            out += tag('S.limit', (i, s), 0x67 if s == 7 else 0 if s == 6 else 0xFFFFFFFF, 4)
        for s in range(8):
            out += tag('S.base64', (i, s), bases[s], 8)
        dr = struct.pack('<9Q', 0, 0, 0, 0, 0, 0, 0xFFFF0FF0, 0x400, 0)
        b, _ = block_tag('DR64', (i,), dr, pos + len(out))
        out += b
        crs = [c.cr0, 0, c.cr2, c.cr3, c.cr4, 0, 0, 0, 0]            # cr0 ... cr8
        if cr_inline:
            for n in range(5):
                if n == 3:
                    cr_data_offs.append(pos + len(out) + 2 + 4 + 8)
                out += tag('CR64', (i, n), crs[n], 8)
        else:
            b, do = block_tag('CR64', (i,), struct.pack('<9Q', *crs), pos + len(out))
            cr_data_offs.append(pos + len(out) + do + 24)
            out += b
        out += tag('IDTR', (i,), struct.pack('<HQ', 0xFFF if c.arch == 'x64' else 0x7FF, c.idt))
        out += tag('GDTR', (i,), struct.pack('<HQ', 0x6F if c.arch == 'x64' else 0x3FF, c.gdt))
    return bytes(out), cr_data_offs


def memory_group_tags(regs, value_bytes, defect=None):
    """The memory group's small tags (before an inline Memory block)."""
    t = bytearray(tag('align_mask', (), 0xFFFF, 4))
    rc = len(regs) + (1 if defect == 'vmss-region-outside' else 0)
    if regs or defect in ('vmss-bad-tag', 'vmss-region-outside'):
        rct = bytearray(tag('regionsCount', (), rc, value_bytes))
        if defect == 'vmss-bad-tag':
            rct[1] = 0xFF                    # name length 255: runs past the end of the group
        t += rct
    for i, (ppn, page, n) in enumerate(regs):
        t += tag('regionPPN', (i,), ppn, value_bytes)
        t += tag('regionPageNum', (i,), page, value_bytes)
        t += tag('regionSize', (i,), n, value_bytes)
    return t


# ------------------------------------------------------------------ writers
def write_state(path, magic, groups_spec):
    """groups_spec: [(name, builder(pos) -> bytes | [(offset in group, bytes)])] in table
    order (= file order). Returns {name: (offset, size)}."""
    n = len(groups_spec)
    pos = 12 + 80 * n
    table, where = bytearray(), {}
    chunks = []
    for name, build in groups_spec:
        data = build(pos)
        if not isinstance(data, (list, tuple)):
            data = [(0, data)]
        size = max(o + len(b) for o, b in data)
        where[name] = (pos, size)
        nm = name.encode()
        table += nm + bytes(64 - len(nm)) + struct.pack('<QQ', pos, size)
        chunks += [(pos + o, b) for o, b in data]
        pos += size
    with open(path, 'wb') as f:
        f.write(struct.pack('<III', magic, VERSION_WORD, n) + table)
        for off, b in chunks:
            # skip whole zero pages of large chunks (inline RAM): sparse file
            if len(b) > 4 * PAGE:
                for i in range(0, len(b), PAGE):
                    c = b[i:i + PAGE]
                    if c.count(0) != len(c):
                        f.seek(off + i)
                        f.write(c)
            else:
                f.seek(off)
                f.write(b)
        f.truncate(pos)
    return where


class SparseRam:
    """The RAM image (regions concatenated) as sparse {image page: bytes}, for inline blocks."""

    def __init__(self, guest, regs):
        self.pages = {}
        for ppn, page, n in regs:
            for p in guest.pages:
                if ppn <= p < ppn + n:
                    self.pages[page + p - ppn] = guest.pages[p]
        self.npages = sum(n for _, _, n in regs)


def write_vmem(path, guest, regs):
    size = vmem_size(regs, guest.runs)
    with open(path, 'wb') as f:
        for p in sorted(guest.pages):
            if regs:
                r = [(ppn, page) for ppn, page, n in regs if ppn <= p < ppn + n]
                if not r:
                    continue
                off = (r[0][1] + p - r[0][0]) * PAGE
            else:
                off = p * PAGE
                if off >= size:
                    continue
            f.seek(off)
            f.write(guest.pages[p])
        f.truncate(size)
    return size


def build_state(path, guest, cpus, regs, magic, value_bytes=4, cr_inline=False, inline=False,
                defect=None, ram_mb=0, compress_mem=False):
    """Write the state file; returns facts."""
    facts = {}
    ncpu = len(cpus)
    spec = [('Checkpoint', lambda pos: checkpoint_group(ram_mb, ncpu) + END),
            ('MKSVMX', lambda pos: mksvmx_group(pos) + END)]

    def mem(pos):
        small = memory_group_tags(regs, value_bytes, defect)
        if defect == 'vmss-region-outside':
            i = len(regs)
            end_page = sum(n for _, _, n in regs)
            small += tag('regionPPN', (i,), G4 + 0x40000, value_bytes)
            small += tag('regionPageNum', (i,), end_page + 0x100, value_bytes)
            small += tag('regionSize', (i,), 0x100, value_bytes)
            facts['bad_region'] = dict(index=i, ppn=hex(G4 + 0x40000), pagenum=hex(end_page + 0x100),
                                       size=0x100, vmem_pages=end_page)
        if not inline:
            if defect == 'vmss-bad-tag':
                # the group ends within 255 bytes of the damaged tag's name start
                bad = small.index(b'regionsCount') - 2
                facts['bad_tag'] = dict(group_offset=hex(pos), tag_offset=hex(pos + bad), name_length=255,
                                        group_size=len(small) + 2)
                assert bad + 2 + 255 > len(small) + 2
            return small + END
        ram = SparseRam(guest, regs or [(0, 0, vmem_size([], guest.runs) // PAGE)])
        msize = ram.npages * PAGE
        if compress_mem:
            # how VMware compresses a block is unknown (§4.1 UNCERTAIN): the forge uses zlib
            z = zlib.compressobj(1)
            data = b''.join(z.compress(ram.pages.get(i, ZERO)) for i in range(ram.npages)) + z.flush()
            hdr, do = block_tag('Memory', (0, 0), data, pos + len(small), align=PAGE, compressed=True,
                                mem_size=msize)
            hdr = hdr[:do]
            body = [(len(small) + do, data)]
            fsize = len(data)
        else:
            # the whole RAM image, written page by page (zero pages left as holes)
            hdr, do = block_tag('Memory', (0, 0), b'', pos + len(small), align=PAGE, file_size=msize)
            body = [(len(small) + do + p * PAGE, pg) for p, pg in sorted(ram.pages.items())]
            fsize = msize
        facts['memory_block'] = dict(tag_offset=hex(pos + len(small)), data_offset=hex(pos + len(small) + do),
                                     size_in_file=fsize, size_in_memory=msize, compressed=compress_mem)
        facts['inline_data_off'] = pos + len(small) + do
        end = len(small) + do + fsize
        return [(0, small + hdr)] + body + [(end, END)]

    spec.append(('memory', mem))
    if defect != 'vmss-no-cpu':
        def cpu(pos):
            b, offs = cpu_group(cpus, pos, cr_inline)
            facts['cr3_offsets'] = [hex(o) for o in offs]
            return b + END
        spec.append(('cpu', cpu))
    spec.append(('SVGA', lambda pos: svga_group() + END))
    where = write_state(path, magic, spec)
    facts['groups'] = {k: [hex(o), s] for k, (o, s) in where.items()}
    facts['group_order'] = [k for k, _ in spec]
    facts['magic'] = hex(magic)
    facts['state_size'] = os.path.getsize(path)
    return facts


# ------------------------------------------------------------------ independent reader
class StateError(ValueError):
    pass


class StateFile:
    """Reads a .vmss/.vmsn: header, group table, tag walks (bounded by group and file),
    region table, cpu states. Raises StateError where §4.1's checks fail."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, 'rb')
        self.size = os.path.getsize(path)
        h = self.f.read(12)
        if len(h) < 12:
            raise StateError('short header')
        self.magic, self.version, n = struct.unpack('<III', h)
        if self.magic not in (0xBED2BED2, 0xBED3BED3, 0xBAD1BAD1, 0xBAD2BAD2, 0xBED1BED1, 0xBED2BED0,
                              0xBED0BED0):
            raise StateError('magic %#x' % self.magic)
        self.old = self.magic & 0xF == 0
        if not 1 <= n <= 512:
            raise StateError('%d groups' % n)
        tb = self.f.read(80 * n)
        self.groups = {}
        for i in range(n):
            nm = tb[80 * i:80 * i + 64]
            name = nm.split(b'\0')[0]
            if not name or any(not 0x20 <= c < 0x7F for c in name) or nm.find(b'\0') < 0:
                raise StateError('group %d: bad name' % i)
            off, sz = struct.unpack_from('<QQ', tb, 80 * i + 64)
            if off >= self.size:
                raise StateError('group %s offset %#x past the file' % (name, off))
            self.groups[name.decode()] = (off, sz)

    def tags(self, group):
        """[(name, indices, value: int|bytes|None,
             block: (data_off, size_file, size_mem, compressed, pad_length)|None)]
        Reads the tag headers only (block data is skipped by offset), never past the group's
        end or the file's."""
        off, sz = self.groups[group]
        end = min(off + sz, self.size)
        f = self.f

        def need(o, n, what):
            if o + n > end:
                raise StateError('group %s: %s at %#x runs past the group (ends %#x)' % (group, what, o, end))
            f.seek(o)
            return f.read(n)
        out, o = [], off
        while True:
            if o + 2 > end:
                raise StateError('group %s: tag walk reaches the group end at %#x without the 0 tag'
                                 % (group, o))
            head = struct.unpack('<H', need(o, 2, 'tag head'))[0]
            if head == 0:
                return out
            vs, ni, nl = head & 0x3F, head >> 6 & 3, head >> 8
            p = o + 2
            b = need(p, nl + 4 * ni, 'tag (name length %d)' % nl)
            name = b[:nl].decode('latin-1')
            idx = struct.unpack_from('<%dI' % ni, b, nl) if ni else ()
            p += nl + 4 * ni
            if vs in (BLOCK, CBLOCK):
                if self.old:
                    fsz, msz = struct.unpack('<II', need(p, 8, 'block sizes of %s' % name))
                    p += 8
                else:
                    fsz, msz = struct.unpack('<QQ', need(p, 16, 'block sizes of %s' % name))
                    p += 16
                padl = struct.unpack('<H', need(p, 2, 'block pad of %s' % name))[0]
                p += 2 + padl
                if p + fsz > end:
                    raise StateError('group %s: block %s runs past the group' % (group, name))
                out.append((name, idx, None, (p, fsz, msz, vs == CBLOCK, padl)))
                p += fsz
            else:
                v = need(p, vs, 'value of %s' % name)
                out.append((name, idx, int.from_bytes(v, 'little') if vs <= 8 else v, None))
                p += vs
            o = p

    def read_block(self, blk, n=None):
        self.f.seek(blk[0])
        return self.f.read(blk[1] if n is None else n)

    def regions(self):
        """-> (regions [(ppn, pagenum, size)], memory block or None). Empty list: flat."""
        if 'memory' not in self.groups:
            raise StateError('no memory group')
        t = {(n, i): (v, b) for n, i, v, b in self.tags('memory')}
        mem = t.get(('Memory', (0, 0)), (None, None))[1]
        cnt = t.get(('regionsCount', ()), (0, None))[0] or 0
        regs = []
        for i in range(cnt):
            try:
                regs.append((t[('regionPPN', (i,))][0], t[('regionPageNum', (i,))][0],
                             t[('regionSize', (i,))][0]))
            except KeyError:
                raise StateError('region %d incomplete' % i)
        return regs, mem

    def cpu_states(self):
        """[(source, cr3, cs selector, gs base)] from the cpu group (block or indexed CR64)."""
        if 'cpu' not in self.groups:
            return []
        t = {(n, i): (v, b) for n, i, v, b in self.tags('cpu')}
        ncpu = t.get(('cpu:numVCPUs', ()), (0, None))[0]
        out = []
        for c in range(ncpu):
            cr3 = None
            v, blk = t.get(('CR64', (c,)), (None, None))
            if blk and not blk[3] and blk[1] == 72:
                cr3 = struct.unpack('<Q', self.read_block(blk)[24:32])[0]
            elif ('CR64', (c, 3)) in t:
                cr3 = t[('CR64', (c, 3))][0]
            if cr3 is None:
                continue
            cs = t.get(('S', (c, 1)), (None,))[0]
            gs = t.get(('S.base64', (c, 5)), (None,))[0]
            out.append(('vmware-state', cr3, cs if cs is not None else 0xFFFF, gs or 0))
        return out


def check_regions(regs, image_pages):
    for ppn, page, n in regs:
        if page + n > image_pages:
            raise StateError('region %#x+%#x past the image (%#x pages)' % (page, n, image_pages))
    s = sorted(regs)
    for a, b in zip(s, s[1:]):
        if a[0] + a[2] > b[0]:
            raise StateError('regions overlap at ppn %#x' % b[0])


class VmwareReader:
    """Guest-physical reader of a VMware capture: `path` is the .vmem or the state file.
    Falls back to a flat .vmem (warning) when the state file is missing or fails the checks."""

    def __init__(self, path):
        self.warnings = []
        self.state = None
        base, ext = os.path.splitext(path)
        if ext.lower() == '.vmem':
            self.vmem = path
            for e in ('.vmss', '.vmsn'):
                if os.path.exists(base + e):
                    self.state_path = base + e
                    break
            else:
                self.state_path = None
        else:
            self.state_path = path
            self.vmem = base + '.vmem' if os.path.exists(base + '.vmem') else None
        self.regs, self.mem, self.states = [], None, []
        if self.state_path:
            try:
                st = StateFile(self.state_path)
                regs, mem = st.regions()
                if mem and mem[3]:
                    raise NotImplementedError('compressed Memory block')
                img = (mem[1] if mem else os.path.getsize(self.vmem)) // PAGE
                check_regions(regs, img)
                self.states = st.cpu_states()
                self.state, self.regs, self.mem = st, regs, mem
            except StateError as x:
                if not self.vmem:
                    raise
                self.warnings.append('state file %s: %s: .vmem read flat' % (self.state_path, x))
        else:
            self.warnings.append('no state file: .vmem read flat')
        if self.mem:
            self.img, self.img_off = open(self.state_path, 'rb'), self.mem[0]
            self.img_size = self.mem[1]
        else:
            self.img, self.img_off = open(self.vmem, 'rb'), 0
            self.img_size = os.path.getsize(self.vmem)

    def file_off(self, pfn):
        if not self.regs:
            return pfn * PAGE if pfn * PAGE < self.img_size else None
        for ppn, page, n in self.regs:
            if ppn <= pfn < ppn + n:
                return self.img_off + (page + pfn - ppn) * PAGE
        return None

    def read_page(self, pfn):
        o = self.file_off(pfn)
        if o is None:
            return None
        self.img.seek(o)
        return self.img.read(PAGE)

    def extents(self):
        if not self.regs:
            return [(0, self.img_size // PAGE, self.img_off)]
        return [(ppn, n, self.img_off + page * PAGE) for ppn, page, n in sorted(self.regs)]

    def nonzero_pfns(self):
        from capture_elf import _data_pages
        out = []
        for pfn, n, off in self.extents():
            out += [pfn + i for i in _data_pages(self.img.fileno(), off, n * PAGE)]
        return [p for p in out if (self.read_page(p) or bytes(PAGE)).count(0) != PAGE]
