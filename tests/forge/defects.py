"""Defective variants of a good dump (--defect NAME).
pre(): memory-level defects, applied before the body is laid out.
apply(): file-level defects; returns (expect, raw_bytes_or_None).
expect = {exit: main-job exit code, exit_ok: acceptable codes, kind: text,
          null_sections: [...]}  (cli-contract.md exit codes)."""
import gzip
import io
import struct
import zipfile
import zlib

PAGE = 0x1000

FILE_DEFECTS = ['truncated-header', 'truncated-body', 'bad-signature', 'mdmp', 'hiberfil',
                'gzip', 'zip', 'cab', 'runs-overflow', 'runs-beyond-file', 'overlapping-runs',
                'bitmap-too-big', 'bitmap-popcount-mismatch', 'rdmp-bad-metadata', 'empty-file']
MEM_DEFECTS = ['module-cycle', 'module-ptr-absent', 'kdbg-bad-tag']
POOL_DEFECTS = ['pool-tracker-absent', 'pool-bad-size', 'bigpool-garbage']
NAMES = FILE_DEFECTS + MEM_DEFECTS + POOL_DEFECTS

NEEDS = {'runs-overflow': (1,), 'runs-beyond-file': (1,), 'overlapping-runs': (1,),
         'bitmap-too-big': (2, 5, 6), 'bitmap-popcount-mismatch': (2, 5, 6),
         'rdmp-bad-metadata': (8, 9, 10), 'truncated-body': (1, 2, 5, 6, 8, 9, 10),
         'module-cycle': (1, 2, 5, 6, 8, 9, 10), 'module-ptr-absent': (1, 2, 5, 6, 8, 9, 10),
         'kdbg-bad-tag': (1, 2, 5, 6, 8, 9, 10)}


def E(code, kind, ok=None, null=None):
    d = {'exit': code, 'exit_ok': ok or [code], 'kind': kind}
    if null:
        d['null_sections'] = null
    return d


def check_type(name, dtype):
    if name in NEEDS and dtype not in NEEDS[name]:
        raise SystemExit('forge: defect %s needs dump type %s' % (name, NEEDS[name]))


def pre(name, m, scen, ctx):
    """Memory-level defects (before pages are copied into the file)."""
    psz = m.psz
    if name == 'module-cycle':
        ents = m.ldr_entries
        k = len(ents) - 2
        j = 1
        m.vw(ents[k], m.P(ents[j]))               # Flink of entry k loops back mid-list
        ctx['modules_override_n'] = k + 1
        ctx['mem_expect'] = dict(E(1, 'module list loops back (entry %d -> %d)' % (k, j), [1]),
                                 partial_sections=['modules'])
    elif name == 'module-ptr-absent':
        ents = m.ldr_entries
        k = len(ents) // 2
        m.vw(ents[k], m.P(m.hole_va + 0x40))      # Flink into a page-table page absent from the dump
        ctx['modules_override_n'] = k + 1
        ctx['mem_expect'] = dict(E(1, 'module list Flink into an absent page', [1]),
                                 partial_sections=['modules'])
    elif name == 'kdbg-bad-tag':
        m.kdbg_bytes[0x10:0x14] = b'KDBX'
        ctx['kdbg_bad'] = True
        ctx['mem_expect'] = E(1, 'KDBG OwnerTag wrong: no KDBG; pool/vm unavailable', [1],
                              ['vm', 'pool', 'bigpool'])


