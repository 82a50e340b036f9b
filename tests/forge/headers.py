"""Main dump header (dump-format §1.2/§1.3) and bodies per DumpType (§2.2-§2.6)."""
import struct

PAGE = 0x1000
FILL = b'PAGE'


class Out:
    """Sparse file image: (offset, bytes) chunks + logical size."""
    def __init__(self):
        self.chunks = []
        self.size = 0

    def put(self, off, data, force=False):
        data = bytes(data)
        self.chunks.append((off, data, force))
        self.size = max(self.size, off + len(data))

    def write(self, path, size=None):
        size = self.size if size is None else size
        with open(path, 'wb') as f:
            for off, data, force in sorted(self.chunks, key=lambda c: c[0]):
                if off >= size:
                    continue
                data = data[:size - off]
                if not force and not any(data):
                    continue
                f.seek(off)
                f.write(data)
            f.truncate(size)


def header(m, h):
    """h: dict of header values (already chosen). Returns bytearray."""
    if m.bits == 64:
        b = bytearray(FILL * (0x2000 // 4))
        struct.pack_into('<4s4sII', b, 0, b'PAGE', b'DU64', h['major'], h['minor'])
        struct.pack_into('<QQQQII', b, 0x10, h['dtb'], h['pfn_database'], h['ps_loaded_module_list'],
                         h['ps_active_process_head'], h['machine'], h['processors'])
        struct.pack_into('<II4Q', b, 0x38, h['bugcheck_code'], 0, *h['bugcheck_params'])
        struct.pack_into('<Q', b, 0x80, h['kdbg'])
        if h.get('runs') is not None:
            runs = h['runs']
            b[0x88:0x348] = bytes(0x2C0)
            struct.pack_into('<IIQ', b, 0x88, len(runs), 0, sum(n for _, n in runs))
            for i, (base, n) in enumerate(runs):
                struct.pack_into('<QQ', b, 0x98 + 16 * i, base, n)
        # CONTEXT (x64: ContextFlags +0x30, SegCs +0x38, Rsp +0x98, Rip +0xF8)
        b[0x348:0x348 + 0x4D0] = bytes(0x4D0)
        struct.pack_into('<I', b, 0x348 + 0x30, 0x10001F)
        struct.pack_into('<H', b, 0x348 + 0x38, 0x10)
        struct.pack_into('<Q', b, 0x348 + 0x98, h['sp'])
        struct.pack_into('<Q', b, 0x348 + 0xF8, h['ip'])
        b[0xF00:0xF98] = bytes(0x98)
        struct.pack_into('<IIQQI', b, 0xF00, 0x80000003, 0, 0, h['ip'], 0)
        struct.pack_into('<I', b, 0xF98, h['dump_type'])
        struct.pack_into('<I', b, 0xF9C, 0)
        struct.pack_into('<qQ', b, 0xFA0, h['required_dump_space'], h['system_time'])
        if h.get('comment') is not None:
            b[0xFB0:0x1030] = h['comment'].encode().ljust(128, b'\0')
        struct.pack_into('<q', b, 0x1030, h['system_uptime'])
        struct.pack_into('<IIII', b, 0x1038, h['mini_dump_fields'], 0, h['product_type'], h['suite_mask'])
        if h.get('writer_status') is not None:
            struct.pack_into('<I', b, 0x1048, h['writer_status'])
        struct.pack_into('<B', b, 0x104D, h.get('kd_secondary', 0))
        if h.get('attributes') is not None:
            struct.pack_into('<I', b, 0x1050, h['attributes'])
        if h.get('boot_id') is not None:
            struct.pack_into('<I', b, 0x1054, h['boot_id'])
        return b
    b = bytearray(FILL * (0x1000 // 4))
    struct.pack_into('<4s4sII', b, 0, b'PAGE', b'DUMP', h['major'], h['minor'])
    struct.pack_into('<IIIIII', b, 0x10, h['dtb'], h['pfn_database'], h['ps_loaded_module_list'],
                     h['ps_active_process_head'], h['machine'], h['processors'])
    struct.pack_into('<I4I', b, 0x28, h['bugcheck_code'], *h['bugcheck_params'])
    struct.pack_into('<BBH', b, 0x5C, 1 if h['pae'] else 0, 0, 0)
    struct.pack_into('<I', b, 0x60, h['kdbg'])
    if h.get('runs') is not None:
        runs = h['runs']
        b[0x64:0x320] = bytes(700)
        struct.pack_into('<II', b, 0x64, len(runs), sum(n for _, n in runs))
        for i, (base, n) in enumerate(runs):
            struct.pack_into('<II', b, 0x6C + 8 * i, base, n)
    # x86 CONTEXT: ContextFlags +0, Eip +0xB8, SegCs +0xBC, EFlags +0xC0, Esp +0xC4
    b[0x320:0x320 + 0x2CC] = bytes(0x2CC)
    struct.pack_into('<I', b, 0x320, 0x1003F)
    struct.pack_into('<IIII', b, 0x320 + 0xB8, h['ip'], 8, 0x10282, h['sp'])
    b[0x7D0:0x820] = bytes(0x50)
    struct.pack_into('<IIIII', b, 0x7D0, 0x80000003, 0, 0, h['ip'], 0)
    if h.get('comment') is not None:
        b[0x820:0x8A0] = h['comment'].encode().ljust(128, b'\0')
    if h.get('attributes') is not None:
        struct.pack_into('<I', b, 0x8A0, h['attributes'])
    if h.get('boot_id') is not None:
        struct.pack_into('<I', b, 0x8A4, h['boot_id'])
    struct.pack_into('<II', b, 0xF88, h['dump_type'], h['mini_dump_fields'])
    struct.pack_into('<III', b, 0xF94, h['product_type'], h['suite_mask'],
                     h['writer_status'] if h.get('writer_status') is not None else 0x45474150)
    struct.pack_into('<q', b, 0xFA0, h['required_dump_space'])
    struct.pack_into('<qQ', b, 0xFB8, h['system_uptime'], h['system_time'])
    return b


def extents_of(pfns, file_off):
    """Sorted pfn list laid out back to back from file_off -> merged extents."""
    ext = []
    for p in pfns:
        if ext and ext[-1][0] + ext[-1][1] == p:
            ext[-1][1] += 1
        else:
            ext.append([p, 1, file_off])
        file_off += PAGE
    return ext


def ranges_of(pfns):
    out = []
    for p in pfns:
        if out and out[-1][0] + out[-1][1] == p:
            out[-1][1] += 1
        else:
            out.append([p, 1])
    return out


def body(m, dump_type, present, hdr_size, legacy=False, sig=None):
    """Returns (Out with body structures, extents, expected total size, runs for header).
    present: sorted, merged [first_pfn, count] ranges stored in the file."""
    out = Out()
    if dump_type == 1:                                   # §2.2
        runs = m.phys.runs
        ext = []
        off = hdr_size
        for b, n in runs:
            ext.append([b, n, off])
            off += n * PAGE
        return out, ext, off, runs
    npages = sum(n for _, n in present)
    if dump_type in (2, 5, 6):
        nbits = m.phys.max_pfn
        bm = bytearray((nbits + 7) // 8)
        for b, n in present:
            set_bits(bm, b, n)
        sig = sig or (b'FDMP' if dump_type == 5 else b'SDMP')
        if legacy:                                       # §2.4
            hdr = 0x20 if m.bits == 32 else 0x28
            first = (hdr_size + hdr + len(bm) + PAGE - 1) & ~(PAGE - 1)
            if m.bits == 32:
                h = struct.pack('<4s4sIIIIII', sig, b'DUMP', 1, first, nbits, npages, nbits, 0)
            else:
                h = struct.pack('<4s4sIIIIIIQ', sig, b'DUMP', 1, first, nbits, npages, nbits, 0, 0)
        else:                                            # §2.3
            first = (hdr_size + 0x38 + len(bm) + PAGE - 1) & ~(PAGE - 1)
            opts = 1 if dump_type != 5 else 0
            h = struct.pack('<4s4sIIQQQQQ', sig, b'DUMP', opts, 0, 0, 0, first, npages, nbits)
        out.put(hdr_size, h + bm)
        m.bitmap_info = {'header_size': first, 'pages': npages, 'bitmap_size': nbits,
                         'bitmap_offset': hdr_size + len(h)}
        ext, off = [], first
        for b, n in present:
            ext.append([b, n, off])
            off += n * PAGE
        return out, ext, off, None
    if dump_type in (8, 9, 10):                          # §2.5
        rngs = present
        meta = 0x10 + 16 * len(rngs)
        first = 0x2020 + meta
        h = struct.pack('<I4s4sIQQ', 0x40, b'RDMP', b'DUMP', 0, meta, first)
        if dump_type == 10:
            h += struct.pack('<IHHQ', len(rngs), 0, 0, npages)
        else:
            h += struct.pack('<QQ', 0, 0)
        for b, n in rngs:
            h += struct.pack('<QQ', b, n)
        out.put(0x2000, h)
        m.rdmp_info = {'metadata_size': meta, 'first_page_offset': first, 'ranges': len(rngs)}
        ext = []
        off = first
        for b, n in rngs:
            ext.append([b, n, off])
            off += n * PAGE
        return out, ext, off, None
    raise ValueError(dump_type)


def set_bits(bm, b, n):
    """bit p of byte p>>3 (LSB first) for p in [b, b+n) (§2.3)."""
    e = b + n
    while b < e and b & 7:
        bm[b >> 3] |= 1 << (b & 7)
        b += 1
    full = (e - b) // 8
    bm[b >> 3:(b >> 3) + full] = b'\xff' * full
    b += full * 8
    while b < e:
        bm[b >> 3] |= 1 << (b & 7)
        b += 1


def put_pages(m, out, ext):
    """Copy the content pages into the file at their extents."""
    data = m.phys.data
    for first, n, off in ext:
        if n < len(data):
            for p in range(first, first + n):
                if p in data:
                    out.put(off + (p - first) * PAGE, data[p])
        else:
            for p in data:
                if first <= p < first + n:
                    out.put(off + (p - first) * PAGE, data[p])
