#!/usr/bin/env python3
"""Independent re-reader of forge output: parses the dump file from scratch
(no forge module imported) and checks it against the truth JSON.
usage: selfcheck.py DUMP TRUTH   |   selfcheck.py --matrix DIR"""
import json
import os
import struct
import sys

PAGE = 0x1000


class Dump:
    def __init__(self, path):
        self.f = open(path, 'rb')
        self.size = os.fstat(self.f.fileno()).st_size
        h = self.f.read(0x2000)
        self.h = h
        self.bits = 64 if h[4:8] == b'DU64' else 32
        u32 = lambda o: struct.unpack_from('<I', h, o)[0]
        u64 = lambda o: struct.unpack_from('<Q', h, o)[0]
        if self.bits == 64:
            self.dtb = u64(0x10) & 0x000FFFFFFFFFF000
            self.kdbg = u64(0x80)
            self.dtype = u32(0xF98)
            self.hsz = 0x2000
            self.pae = None
            self.psl = u64(0x20)
        else:
            self.pae = h[0x5C] == 1
            self.dtb = u32(0x10) & (0xFFFFFFE0 if self.pae else 0xFFFFF000)
            self.kdbg = u32(0x60)
            self.dtype = u32(0xF88)
            self.hsz = 0x1000
            self.psl = u32(0x18)
        self.ext = self._extents()
        self.hdr_kdbg = self.kdbg
        self.kdbg_plain = None

    def kdbg_read(self, n):
        if self.kdbg_plain is not None:
            return self.kdbg_plain[:n] if n <= len(self.kdbg_plain) else self.kdbg_plain + bytes(n - len(self.kdbg_plain))
        return self.rva(self.kdbg, n)

    def _extents(self):
        h, t = self.h, self.dtype
        ext = []
        if t == 1:
            if self.bits == 64:
                n = struct.unpack_from('<I', h, 0x88)[0]
                runs = [struct.unpack_from('<QQ', h, 0x98 + 16 * i) for i in range(n)]
            else:
                n = struct.unpack_from('<I', h, 0x64)[0]
                runs = [struct.unpack_from('<II', h, 0x6C + 8 * i) for i in range(n)]
            off = self.hsz
            for b, c in runs:
                ext.append([b, c, off])
                off += c * PAGE
        elif t in (2, 5, 6):
            self.f.seek(self.hsz)
            sh = self.f.read(0x38)
            if struct.unpack_from('<Q', sh, 0x20)[0] % PAGE == 0 and struct.unpack_from('<Q', sh, 0x20)[0] > 0:
                first, pages, nbits = struct.unpack_from('<QQQ', sh, 0x20)
                boff = self.hsz + 0x38
            else:                                           # legacy §2.4
                first, nbits, pages = struct.unpack_from('<III', sh, 0x0C)
                boff = self.hsz + (0x20 if self.bits == 32 else 0x28)
            self.f.seek(boff)
            bm = self.f.read((nbits + 7) // 8)
            off = first
            cnt = 0
            for byte_i, byte in enumerate(bm):
                if not byte:
                    continue
                for j in range(8):
                    if byte >> j & 1:
                        p = byte_i * 8 + j
                        if p >= nbits:
                            break
                        if ext and ext[-1][0] + ext[-1][1] == p:
                            ext[-1][1] += 1
                        else:
                            ext.append([p, 1, first + cnt * PAGE])
                        cnt += 1
            assert cnt == pages, 'popcount %d != Pages %d' % (cnt, pages)
        elif t in (8, 9, 10):
            self.f.seek(0x2000)
            r = self.f.read(0x30)
            marker, sig, _, _, meta, first = struct.unpack_from('<I4s4sIQQ', r)
            assert sig == b'RDMP' and first == 0x2020 + meta
            n = (meta - 0x10) // 16
            self.f.seek(0x2030)
            off = first
            for i in range(n):
                b, c = struct.unpack('<QQ', self.f.read(16))
                ext.append([b, c, off])
                off += c * PAGE
        out = []
        for p, n, o in ext:
            if o >= self.size:
                continue
            n = min(n, (self.size - o) // PAGE)
            if n:
                out.append([p, n, o])
        return sorted(out)

    def page_off(self, pfn):
        for p, n, o in self.ext:
            if p <= pfn < p + n:
                return o + (pfn - p) * PAGE
        return None

    def rpa(self, pa, n):
        o = self.page_off(pa >> 12)
        if o is None:
            return None
        self.f.seek(o + (pa & 0xFFF))
        return self.f.read(n)

    def entry(self, pa, esz):
        b = self.rpa(pa, esz)
        if b is None:
            return None
        return struct.unpack('<Q' if esz == 8 else '<I', b)[0]

    def walk(self, va):
        """-> (kind, pa) with kind as in the truth file."""
        if self.bits == 64:
            levels = [(39, 9), (30, 9), (21, 9), (12, 9)]
            esz, pmask = 8, 0x000FFFFFFFFFF000
            large = {30: 'large-1g', 21: 'large-2m'}
        elif self.pae:
            levels = [(30, 2), (21, 9), (12, 9)]
            esz, pmask = 8, 0x000FFFFFFFFFF000
            large = {21: 'large-2m'}
        else:
            levels = [(22, 10), (12, 10)]
            esz, pmask = 4, 0xFFFFF000
            large = {22: 'large-4m'}
        t = self.dtb
        via_transition = False
        for i, (shift, bits) in enumerate(levels):
            e = self.entry(t + ((va >> shift) & ((1 << bits) - 1)) * esz, esz)
            if e is None:
                return ('absent-table', None)
            last = i == len(levels) - 1
            if e & 1:
                if not last and shift in large and e & 0x80:
                    base = e & pmask & ~((1 << shift) - 1)
                    return (large[shift], base + (va & ((1 << shift) - 1)))
                t = e & pmask
                if last:
                    return ('valid', t + (va & 0xFFF))
                continue
            if e == 0:
                return ('not-present', None)
            if e & 0x800 and not e & 0x400:          # transition
                pfn_pa = e & pmask
                if self.bits == 64 and not e & 0x10:
                    # unswizzle: clear bit 45 when the PFN is beyond the dump
                    if pfn_pa >> 45 & 1:
                        pfn_pa &= ~(1 << 45)
                if last:
                    return ('transition', pfn_pa + (va & 0xFFF))
                t = pfn_pa
                via_transition = True
                continue
            if e & 0x400:
                if not last:
                    return ('prototype', None)
                # dump-format §4.4 step 3: read the prototype PTE through the kernel DTB
                if self.bits == 64:
                    field = e >> 16
                    if field & 0xFFFFFFFFFFFF == 0xFFFFFFFF0000:
                        return ('prototype', None)
                    pva = field - (1 << 48) if field >> 47 & 1 else field
                    pva &= (1 << 64) - 1
                else:
                    pva = e >> 32
                    if pva == 0xFFFFFFFF:
                        return ('prototype', None)
                kind2, ppa = self.walk(pva)
                raw = None if ppa is None else self.rpa(ppa, 8)
                if raw is None:
                    return ('prototype', None)
                p = struct.unpack('<Q', raw)[0]
                if p & 1 or (p & 0x800 and not p & 0x400):
                    return ('prototype', (p & pmask) + (va & 0xFFF))
                return ('prototype', None)
            # software pagefile / demand zero
            high = e >> 32 if esz == 8 else e >> 12
            return ('pagefile' if high else 'not-present', None)
        return ('?', None)

    def rva(self, va, n):
        out = b''
        while n > 0:
            k = min(n, PAGE - (va & 0xFFF))
            kind, pa = self.walk(va)
            b = None if pa is None else self.rpa(pa, k)
            if b is None:
                return None
            out += b
            va += k
            n -= k
        return out


def check(dump_path, truth_path, verbose=False):
    tr = json.load(open(truth_path))
    errs = []
    exp = tr['expect']
    if exp['kind'] != 'good' and exp['exit'] in (3, 4) or tr.get('defect'):
        # defective files: only check that they exist and differ as described
        if not os.path.exists(dump_path):
            errs.append('missing file')
        return errs
    d = Dump(dump_path)
    hd = tr['header']
    if d.hdr_kdbg != int(hd['kdbg'], 16):
        errs.append('kdbg mismatch')
    if d.size != tr['file_size']:
        errs.append('file size %d != %d' % (d.size, tr['file_size']))
    if tr['type'] == 4:
        return errs + check_triage(d, tr)
    if d.ext != tr['phys']['extents']:
        errs.append('extents differ: %s vs %s' % (d.ext[:5], tr['phys']['extents'][:5]))
    if sum(n for _, n, _ in d.ext) != tr['phys']['pages_present']:
        errs.append('pages_present')
    for p in tr['phys']['absent_pfns']:
        if d.page_off(p) is not None:
            errs.append('absent pfn %x present' % p)
    for s in tr['vtop']:
        va = int(s['va'], 16)
        kind, pa = d.walk(va)
        tpa = None if s['pa'] is None else int(s['pa'], 16)
        if s['kind'] == 'absent-table':
            ok = kind == 'absent-table'
        elif s['present'] or s['kind'] in ('not-present', 'pagefile'):
            ok = kind == s['kind'] and pa == tpa
        else:                     # mapped but data page absent: walk still gives pa
            ok = pa == tpa and kind == s['kind']
        if not ok:
            errs.append('vtop %s: walker %s %s, truth %s %s' % (s['va'], kind, pa and hex(pa), s['kind'], s['pa']))
        elif s['present'] and d.rpa(pa, 1) is None:
            errs.append('vtop %s: page not readable' % s['va'])
    for va, pa, size in tr['random_pt']['mapped']:
        va, pa = int(va, 16), int(pa, 16)
        for off in (0, size - 1, size // 2):
            k, p = d.walk(va + off)
            if p != pa + off:
                errs.append('random_pt %x+%x -> %s %s' % (va, off, k, p))
    # KDBG + module list through the page tables
    kd = find_kdbg(d)
    src = tr['info']['source']
    if kd is None:
        errs.append('KDBG tag not readable')
    else:
        if (d.kdbg_from, d.kdbg_encoded) != (src['kdbg_from'], src['kdbg_encoded']):
            errs.append('KDBG found via %s encoded=%s, truth %s %s' % (d.kdbg_from, d.kdbg_encoded,
                                                                      src['kdbg_from'], src['kdbg_encoded']))
        if d.kdbg != int(tr['kernel']['kdbg'], 16):
            errs.append('KDBG at %x, truth %s' % (d.kdbg, tr['kernel']['kdbg']))
        errs += check_modules(d, tr)
        if tr.get('pool'):
            errs += check_pool(d, tr)
        if tr.get('bigpool'):
            errs += check_bigpool(d, tr)
        if tr.get('vm'):
            errs += check_vm(d, tr)
        if tr.get('image_pages'):
            errs += check_suspects(d, tr)
    return errs


# ---- issue 4: image pages, tag sites, allocator imports (pool-internals §4.3/§4.4) ----
def loaded_modules(d):
    psz = 8 if d.bits == 64 else 4
    fmt = '<Q' if psz == 8 else '<I'
    head = d.psl
    cur = struct.unpack(fmt, d.rva(head, psz))[0]
    out = []
    while cur != head and len(out) < 2000:
        e = d.rva(cur, 0xA0 if psz == 8 else 0x5C)
        if e is None:
            break
        if psz == 8:
            base, size = struct.unpack_from('<QxxxxxxxxI', e, 0x30)
            name = ustr(d, e, 0x58)
        else:
            base, _, size = struct.unpack_from('<III', e, 0x18)
            name = ustr(d, e, 0x2C)
        out.append((name, base, size))
        cur = struct.unpack_from(fmt, e, 0)[0]
    return out


def pe_info(d, base):
    """(sections [(name, rva, vsize, ch)], dirs {i: (rva, size)}) from the in-memory headers."""
    hdr = d.rva(base, 0x1000)
    if hdr is None or hdr[:2] != b'MZ':
        return None
    lf = struct.unpack_from('<I', hdr, 0x3C)[0]
    nsec = struct.unpack_from('<H', hdr, lf + 6)[0]
    opt = struct.unpack_from('<H', hdr, lf + 20)[0]
    magic = struct.unpack_from('<H', hdr, lf + 24)[0]
    dd = lf + 24 + (112 if magic == 0x20B else 96)
    dirs = {i: struct.unpack_from('<II', hdr, dd + 8 * i) for i in range(16)}
    secs = []
    for i in range(nsec):
        nm, vs, rva = struct.unpack_from('<8sII', hdr, lf + 24 + opt + 40 * i)
        ch = struct.unpack_from('<I', hdr, lf + 24 + opt + 40 * i + 36)[0]
        secs.append((nm.rstrip(b'\0').decode(), rva, vs, ch))
    return secs, dirs


def resident_pages(d, base, size):
    out = []
    for off in range(0, size, PAGE):
        kind, pa = d.walk(base + off)
        if pa is not None and kind != 'pagefile' and d.page_off(pa >> 12) is not None:
            out.append((off, pa))
    return out


def nt_exports(d, base):
    info = pe_info(d, base)
    if not info:
        return {}
    rva, sz = info[1][0]
    ed = d.rva(base + rva, 40)
    n, nn, funcs, names, ords = struct.unpack_from('<IIIII', ed, 20)
    out = {}
    for i in range(nn):
        nrva = struct.unpack('<I', d.rva(base + names + 4 * i, 4))[0]
        nm = d.rva(base + nrva, 64).split(b'\0')[0].decode()
        o = struct.unpack('<H', d.rva(base + ords + 2 * i, 2))[0]
        out[nm] = base + struct.unpack('<I', d.rva(base + funcs + 4 * o, 4))[0]
    return out


def check_suspects(d, tr):
    errs = []
    mods = loaded_modules(d)
    ip = tr['image_pages']
    res = {}
    for name, base, size in mods:
        pages = resident_pages(d, base, size)
        res[name] = pages
        want = ip['modules'].get(name)
        if want != {'resident': len(pages), 'total': (size + PAGE - 1) // PAGE}:
            errs.append('image pages %s: %d/%d vs %s' % (name, len(pages), (size + 4095) // 4096, want))
    if not tr.get('suspects'):
        return errs
    psz = 8 if d.bits == 64 else 4
    fmt = '<Q' if psz == 8 else '<I'
    exports = nt_exports(d, mods[0][1])
    infos = {name: pe_info(d, base) for name, base, _ in mods}
    for s in tr['suspects']:
        key = int(s['key'], 16).to_bytes(4, 'little')
        got = set()
        for name, base, size in mods:
            secs = infos[name][0] if infos[name] else []
            pages = dict(res[name])
            for off, pa in res[name]:
                blob = d.rpa(pa, PAGE)
                prev = d.rpa(pages[off - PAGE], PAGE) if off - PAGE in pages else bytes(PAGE)
                nxt = d.rpa(pages[off + PAGE], 3) if off + PAGE in pages else b''
                buf = prev[-4:] + blob + nxt
                i = buf.find(key, 1)
                while 0 <= i < 4 + PAGE:
                    if i >= 4:
                        rva = off + i - 4
                        ch = [c for n_, a, vs, c in secs if a <= rva < a + vs]
                        ex = bool(ch and ch[0] & 0x20000000)
                        if d.bits == 64:
                            imm = buf[i - 2:i] in (b'\x41\xb8', b'\x41\xb9') or buf[i - 4:i - 1] == b'\xc7\x44\x24'
                        else:
                            imm = buf[i - 1] == 0x68
                        kind = 'tag-in-code' if ex and imm else 'tag-in-data'
                        got.add((name, hex(base + rva), kind))
                    i = buf.find(key, i + 1)
        want = set((c['module'], e['address'], e['kind']) for c in s['candidates'] for e in c['evidence']
                   if e['kind'] in ('tag-in-code', 'tag-in-data'))
        if got != want:
            errs.append('suspect %s tag sites: %s vs truth %s' % (s['tag'], sorted(got)[:4], sorted(want)[:4]))
        if bool(got) != s['tag_search']['found']:
            errs.append('suspect %s found flag' % s['tag'])
        # allocator imports: IAT (directory 12) values equal to nt's untagged allocator exports
        if s['tag'] == 'None':
            targets = {exports[f]: f for f in ('ExAllocatePool', 'ExAllocatePoolWithQuota') if f in exports}
            imp = set()
            for name, base, size in mods:
                if not infos[name]:
                    continue
                rva, sz = infos[name][1][12]
                blob = d.rva(base + rva, sz) if sz else None
                if blob is None:
                    continue
                for k in range(0, sz - psz + 1, psz):
                    v = struct.unpack_from(fmt, blob, k)[0]
                    if v in targets:
                        imp.add((name, hex(base + rva + k)))
            want = set((c['module'], e['address']) for c in s['candidates'] for e in c['evidence']
                       if e['kind'] == 'imports-allocator')
            if imp != want:
                errs.append('None importers %s vs %s' % (sorted(imp), sorted(want)))
        # KMDF: IAT entries pointing into Wdf01000.sys, name prefix == tag
        wdf = [(b, sz) for n_, b, sz in mods if n_.lower() == 'wdf01000.sys']
        if wdf:
            kmdf = set()
            for name, base, size in mods:
                if not infos[name] or name[:4].encode('latin1') != key:
                    continue
                rva, sz = infos[name][1][12]
                blob = d.rva(base + rva, sz) or b''
                vals = [struct.unpack_from(fmt, blob, k)[0] for k in range(0, len(blob) - psz + 1, psz)]
                if any(wdf[0][0] <= v < wdf[0][0] + wdf[0][1] for v in vals):
                    kmdf.add(name)
            want = set(c['module'] for c in s['candidates'] if 'kmdf-default-tag' in c['kinds'])
            if kmdf != want:
                errs.append('kmdf candidates %s vs %s' % (kmdf, want))
        if not s['candidates'] and tr['modules'].get('unloaded'):
            errs.append('suspect %s: unloaded drivers not listed' % s['tag'])
    return errs


# ---- KDBG: header pointer, .data scan, encoded block (pool-internals §1.1, §1.5) ----
M64 = (1 << 64) - 1


def kdbg_decode(e, never, always, p):
    n = never & 0xFF & 63
    x = e ^ never
    x = ((x << n) | (x >> (64 - n))) & M64 if n else x
    x = int.from_bytes((x ^ p).to_bytes(8, 'little'), 'big')
    return x ^ always


def find_kdbg(d):
    """Sets d.kdbg / d.kdbg_from / d.kdbg_encoded (/ d.kdbg_plain); returns True or None."""
    kd = d.rva(d.kdbg, 0x18)
    d.kdbg_encoded = False
    if kd is not None and kd[0x10:0x14] == b'KDBG':
        d.kdbg_from = 'header'
        return True
    mods = loaded_modules(d)
    if not mods:
        return None
    nt_base, nt_size = mods[0][1], mods[0][2]
    secs = pe_info(d, nt_base)[0]
    mask = M64 if d.bits == 64 else 0xFFFFFFFF
    for name, rva, vs, ch in secs:
        if name != '.data':
            continue
        blob = d.rva(nt_base + rva, vs)
        i = blob.find(b'KDBG')
        while i >= 0:
            if i % 4 == 0 and i >= 0x10:
                kb = struct.unpack_from('<Q', blob, i + 8)[0] & mask
                pl = struct.unpack_from('<Q', blob, i + 0x38)[0] & mask
                if kb == nt_base and nt_base <= pl < nt_base + nt_size:
                    d.kdbg, d.kdbg_from = nt_base + rva + i - 0x10, 'scan'
                    return True
            i = blob.find(b'KDBG', i + 1)
    if d.bits != 64:
        return None
    # encoded: KdCopyDataBlock by its byte forms (cmp / lea / mov / mov|xor / bswap / ret)
    for name, rva, vs, ch in secs:
        if not ch & 0x20000000:
            continue
        text = d.rva(nt_base + rva, vs)
        tva = nt_base + rva
        i = text.find(b'\x80\x3d')
        while i >= 0:
            res = _kdcopy_candidate(d, text, tva, i)
            if res:
                return True
            i = text.find(b'\x80\x3d', i + 1)
    return None


def _kdcopy_candidate(d, text, tva, i):
    if text[i + 6] != 0:
        return None
    flag = tva + i + 7 + struct.unpack_from('<i', text, i + 2)[0]
    want = ['lea', 'mov', 'movxor']
    got = []
    bswap = False
    j = i + 7
    while j < min(i + 300, len(text) - 7):
        b0, b1, b2 = text[j], text[j + 1], text[j + 2]
        if b0 == 0xC3:
            break
        if b0 in (0x48, 0x4C) and b2 & 0xC7 == 0x05 and got.__len__() < 3:
            kind = {0x8D: 'lea', 0x8B: 'mov', 0x33: 'xor'}.get(b1)
            w = want[len(got)]
            if kind and (kind == w or (w == 'movxor' and kind in ('mov', 'xor'))):
                got.append(tva + j + 7 + struct.unpack_from('<i', text, j + 3)[0])
                j += 7
                continue
        if b0 in (0x48, 0x49) and b1 == 0x0F and 0xC8 <= b2 <= 0xCF:
            bswap = True
        j += 1
    if len(got) < 3 or not bswap:
        return None
    kdbg, nv, av = got
    fb, nb, ab = d.rva(flag, 1), d.rva(nv, 8), d.rva(av, 8)
    if fb != b'\x01' or nb is None or ab is None:
        return None
    never, always = struct.unpack('<Q', nb)[0], struct.unpack('<Q', ab)[0]
    q = d.rva(kdbg + 0x10, 8)
    if q is None:
        return None
    v = kdbg_decode(struct.unpack('<Q', q)[0], never, always, flag)
    size = v >> 32
    if v & 0xFFFFFFFF != 0x4742444B or not 0x200 <= size <= 0x1000 or size % 8:
        return None
    raw = d.rva(kdbg, size)
    d.kdbg_plain = b''.join(struct.pack('<Q', kdbg_decode(struct.unpack_from('<Q', raw, k)[0], never, always, flag))
                            for k in range(0, size, 8))
    d.kdbg, d.kdbg_from, d.kdbg_encoded = kdbg, 'header' if kdbg == d.hdr_kdbg else 'scan', True
    return True


# ---- pool: implements the symbol-less heuristics of pool-internals §2.8/§3.3 ----
def ptr(d, va):
    b = d.rva(va, 8 if d.bits == 64 else 4)
    return None if b is None else struct.unpack('<Q' if d.bits == 64 else '<I', b)[0]


def kdbg_field(d, off):
    kd = d.kdbg_read(off + 8)
    v = struct.unpack_from('<Q', kd, off)[0]
    return v & 0xFFFFFFFF if d.bits == 32 else v


def nt_data(d):
    """(start, end) of nt's .data from the in-memory PE headers."""
    base = kdbg_field(d, 0x18)
    hdr = d.rva(base, 0x400)
    lfanew = struct.unpack_from('<I', hdr, 0x3C)[0]
    nsec = struct.unpack_from('<H', hdr, lfanew + 6)[0]
    opt = struct.unpack_from('<H', hdr, lfanew + 20)[0]
    sh = lfanew + 24 + opt
    for i in range(nsec):
        name, vsize, rva = struct.unpack_from('<8sII', hdr, sh + 40 * i)
        if name.rstrip(b'\0') == b'.data':
            return base + rva, base + rva + vsize
    return None


def build_of(d):
    return struct.unpack_from('<I', d.h, 0xC)[0]


def stride(d):
    b = build_of(d)
    if d.bits == 64:
        return 0x28 if b < 16299 else (0x38 if b < 22000 else 0x50)
    return 0x1C if b < 16299 else 0x30


def unpack_entry(esz, e):
    if esz == 0x28:
        k, a, f, b, pa, pf, pb = struct.unpack_from('<III4xQIIQ', e)
    elif esz in (0x38, 0x50):
        k, b, a, f, pb, pa, pf = struct.unpack_from('<I4xQQQQQQ', e)
    elif esz == 0x1C:
        k, a, f, b, pa, pf, pb = struct.unpack_from('<IIIIIII', e)
    else:
        k, b, a, f, pb, pa, pf = struct.unpack_from('<IIQQI4xQQ', e)
    return k, [a, f, b, pa, pf, pb]


def hash64(key, mask):
    h = 40543 * key
    return ((h & 0xFFFFFFFF) ^ (h >> 32)) & mask


def check_pool(d, tr):
    errs = []
    psz = 8 if d.bits == 64 else 4
    pttv = kdbg_field(d, 0x1B8)
    table = ptr(d, pttv)
    esz = stride(d)
    ds, de = nt_data(d)
    ncpu = struct.unpack_from('<I', d.h, 0x34 if d.bits == 64 else 0x24)[0]
    # Size from a (S, M) pair near &PoolTrackTable, slot before first (§2.8 step 4)
    cands = [pttv - psz] + [pttv + k * psz for k in range(-0x3000 // psz, 0x3000 // psz)]
    size = None
    for a in cands:
        if not ds <= a < de - 2 * psz:
            continue
        s = ptr(d, a)
        for mva in (a + psz, a - psz):
            mk = ptr(d, mva)
            if s and mk is not None and s == mk + 2 and (mk + 1) & mk == 0 and 64 <= mk + 1 <= 1 << 20:
                size = s
                break
        if size:
            break
    if d.bits == 64:
        # hash-probe sizing (§2.8 step 3) must agree
        raw0 = None
        best = None
        for n in range(20, 5, -1):
            mask = (1 << n) - 1
            buf = d.rva(table, (mask + 2) * esz)
            if buf is None:
                continue
            keys = [struct.unpack_from('<I', buf, i * esz)[0] for i in range(mask + 1)]
            ok = True
            for i, k in enumerate(keys):
                if k == 0:
                    continue
                j = hash64(k, mask)
                while j != i:
                    if keys[j] == 0:
                        ok = False
                        break
                    j = (j + 1) & mask
                if not ok:
                    break
            if ok:
                best = mask + 2
                break
        if best != tr['layout']['tracker_entries']:
            errs.append('hash-probe size %s' % best)
        if size is None:
            size = best
    if size != tr['layout']['tracker_entries']:
        errs.append('Size/Mask pair not found (%s)' % size)
        return errs
    # per-CPU tables: a slot == table outside &PoolTrackTable followed by ncpu-1 pointers
    tables = [table]
    if ncpu > 1 and tr['layout']['percpu_va']:
        a = ds
        blob = d.rva(ds, de - ds)
        for off in range(0, len(blob) - psz, psz):
            v = struct.unpack_from('<Q' if psz == 8 else '<I', blob, off)[0]
            if v == table and ds + off != pttv:
                others = [struct.unpack_from('<Q' if psz == 8 else '<I', blob, off + psz * i)[0]
                          for i in range(1, ncpu)]
                if all(o and o % 0x1000 == 0 for o in others):
                    tables += others
                    break
        if len(tables) != ncpu:
            errs.append('ExPoolTagTables not found')
    sums = {}
    keyed = {}
    buf0 = d.rva(table, size * esz)
    for c, t in enumerate(tables):
        buf = d.rva(t, size * esz)
        for i in range(size):
            k, v = unpack_entry(esz, buf[i * esz:(i + 1) * esz])
            if i == size - 1:
                key = None
            else:
                if c > 0 and k == 0:
                    continue
                key = struct.unpack_from('<I', buf0, i * esz)[0]
                if key == 0:
                    continue
            acc = sums.setdefault(key, [0] * 6)
            for j in range(6):
                acc[j] += v[j]
    got = {}
    for key, v in sums.items():
        if key is None and not any(v):
            continue
        got['(overflow)' if key is None else '0x%08x' % key] = v
    # expansion table, if the hashed table is full
    keys0 = [struct.unpack_from('<I', buf0, i * esz)[0] for i in range(size - 1)]
    if all(keys0):
        for a in range(pttv - 0x2F00, pttv + 0x2F00, psz):
            p, n = ptr(d, a), ptr(d, a + psz)
            if p and p % 0x1000 == 0 and n and 1 <= n <= 0x10000:
                eb = d.rva(p, n * esz)
                if eb is None:
                    continue
                ents = [unpack_entry(esz, eb[i * esz:(i + 1) * esz]) for i in range(n)]
                if all(k and all(0x20 <= b < 0x7f for b in k.to_bytes(4, 'little')) and k not in keys0
                       for k, _ in ents):
                    for k, v in ents:
                        got['0x%08x' % k] = v
                    break
    want = {}
    for e in tr['pool']['tags']:
        want[e['key'] or '(overflow)'] = [e['nonpaged']['allocs'], e['nonpaged']['frees'],
                                          e['nonpaged']['bytes'], e['paged']['allocs'],
                                          e['paged']['frees'], e['paged']['bytes']]
    got = {k: v for k, v in got.items() if any(v)}
    if got != want:
        diff = [k for k in set(got) | set(want) if got.get(k) != want.get(k)]
        errs.append('pool tags differ: %s' % [(k, got.get(k), want.get(k)) for k in diff[:4]])
    return errs


def check_bigpool(d, tr):
    errs = []
    psz = 8 if d.bits == 64 else 4
    pttv = kdbg_field(d, 0x1B8)
    b = build_of(d)
    besz = (0x20 if b >= 20348 else 0x18) if d.bits == 64 else (0x0C if b < 3790 else 0x10)
    found = None
    for a in range(pttv - 0x3000, pttv + 0x3000, psz):
        t = ptr(d, a)
        if not t or t % 0x1000 or (d.bits == 64 and t >> 47 != 0x1FFFF):
            continue
        for sa in (a + psz, a - psz, a + 2 * psz) + tuple(range(a - 0x100 * psz, a + 0x100 * psz, psz)):
            s = ptr(d, sa)
            if not s or s & (s - 1) or not 64 <= s < 0x1000000:
                continue
            buf = d.rva(t, s * besz)
            if buf is None:
                continue
            good = 0
            for i in range(s):
                va = struct.unpack_from('<Q' if psz == 8 else '<I', buf, i * besz)[0]
                kern = (va >> 47 == 0x1FFFF) if d.bits == 64 else va >= 0x80000000
                if va == 1 or (kern and (va & 0xFFF) in (0, 1)):
                    good += 1
            if good >= 0.9 * s:
                found = (t, s, buf)
                break
        if found:
            break
    if not found:
        return ['big-page table not found']
    t, s, buf = found
    old = b < 6000
    ents = []
    for i in range(s):
        o = i * besz
        if d.bits == 64:
            va, key, f, nb = struct.unpack_from('<QIIQ', buf, o)
        elif besz == 0x0C:
            va, key, f = struct.unpack_from('<III', buf, o)
            nb = 0
        else:
            va, key, f, nb = struct.unpack_from('<IIII', buf, o)
        if va & 1 or key == 0:
            continue
        if old:
            nb = f * 0x1000
        ents.append((hex(va), nb))
    want = [(e['va'], e['bytes']) for e in tr['bigpool']['entries']]
    if sorted(ents) != sorted(want):
        errs.append('bigpool differs (%d vs %d entries)' % (len(ents), len(want)))
    return errs


def check_vm(d, tr):
    vm = tr['vm']
    psz = 8 if d.bits == 64 else 4
    def var(off, width=None):
        va = kdbg_field(d, off)
        b = d.rva(va, width or psz)
        return struct.unpack('<Q' if len(b) == 8 else '<I', b)[0]
    got = {'physical_pages': var(0xF8), 'available_pages': var(0x1A8), 'resavail_pages': var(0x1B0),
           'modified_pages': var(0x198), 'committed_pages': var(0x150),
           'commit_limit_pages': var(0x148), 'shared_commit_pages': var(0x158),
           'driver_commit_pages': var(0x160, 4), 'process_commit_pages': var(0x168),
           'paged_pool_commit_pages': var(0x170, 4),
           'nonpaged_pool_max_pages': var(0x100) // 4096, 'paged_pool_max_pages': var(0x140) // 4096}
    errs = ['vm %s %s != %s' % (k, v, vm[k]) for k, v in got.items() if vm[k] != v]
    if vm['usage_source'] == 'descriptors':
        b = build_of(d)
        tp, tb = (0x10, 0x14) if b < 6000 else (0xC0, 0x48)
        npd = kdbg_field(d, 0x1C0)
        x = d.rva(npd, 0x100)
        np_ = struct.unpack_from('<I', x, tp)[0] + struct.unpack_from('<I', x, tb)[0]
        n = struct.unpack('<I', d.rva(kdbg_field(d, 0x70), 4))[0]
        arr = kdbg_field(d, 0x68)
        pg = 0
        for i in range(n + 1):
            x = d.rva(ptr(d, arr + i * psz), 0x100)
            pg += struct.unpack_from('<I', x, tp)[0] + struct.unpack_from('<I', x, tb)[0]
        if (np_, pg) != (vm['nonpaged_pool_pages'], vm['paged_pool_pages']):
            errs.append('descriptor usage %s %s' % (np_, pg))
    return errs


def ustr(d, b, off):
    if d.bits == 64:
        ln, mx, _, buf = struct.unpack_from('<HHIQ', b, off)
    else:
        ln, mx, buf = struct.unpack_from('<HHI', b, off)
    s = d.rva(buf, ln)
    return None if s is None else s.decode('utf-16-le')


def check_modules(d, tr):
    errs = []
    psz = 8 if d.bits == 64 else 4
    fmt = '<Q' if psz == 8 else '<I'
    head = d.psl
    cur = struct.unpack(fmt, d.rva(head, psz))[0]
    got = []
    while cur != head and len(got) < 2000:
        e = d.rva(cur, 0xA0 if psz == 8 else 0x5C)
        if e is None:
            break
        if psz == 8:
            base, size = struct.unpack_from('<QxxxxxxxxI', e, 0x30)
            full, name = ustr(d, e, 0x48), ustr(d, e, 0x58)
        else:
            base, _, size = struct.unpack_from('<III', e, 0x18)
            full, name = ustr(d, e, 0x24), ustr(d, e, 0x2C)
        got.append({'name': name, 'path': full, 'base': hex(base), 'size': size})
        cur = struct.unpack_from(fmt, e, 0)[0]
    if got != tr['modules']['loaded']:
        errs.append('module list differs: %s' % [g['name'] for g in got])
    # unloaded drivers via KDBG +0x220/+0x228
    kd = d.kdbg_read(0x230)
    mask = (1 << (8 * psz)) - 1
    arrp = struct.unpack_from('<Q', kd, 0x220)[0] & mask
    cntp = struct.unpack_from('<Q', kd, 0x228)[0] & mask
    arr = struct.unpack(fmt, d.rva(arrp, psz))[0]
    cnt = struct.unpack('<I', d.rva(cntp, 4))[0]
    esz = 0x28 if psz == 8 else 0x18
    unl = []
    for i in range(cnt):
        e = d.rva(arr + i * esz, esz)
        nm = ustr(d, e, 0)
        if psz == 8:
            s, en, t = struct.unpack_from('<QQQ', e, 0x10)
        else:
            s, en, t = struct.unpack_from('<IIQ', e, 8)
        import time as _t
        unl.append({'name': nm, 'base': hex(s), 'size': en - s,
                    'time': _t.strftime('%Y-%m-%dT%H:%M:%SZ', _t.gmtime(t // 10**7 - 11644473600))})
    if unl != tr['modules']['unloaded']:
        errs.append('unloaded list differs')
    # build lab string via KDBG +0x208
    labp = struct.unpack_from('<Q', kd, 0x208)[0] & mask
    lab = d.rva(labp, 64)
    if lab is None or lab.split(b'\0')[0].decode() != tr['info']['os']['build_lab']:
        errs.append('NtBuildLab differs')
    return errs


def check_triage(d, tr):
    errs = []
    d.f.seek(d.hsz)
    t = d.f.read(0x80)
    x64 = d.bits == 64
    valid, = struct.unpack_from('<I', t, 8)
    d.f.seek(valid)
    if d.f.read(4) != b'TRGD':
        errs.append('no DGRT marker')
    drv, cnt, spool, spsz = struct.unpack_from('<IIII', t, 0x30)
    esz = 0x90 if x64 else 0x4C
    got = []
    for i in range(cnt):
        d.f.seek(drv + i * esz)
        e = d.f.read(esz)
        no, = struct.unpack_from('<I', e, 0)
        d.f.seek(no)
        ln, = struct.unpack('<I', d.f.read(4))
        s = d.f.read(2 * ln).decode('utf-16-le')
        if x64:
            base, = struct.unpack_from('<Q', e, 8 + 0x30)
            size, = struct.unpack_from('<I', e, 8 + 0x40)
        else:
            base, = struct.unpack_from('<I', e, 4 + 0x18)
            size, = struct.unpack_from('<I', e, 4 + 0x20)
        got.append({'name': s.split('\\')[-1], 'path': s if '\\' in s else None,
                    'base': hex(base), 'size': size})
    if got != tr['modules']['loaded']:
        errs.append('triage driver list differs')
    kdo, kds = struct.unpack_from('<II', t, 0x70 if x64 else 0x58)
    d.f.seek(kdo)
    if d.f.read(0x18)[0x10:0x14] != b'KDBG':
        errs.append('triage KDBG copy')
    return errs


def main():
    if sys.argv[1] == '--matrix':
        root = sys.argv[2]
        idx = json.load(open(os.path.join(root, 'index.json')))
        bad = 0
        for e in idx:
            errs = check(os.path.join(root, e['dump']), os.path.join(root, e['truth']))
            if e.get('twin'):
                a = json.load(open(os.path.join(root, e['truth'])))
                b = json.load(open(os.path.join(root, e['twin'][:-4] + '.json')))
                for k in ('vm', 'pool', 'bigpool', 'modules', 'image_pages', 'phys', 'vtop'):
                    if a.get(k) != b.get(k):
                        errs.append('twin %s differs in %s' % (e['twin'], k))
            if errs:
                bad += 1
                print('FAIL', e['dump'], errs[:5])
        print('%d/%d ok' % (len(idx) - bad, len(idx)))
        return 1 if bad else 0
    errs = check(sys.argv[1], sys.argv[2])
    for e in errs:
        print(e)
    print('ok' if not errs else 'FAIL')
    return 1 if errs else 0


if __name__ == '__main__':
    sys.exit(main())