def apply(name, ctx, expect):
    m, h, rng, dtype = ctx['m'], ctx['h'], ctx['rng'], ctx['dtype']
    hs = ctx['hdr_size']
    check_type(name, dtype)
    if name in ctx.get('mem_expect_names', ()):
        pass
    if ctx.get('mem_expect'):
        return ctx['mem_expect'], None
    if name == 'empty-file':
        return E(3, 'empty file'), b''
    if name == 'truncated-header':
        ctx['file_size'] = rng.randrange(0x40, hs)
        return E(3, 'file ends inside the %#x-byte header at %#x' % (hs, ctx['file_size'])), None
    if name == 'truncated-body':
        ext = ctx['ext']
        first = min(o for _, _, o in ext)
        cut = first + (ctx['total'] - first) // 2 + rng.randrange(1, PAGE)
        ctx['file_size'] = cut
        if rng.random() < 0.5:
            h['attributes'] = (h.get('attributes') or 0) | 4     # InsufficientDumpfileSize
        return E(1, 'file truncated at %#x inside the page data' % cut, [0, 1]), None
    if name == 'bad-signature':
        def post(path):
            with open(path, 'r+b') as f:
                f.seek(4)
                f.write(b'DUMX' if m.bits == 32 else b'DX64')
        ctx['post'] = post
        return E(3, 'ValidDump signature corrupt'), None
    if name == 'mdmp':
        b = bytearray(0x400)
        struct.pack_into('<4sIIIIII', b, 0, b'MDMP', 0xA793, 3, 0x20, 0, 0x5f000000, 0)
        return E(4, 'user-mode minidump (MDMP)'), bytes(b)
    if name == 'hiberfil':
        b = bytearray(0x3000)
        b[0:4] = b'HIBR' if rng.random() < 0.5 else b'hibr'
        struct.pack_into('<I', b, 8, 0x1000)
        return E(4, 'hibernation file'), bytes(b)
    if name in ('gzip', 'zip', 'cab'):
        def post(path, kind=name):
            data = open(path, 'rb').read()
            if kind == 'gzip':
                z = gzip.compress(data, 6, mtime=0)
            elif kind == 'zip':
                bio = io.BytesIO()
                with zipfile.ZipFile(bio, 'w', zipfile.ZIP_DEFLATED) as zf:
                    zi = zipfile.ZipInfo('MEMORY.DMP', (2024, 1, 1, 0, 0, 0))
                    zi.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(zi, data)
                z = bio.getvalue()
            else:
                z = make_cab('MEMORY.DMP', data)
            open(path, 'wb').write(z)
        ctx['post'] = post
        ctx['wrapper'] = name
        return dict(expect, exit=4, exit_ok=[4] + expect['exit_ok'],
                    kind='%s-wrapped dump (exit 4 until supported, then as the inner dump: %s)'
                    % (name, expect['exit_ok'])), None
    if name == 'runs-overflow':
        off = 0x88 if m.bits == 64 else 0x64
        bad = 44 if m.bits == 64 else 87
        ctx['post'] = _patch(off, struct.pack('<I', bad))
        return E(3, 'NumberOfRuns %d exceeds the header slots' % bad), None
    if name == 'runs-beyond-file':
        runs = list(h['runs'])
        b, n = runs[-1]
        runs[-1] = (b, n + 0x100000)
        h['runs'] = runs
        return E(0, 'last run extends past EOF (pages absent)', [0, 1]), None
    if name == 'overlapping-runs':
        runs = list(h['runs'])
        b, n = runs[1]
        dup = (b + 4, 16)
        h['runs'] = runs + [dup]
        off = ctx['total']
        for i in range(16):
            ctx['out'].put(off + i * PAGE, b'DUPL' * (PAGE // 4))
        ctx['total'] = off + 16 * PAGE
        h['required_dump_space'] = ctx['total']
        return E(0, 'a run duplicates PFNs %#x..%#x (keep the first copy)' % (dup[0], dup[0] + 15),
                 [0, 1, 3]), None
    if name == 'bitmap-too-big':
        bi = m.bitmap_info
        off = hs + (0x30 if not ctx['legacy'] else 0x10)
        big = ctx['total'] * 8 * 64
        ctx['post'] = _patch(off, struct.pack('<Q' if not ctx['legacy'] else '<I', big))
        return E(3, 'BitmapSize %d bits runs past EOF' % big), None
    if name == 'bitmap-popcount-mismatch':
        off = hs + (0x28 if not ctx['legacy'] else 0x14)
        n = m.bitmap_info['pages'] + rng.randrange(1, 50)
        ctx['post'] = _patch(off, struct.pack('<Q' if not ctx['legacy'] else '<I', n))
        return E(3, 'Pages %d != popcount(bitmap)' % n), None
    if name == 'rdmp-bad-metadata':
        ctx['post'] = _patch(0x2018, struct.pack('<Q', m.rdmp_info['first_page_offset'] + 0x1000))
        return E(3, 'FirstPageOffset != 0x2020 + MetadataSize'), None
    if name in POOL_DEFECTS:
        return expect, None
    raise SystemExit('forge: unknown defect %s' % name)


def _patch(off, data):
    def post(path):
        with open(path, 'r+b') as f:
            f.seek(off)
            f.write(data)
    return post


def make_cab(name, data):
    """MS-CAB with one MSZIP folder ([MS-CAB]; dump-format §6): CFDATA = 'CK' + raw deflate,
    at most 32 KiB uncompressed per block (each block compressed independently)."""
    blocks = []
    for i in range(0, len(data), 0x8000):
        chunk = data[i:i + 0x8000]
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        comp = b'CK' + c.compress(chunk) + c.flush()
        blocks.append((comp, len(chunk)))
    hdr_len = 36
    folder_len = 8
    fname = name.encode() + b'\0'
    file_len = 16 + len(fname)
    data_off = hdr_len + folder_len + file_len
    total = data_off + sum(8 + len(c) for c, _ in blocks)
    out = bytearray()
    out += struct.pack('<4sIIIIIBBHHHHH', b'MSCF', 0, total, 0, hdr_len + folder_len, 0, 3, 1,
                       1, 1, 0, 0x1234, 0)
    out += struct.pack('<IHH', data_off, len(blocks), 1)           # CFFOLDER, typeCompress 1 = MSZIP
    out += struct.pack('<IIHHHH', len(data), 0, 0, 0x5821, 0, 0x20) + fname
    for c, n in blocks:
        out += struct.pack('<IHH', 0, len(c), n) + c
    return bytes(out)
