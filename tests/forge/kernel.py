"""Kernel address space: nt image (exports), KDBG (pool-internals §1), loaded
module list (§4.1), unloaded drivers (§4.2), drivers with imports (§4.4),
and the special page-table cases of dump-format §4.3/§4.4."""
import struct
from paging import Phys, PageTables, PAGE, KFLAGS, G, NX, WRITE_SW
from pe import Image, SCN_CODE, SCN_DATA, SCN_RDATA, SCN_INIT

MACHINE = {'x86': 0x14C, 'x86-pae': 0x14C, 'x64': 0x8664, 'arm64': 0xAA64}

# KDBG Header.Size per build (pool-internals §1.2)
def kdbg_size(build, arch):
    if build < 3790: return 0x290
    if build < 6000: return 0x318
    if build < 7600: return 0x330
    if build < 9200: return 0x340
    if build < 14393: return 0x360
    if build < 17763: return 0x368
    if build < 22621: return 0x380
    return 0x3A0

BUILD_LAB = {
    2600: '2600.xpsp_sp3_qfe.100216-1510',
    3790: '3790.srv03_sp2_rtm.070216-1710',
    7601: '7601.24545.{a}fre.win7sp1_ldr_escrow.200102-1707',
    9600: '9600.19538.{a}fre.winblue_ltsb_escrow.191017-1700',
    16299: '16299.15.{a}fre.rs3_release.170928-1534',
    19041: '19041.1.{a}fre.vb_release.191206-1406',
    22000: '22000.1.{a}fre.co_release.210604-1628',
    22631: '22621.1.{a}fre.ni_release.220506-1250',
    26100: '26100.1.{a}fre.ge_release.240331-1435',
}

# year of the crash per build (for SystemTime)
YEAR = {2600: 2009, 3790: 2009, 7601: 2016, 9600: 2019, 16299: 2018, 19041: 2023,
        22000: 2022, 22631: 2024, 26100: 2025}

NT_EXPORTS = ['ExAllocatePool', 'ExAllocatePoolWithTag', 'ExAllocatePoolWithQuota',
              'ExAllocatePoolWithQuotaTag', 'ExAllocatePoolWithTagPriority', 'ExFreePool',
              'ExFreePoolWithTag', 'KeBugCheckEx', 'KeInitializeEvent', 'IofCallDriver',
              'IoCreateDevice', 'MmAllocateContiguousMemory', 'RtlInitUnicodeString',
              '_wcsnicmp', 'KeWaitForSingleObject', 'ObfDereferenceObject']
ALLOCATORS = ['ExAllocatePool', 'ExAllocatePoolWithTag', 'ExAllocatePoolWithQuota',
              'ExAllocatePoolWithQuotaTag', 'ExAllocatePoolWithTagPriority',
              'ExAllocatePool2', 'ExAllocatePool3']


class DataArea:
    """Random, non-overlapping placement of variables inside a section."""
    def __init__(self, va, size, rng):
        self.va, self.size, self.rng = va, size, rng
        self.taken = []

    def free(self, off, n):
        return 0 <= off and off + n <= self.size and all(off + n <= a or off >= b for a, b in self.taken)

    def at(self, off, n):
        if not self.free(off, n):
            return None
        self.taken.append((off, off + n))
        return self.va + off

    def alloc(self, n, align=8, lo=0, hi=None):
        """Random placement inside [lo, hi): pick a random free gap that fits."""
        hi = self.size if hi is None else min(hi, self.size)
        lo = max(lo, 0)
        edges = sorted(self.taken)
        gaps, cur = [], lo
        for a, b in edges:
            if b <= cur:
                continue
            if a > cur:
                gaps.append((cur, min(a, hi)))
            cur = max(cur, b)
            if cur >= hi:
                break
        if cur < hi:
            gaps.append((cur, hi))
        fits = []
        for a, b in gaps:
            s = (a + align - 1) & ~(align - 1)
            if s + n <= b:
                fits.append((s, b))
        if not fits:
            raise RuntimeError('data area full')
        a, b = self.rng.choice(fits)
        off = a + self.rng.randrange(0, (b - n - a) // align + 1) * align
        self.taken.append((off, off + n))
        return self.va + off


class Machine:
    def __init__(self, arch, build, rng, phys_mb, cpus, kernel_only):
        self.arch, self.build, self.rng, self.cpus = arch, build, rng, cpus
        self.bits = 32 if arch.startswith('x86') else 64
        self.psz = self.bits // 8
        self.kernel_only = kernel_only
        self.phys = Phys(rng, phys_mb, arch)
        self.pt = PageTables(self.phys, 'x64' if arch == 'arm64' else arch, rng)
        self.notes = {}          # facts for the truth file
        self.excluded = set()    # RAM pfns deliberately absent from kernel dumps
        self.special = []        # (va, kind, pa, note) for vtop samples
        self.np_cur = None
        self.drv_exports = {}    # DLL name (upper) -> {export: va}

    # --- helpers -------------------------------------------------------
    def P(self, v):
        return struct.pack('<Q' if self.bits == 64 else '<I', v & ((1 << self.bits) - 1))

    def map_new(self, va, n, flags=KFLAGS | G):
        lim = 0x100000 if self.arch == 'x86' else None
        for i in range(n):
            self.pt.map4k(va + i * PAGE, self.phys.alloc(limit_pfn=lim), flags)

    def v2p(self, va):
        e = self.pt.lookup(va)
        if e is None or e[1] is None:
            raise KeyError('unmapped va %x' % va)
        return e[1]

    def vw(self, va, data):
        off = 0
        while off < len(data):
            n = min(PAGE - ((va + off) & 0xFFF), len(data) - off)
            self.phys.write(self.v2p(va + off), data[off:off + n])
            off += n

    def vr(self, va, n):
        out = b''
        while n:
            k = min(PAGE - (va & 0xFFF), n)
            out += self.phys.read(self.v2p(va), k)
            va += k
            n -= k
        return out

    def wptr(self, va, v):
        self.vw(va, self.P(v))

    def w32(self, va, v):
        self.vw(va, struct.pack('<I', v & 0xFFFFFFFF))

    def pool_flags(self):
        """Valid pool PTEs carry bit 11 (software Write), NX and, on x64, working-set
        bits 52-62 (dump-format §4.1/§4.3): a walker must mask them."""
        f = KFLAGS | G | WRITE_SW
        if self.arch == 'x86-pae':
            f |= NX
        elif self.bits == 64:
            f |= NX | (self.rng.randrange(1, 0x7ff) << 52)
        return f

    def large_alloc(self, size, align=16):
        self.large_cur = (self.large_cur + align - 1) & ~(align - 1)
        va = self.large_cur
        self.large_cur += size
        assert self.large_cur <= self.large_va + self.large_size
        return va

    # --- nonpaged pool bump allocator with POOL_HEADERs (pool-internals §6) --
    def np_alloc(self, size, tag=b'None', ptype=None):
        hs = 16 if self.bits == 64 else 8
        unit = hs
        total = (size + hs + unit - 1) // unit * unit
        if total > PAGE - hs:
            # big allocation: whole pages, no header
            npg = (size + PAGE - 1) // PAGE
            va = self.np_next
            self.np_next += npg * PAGE
            self.map_new(va, npg, self.pool_flags())
            return va
        if self.np_cur is None or self.np_cur + total > self.np_page + PAGE:
            self.np_page = self.np_next
            self.np_next += PAGE
            self.map_new(self.np_page, 1, self.pool_flags())
            self.np_cur = self.np_page
            self.np_prev = 0
        hdr = self.np_cur
        bs = total // unit
        pt = 2 if ptype is None else ptype     # Vista+: nonpaged = even >0 (stored type+1)
        if self.bits == 64:
            h = struct.pack('<BBBBIQ', self.np_prev, 0, bs, pt, struct.unpack('<I', tag)[0], 0)
        else:
            h = struct.pack('<HHI', self.np_prev, bs | (pt << 9), struct.unpack('<I', tag)[0])
        self.vw(hdr, h)
        self.np_prev = bs
        self.np_cur += total
        return hdr + hs

    def ustr(self, s, tag=b'MmLd'):
        """Allocate a UTF-16 buffer; returns UNICODE_STRING bytes."""
        enc = s.encode('utf-16-le')
        buf = self.np_alloc(len(enc) + 2, tag)
        self.vw(buf, enc + b'\0\0')
        if self.bits == 64:
            return struct.pack('<HHIQ', len(enc), len(enc) + 2, 0, buf)
        return struct.pack('<HHI', len(enc), len(enc) + 2, buf)


def filetime(year, rng):
    import calendar
    t = calendar.timegm((year, rng.randrange(1, 13), rng.randrange(1, 28),
                         rng.randrange(24), rng.randrange(60), rng.randrange(60)))
    return (t + 11644473600) * 10**7


def iso(ft):
    import time
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ft // 10**7 - 11644473600))


def layout_vas(m):
    r = m.rng
    _layout_vas(m, r)
    if m.scen.get('nt_base'):
        m.nt_base = m.scen['nt_base']


def _layout_vas(m, r):
    if m.bits == 64:
        if m.build >= 9600 and r.random() < 0.5:
            m.nt_base = 0xfffff80000000000 + r.randrange(0x100, 0x7f00) * 0x200000
        else:
            m.nt_base = 0xfffff80000000000 + r.randrange(0x10, 0x100) * 0x200000
        m.drv_base = m.nt_base + 0x1000000 + r.randrange(0, 0x100) * 0x10000
        pool = 0xffff800000000000 + r.randrange(0x100, 0x7fff) * (1 << 32)
        m.np_next = pool + r.randrange(0, 0x1000) * 0x10000
        m.large_va = pool + 0x80000000                      # 2 MiB page
        m.g1_va = 0xffff800000000000 + r.randrange(0x8000, 0xf000) * (1 << 30) // 8 * 8  # 1 GiB
        m.g1_va &= ~((1 << 30) - 1)
        m.paged_va = pool + 0x100000000
        m.rand_va = pool + 0x200000000
        m.rand_span = 1 << 30
        m.hole_va = pool + 0x300000000
    else:
        m.nt_base = (0x80400000 if m.build < 6000 else 0x82800000) + r.randrange(0, 0x40) * 0x10000
        m.drv_base = 0x8a000000 + r.randrange(0, 0x40) * 0x10000
        m.np_next = 0x86000000 + r.randrange(0, 0x100) * 0x1000
        m.large_va = 0x84000000 if m.arch == 'x86' else 0x84200000   # 4 MiB / 2 MiB page
        m.paged_va = 0xe1000000 + r.randrange(0, 0x100) * 0x1000
        m.rand_va = 0xa0000000
        m.rand_span = 64 << 20
        m.hole_va = 0xb0000000


class Module:
    def __init__(self, name, path, base, size, image):
        self.name, self.path, self.base, self.size, self.image = name, path, base, size, image


def build_nt(m):
    r = m.rng
    x86pae = m.arch == 'x86-pae'
    m.nt_name = 'ntkrnlpa.exe' if x86pae else 'ntoskrnl.exe'
    text_sz = m.scen.get("nt_text_size") or 0x40000 + r.randrange(0, 16) * 0x1000
    data_sz = 0x30000
    init_sz = 0x8000
    size = 0x1000 + text_sz + data_sz + 0x2000 + init_sz
    ts = r.randrange(0x40000000, 0x68000000)
    img = Image(m.nt_base, size, m.bits, MACHINE[m.arch], ts)
    text = 0x1000
    data = text + text_sz
    rdata = data + data_sz
    init = rdata + 0x2000
    img.add_section('.text', text, text_sz, SCN_CODE)
    img.add_section('.data', data, data_sz, SCN_DATA)
    img.add_section('.rdata', rdata, 0x2000, SCN_RDATA)
    img.add_section('INIT', init, init_sz, SCN_INIT)
    names = list(NT_EXPORTS)
    if m.build >= 19041:
        names += ['ExAllocatePool2', 'ExAllocatePool3']
    exports = {}
    used = set()
    fixed_rva = m.scen.get('export_rva', {})
    for nm in names:
        if nm in fixed_rva:
            exports[nm] = fixed_rva[nm]
            img.put(fixed_rva[nm], b'\x8b\xff\x55\x8b\xec\xc3')
            continue
        while True:
            off = r.randrange(0x100, text_sz - 0x100) & ~0xF
            if off not in used:
                used.add(off)
                break
        exports[nm] = text + off
        img.put(text + off, b'\x48\x89\x5c\x24\x08\xc3' if m.bits == 64 else b'\x8b\xff\x55\x8b\xec\xc3')
    m.data_area = DataArea(m.nt_base + data, data_sz, r)
    m.psloaded = m.data_area.alloc(2 * m.psz, 8)
    exports['PsLoadedModuleList'] = m.psloaded - m.nt_base
    img.add_exports(rdata, m.nt_name, exports)
    m.nt_exports = {k: m.nt_base + v for k, v in exports.items()}
    img.finish_headers()
    m.nt_img = img
    # map and copy the image; INIT pages are discarded (PTE 0) except the first
    for off in range(0, size, PAGE):
        if off >= init + PAGE:
            continue
        m.map_new(m.nt_base + off, 1)
    m.vw(m.nt_base, bytes(img.buf[:init + PAGE]))
    return Module(m.nt_name, '\\SystemRoot\\system32\\' + m.nt_name, m.nt_base, size, img)


DRIVERS = [
    # name, dir, size, tags used in .text, allocators imported
    ('hal.dll', 'system32', 0x60000, [b'HalI'], ['ExAllocatePoolWithTag']),
    ('kdcom.dll', 'system32', 0xB000, [], []),
    ('CLFS.SYS', 'System32\\drivers', 0x5E000, [b'ClfI'], ['ExAllocatePoolWithTag']),
    ('Ntfs.sys', 'System32\\drivers', 0x90000, [b'NtFs', b'Ntfx'], ['ExAllocatePoolWithTag', 'ExAllocatePoolWithQuotaTag']),
    ('tcpip.sys', 'System32\\drivers', 0x80000, [b'TCPt', b'TcpE'], ['ExAllocatePoolWithTag', 'ExAllocatePoolWithTagPriority']),
    ('afd.sys', 'system32\\drivers', 0x50000, [b'AfdB'], ['ExAllocatePoolWithQuotaTag', 'ExAllocatePoolWithTag']),
    ('myfault.sys', 'system32\\drivers', 0x9000, [b'Leak'], ['ExAllocatePoolWithTag']),
]


ZERO_PAGE = bytes(PAGE)


def code_site(m, form, tag, ip_va, iat_slot):
    """Bytes of an allocation call site whose tag is an instruction immediate
    (pool-internals §4.3 / issue 4): x64 `mov r8d, imm32` (41 B8), `mov r9d, imm32` (41 B9),
    `mov dword [rsp+disp8], imm32` (C7 44 24 xx); x86 `push imm32` (68).
    Returns (bytes, offset of the 4 tag bytes inside them)."""
    if m.bits == 64:
        pre = {'r8d': b'\x41\xb8', 'r9d': b'\x41\xb9', 'rsp': b'\xc7\x44\x24\x28'}[form]
        code = b'\xba\x00\x10\x00\x00' + b'\xb9\x00\x02\x00\x00' + pre + tag  # mov edx,size; mov ecx,type
        toff = len(code) - 4
        nxt = ip_va + len(code) + 6
        code += b'\xff\x15' + struct.pack('<i', (iat_slot - nxt) if iat_slot else 0)  # call [rip+IAT]
        return code, toff
    code = b'\x68' + tag + b'\x68\x00\x10\x00\x00\x6a\x00' + b'\xff\x15' + struct.pack('<I', iat_slot or 0)
    return code, 1


def build_driver(m, name, sub, size, tags, allocs, base, opt=None):
    """A loaded driver image.  opt (scenario driver_opts) may add: code_sites [(tag, form)],
    data_tags [(tag, '.rdata'|'.data')], page_size + page_tag (a PAGE section whose tag page is
    absent from the dump), init_size, extra_libs [(dll, [func])], exports [func], fill
    (random code bytes in N .text pages), imports/iat_at/imports_in_init/tag_offsets."""
    opt = dict(opt or {})
    b_ = lambda t: t if isinstance(t, bytes) else t.encode('latin1')
    opt['code_sites'] = [(b_(t), f) for t, f in opt.get('code_sites', ())]
    opt['data_tags'] = [(b_(t), sec) for t, sec in opt.get('data_tags', ())]
    if opt.get('page_tag'):
        opt['page_tag'] = b_(opt['page_tag'])
    r = m.rng
    ts = r.randrange(0x40000000, 0x68000000)
    img = Image(base, size, m.bits, MACHINE[m.arch], ts)
    page_sz = opt.get('page_size', 0)
    if opt.get('init_size') is None:
        text_sz = max(0x1000, (size - 0x4000) // 2 & ~0xFFF)
    else:
        text_sz = size - 0x3000 - page_sz - opt['init_size']
    text = 0x1000
    rdata = text + text_sz
    data = rdata + 0x1000
    pagesec = data + 0x1000
    init = pagesec + page_sz
    init_sz = size - init
    img.add_section('.text', text, text_sz, SCN_CODE)
    img.add_section('.rdata', rdata, 0x1000, SCN_RDATA)
    img.add_section('.data', data, 0x1000, SCN_DATA)
    if page_sz:
        img.add_section('PAGE', pagesec, page_sz, SCN_CODE)
    if init_sz > 0:
        img.add_section('INIT', init, init_sz, SCN_INIT)
    allocs = [a for a in allocs if a in m.nt_exports]
    if m.build >= 19041 and 'ExAllocatePoolWithTag' in allocs and r.random() < 0.5:
        allocs.append('ExAllocatePool2')
    funcs = [(a, m.nt_exports[a]) for a in allocs] + [('ExFreePoolWithTag', m.nt_exports['ExFreePoolWithTag']),
                                                    ('KeBugCheckEx', m.nt_exports['KeBugCheckEx'])]
    if opt.get('imports'):
        funcs = [(a, m.nt_exports[a]) for a in opt['imports']]
    iat = opt.get('iat_at', rdata)
    in_init = init_sz > 0 and opt.get('imports_in_init', r.random() < 0.3)
    # import descriptors + names in .rdata, or in the discardable INIT section (then only the
    # resolved IAT in .rdata stays resident: pool-internals §4.4 step 3)
    desc = init if in_init else max(rdata + 0x100, iat + 0x100)
    libs = [('ntoskrnl.exe', funcs)]
    for dll, fns in opt.get('extra_libs', ()):
        exp = m.drv_exports[dll.upper()]
        libs.append((dll, [(f, exp[f]) for f in fns]))
    slots, _ = img.add_imports(desc, iat, libs)
    exports = {}
    if opt.get('exports'):
        for i, fn in enumerate(opt['exports']):
            exports[fn] = text + 0x40 + 0x20 * i
            img.put(exports[fn], b'\x48\x89\x5c\x24\x08\xc3' if m.bits == 64 else b'\x8b\xff\x55\x8b\xec\xc3')
        img.add_exports(rdata + 0xA00, name, exports)
        m.drv_exports[name.upper()] = {k: base + v for k, v in exports.items()}
    # tag literals in code: push imm32 / mov r8d, imm32 followed by call [IAT]
    tag_sites = []
    fixed_offs = list(opt.get('tag_offsets', []))
    for tag in tags:
        for _ in range(2):
            off = fixed_offs.pop(0) if fixed_offs else text + r.randrange(0x100, text_sz - 0x100)
            if m.bits == 64:
                code = b'\x41\xb8' + tag + b'\x0f\x42\xc1'
            else:
                code = b'\x68' + tag + b'\xff\x75\x0c'
            img.put(off, code)
            tag_sites.append((tag, base + off + (2 if m.bits == 64 else 1)))
    # issue-4 sites: distinct 0x40-byte slots of .text (and of the PAGE section)
    code_sites, data_sites, absent_sites = [], [], []
    alloc_slot = slots.get('ExAllocatePoolWithTag') or slots.get('ExAllocatePool2') or 0
    nslots = (text_sz - 0x400) // 0x40
    want = len(opt.get('code_sites', ()))
    picks = r.sample(range(nslots), want) if want else []
    if opt.get('fill'):
        # random "code" bytes in the first pages of .text (never on the header or stubs page)
        for i in range(min(opt['fill'], text_sz // PAGE)):
            pg = text + i * PAGE
            img.put(pg + 0x400 if i == 0 else pg, r.randbytes(PAGE - 0x400 if i == 0 else PAGE))
    for (tag, form), k in zip(opt.get('code_sites', ()), picks):
        off = text + 0x400 + k * 0x40
        code, toff = code_site(m, form, tag, base + off, alloc_slot)
        img.put(off, code)
        code_sites.append((tag, base + off + toff, form if m.bits == 64 else 'push', '.text'))
    for tag, secname in opt.get('data_tags', ()):
        if secname == '.rdata':
            off = rdata + 0xE00 + 0x40 * len(data_sites)
        else:
            off = data + r.randrange(0x10, 0xF0) * 0x10
        s = b'tag ' + tag + b'\0'
        img.put(off, s)
        data_sites.append((tag, base + off + 4, secname))
    absent_pages = set()
    paged_out = set()
    if page_sz:
        # PAGE: the first page resident (pageable code that happened to be in memory), the
        # page holding page_tag absent from the dump: paged out in full dumps, its (valid)
        # page frame left out of kernel-only dumps
        if opt.get('page_tag'):
            tpg = pagesec + PAGE if page_sz > PAGE else pagesec
            off = tpg + 0x200 + r.randrange(0, 0x40) * 0x10
            code, toff = code_site(m, 'r8d' if m.bits == 64 else 'push', opt['page_tag'], base + off, alloc_slot)
            img.put(off, code)
            absent_sites.append((opt['page_tag'], base + off + toff, 'PAGE'))
            absent_pages.add(tpg)
            for extra in range(tpg + PAGE, pagesec + page_sz, PAGE):
                paged_out.add(extra)          # the rest of PAGE: paged out
        img.put(pagesec + 0x100, b'\x48\x83\xec\x28\x48\x83\xc4\x28\xc3' if m.bits == 64 else b'\x8b\xff\x55\x8b\xec\x5d\xc3')
    img.checksum = r.randrange(0x1000, 0x100000)
    img.finish_headers()
    for off in range(0, size, PAGE):
        if init_sz > 0 and off >= init:
            continue                      # INIT discarded after DriverEntry
        if off in paged_out or (off in absent_pages and not m.kernel_only):
            m.pt.set_leaf(base + off, m.pt.pagefile(r.randrange(0x100, 0xFFFFF), r.randrange(1, 15)),
                          'pagefile', None)
            continue
        m.map_new(base + off, 1)
        if off in absent_pages:
            m.excluded.add(m.v2p(base + off) >> 12)
    for off in range(0, min(init, size), PAGE):
        chunk = bytes(img.buf[off:off + PAGE])
        if chunk != ZERO_PAGE and off not in paged_out and (off not in absent_pages or m.kernel_only):
            m.vw(base + off, chunk)       # zero pages are never stored (sparse)
    path = ('\\SystemRoot\\%s\\%s' % (sub, name))
    mod = Module(name, path, base, size, img)
    mod.tag_sites = tag_sites
    mod.iat = slots
    mod.imports_in_init = bool(in_init)
    mod.libs = [dll for dll, _ in libs]
    mod.code_sites, mod.data_sites, mod.absent_sites = code_sites, data_sites, absent_sites
    return mod


def build_modules(m, scen):
    r = m.rng
    mods = [build_nt(m)]
    base = m.drv_base
    drivers = list(DRIVERS)
    for d in scen.get('drivers', []):
        drivers.append(d)
    for name, sub, size, tags, allocs in drivers:
        if name in scen.get('drop_drivers', ()):
            continue
        fixed = scen.get('driver_base', {}).get(name)
        b = fixed if fixed is not None else base
        mods.append(build_driver(m, name, sub, size, tags, allocs, b,
                                 scen.get('driver_opts', {}).get(name)))
        if fixed is None:
            base += (size + 0xFFFF) & ~0xFFFF
            base += r.randrange(0, 8) * 0x10000
    m.modules = mods
    return mods



def write_ldr_list(m):
    """KLDR_DATA_TABLE_ENTRY list (pool-internals §4.1)."""
    x64 = m.bits == 64
    esz = 0xA0 if x64 else 0x5C
    entries = []
    for mod in m.modules:
        va = m.np_alloc(esz, b'MmLd')
        entries.append(va)
        mod.ldr = va
    head = m.psloaded
    n = len(entries)
    for i, (mod, va) in enumerate(zip(m.modules, entries)):
        fl = entries[i + 1] if i + 1 < n else head
        bl = entries[i - 1] if i > 0 else head
        e = bytearray(esz)
        if x64:
            struct.pack_into('<QQ', e, 0, fl, bl)
            struct.pack_into('<QQI', e, 0x30, mod.base, mod.base + 0x1010, mod.size)
            e[0x48:0x58] = m.ustr(mod.path)
            e[0x58:0x68] = m.ustr(mod.name)
            struct.pack_into('<IH', e, 0x68, 0x49104000, 1)
            struct.pack_into('<I', e, 0x78, mod.image.checksum)
            struct.pack_into('<II', e, 0x98, mod.size, mod.image.timestamp)
        else:
            struct.pack_into('<II', e, 0, fl, bl)
            struct.pack_into('<III', e, 0x18, mod.base, mod.base + 0x1010, mod.size)
            e[0x24:0x2C] = m.ustr(mod.path)
            e[0x2C:0x34] = m.ustr(mod.name)
            struct.pack_into('<IH', e, 0x34, 0x09104000, 1)
            struct.pack_into('<I', e, 0x40, mod.image.checksum)
            struct.pack_into('<II', e, 0x54, mod.size, mod.image.timestamp)
        m.vw(va, bytes(e))
    m.vw(head, m.P(entries[0]) + m.P(entries[-1]))
    m.ldr_entries = entries


UNLOADED = ['dump_storport.sys', 'dump_storahci.sys', 'dump_dumpfve.sys', 'luafv.sys',
            'dam.sys', 'hwpolicy.sys', '360Sensor64.sys', 'WdBoot.sys', 'mrxsmb10.sys',
            'Diskdump.sys', 'crashdmp.sys']


def build_unloaded(m, scen, systime):
    """MM_UNLOADED_DRIVERS array (§4.2) inside the large-page region."""
    r = m.rng
    names = list(scen.get('unloaded') or r.sample(UNLOADED, r.randrange(3, 8)))
    names += list(scen.get('unloaded_extra', ()))      # unloaded last = most recently
    esz = 0x28 if m.bits == 64 else 0x18
    arr = m.large_alloc(50 * esz)
    out = []
    t = systime - r.randrange(10**10, 10**12)
    for i, item in enumerate(names):
        if isinstance(item, tuple):
            nm, start, size = item
        else:
            nm = item
            size = r.randrange(0x8, 0x40) * 0x1000
            start = m.drv_base + 0x4000000 + r.randrange(0, 0x800) * 0x10000
        t += r.randrange(10**7, 10**10)
        t = min(t, systime - 10**7)
        us = m.ustr(nm, b'MmDT')
        if m.bits == 64:
            e = us + struct.pack('<QQQ', start, start + size, t)
        else:
            e = us + struct.pack('<IIQ', start, start + size, t)
        m.vw(arr + i * esz, e)
        out.append({'name': nm, 'base': hex(start), 'size': size, 'time': iso(t)})
    m.unloaded = out
    m.unloaded_arr = arr
    m.unloaded_count = len(names)
    return out


# --- KDBG (pool-internals §1.2-§1.4) ---------------------------------------
# offsets of "A-var" members that get a variable in nt .data
KDBG_VARS = [0x58, 0x70, 0x78, 0x98, 0xA0, 0xA8, 0xB0, 0xC0, 0xD8, 0xE0, 0xE8, 0xF0, 0xF8,
             0x100, 0x108, 0x110, 0x118, 0x120, 0x128, 0x140, 0x148, 0x150, 0x158, 0x160,
             0x168, 0x170, 0x178, 0x1A8, 0x1B0, 0x1B8, 0x1C8, 0x1D0, 0x1D8, 0x1F0, 0x1F8,
             0x220, 0x228, 0x230, 0x238, 0x240, 0x250, 0x258, 0x260, 0x268, 0x270, 0x278,
             0x280, 0x288, 0x290, 0x308, 0x318, 0x320, 0x328, 0x330, 0x2C8, 0x2D0, 0x2D8]
KDBG_STRUCTS = {0x180: 0x10, 0x188: 0x10, 0x190: 0x10, 0x198: 0x10, 0x1A0: 0x10,  # MMPFNLIST
                0xB8: 0x40, 0x130: 0x80, 0x248: 0x40, 0x60: 0x10, 0x80: 0x10, 0x90: 0x10,
                0x200: 0x10, 0x88: 0x28}
KDBG_CODE = [0x20, 0x38, 0x40, 0x210]


def build_kdbg(m, scen):
    r = m.rng
    size = scen.get('kdbg_size') or kdbg_size(m.build, m.arch)
    m.kdbg_size = size
    d = m.data_area
    m.kdbg = d.alloc(size, 16)
    kd = bytearray(size)
    m.kdbg_vars = {}
    sx = m.bits == 32 and scen.get('kdbg_sign_extend', r.random() < 0.5)
    m.notes['kdbg_pointer_form'] = 'sign-extended' if sx else ('zero-extended' if m.bits == 32 else 'native')

    def put(off, v):
        if off + 8 > size:
            return
        if sx and v & 0x80000000:
            v |= 0xFFFFFFFF00000000
        struct.pack_into('<Q', kd, off, v)
    m.kdbg_put = put
    listhead = d.alloc(2 * m.psz, 8)
    m.vw(listhead, m.P(m.kdbg) * 2)
    put(0, listhead)
    put(8, listhead)
    kd[0x10:0x14] = b'KDBG'
    struct.pack_into('<I', kd, 0x14, size)
    put(0x18, m.nt_base)
    put(0x28, d.alloc(8))
    for off in KDBG_CODE:
        put(off, m.nt_base + 0x1000 + r.randrange(0, 0x30000))
    struct.pack_into('<HHH', kd, 0x30, 0x12C if m.bits == 32 else 0x1C8, 0x120, 0x18)
    if m.bits == 32:
        struct.pack_into('<H', kd, 0x36, 1 if m.arch == 'x86-pae' else 0)
    put(0x48, m.psloaded)
    put(0x50, m.pshead)
    for off in KDBG_VARS:
        if off + 8 > size:
            continue
        va = d.alloc(m.psz, m.psz)
        m.kdbg_vars[off] = va
        put(off, va)
    for off, n in KDBG_STRUCTS.items():
        if off + 8 > size:
            continue
        va = d.alloc(n, 8)
        m.kdbg_vars[off] = va
        put(off, va)
    put(0x138, 0x1000)
    put(0x1C0, d.alloc(0x140, 8))          # NonPagedPoolDescriptor (struct itself)
    m.kdbg_vars[0x1C0] = None
    # NtBuildLab (A-buf) and KiProcessorBlock (A-array)
    lab = BUILD_LAB.get(m.build, '%d.1.{a}fre.rs_release.000000-0000' % m.build).format(
        a={'x64': 'amd64', 'arm64': 'arm64'}.get(m.arch, 'x86'))
    m.build_lab = lab
    labva = d.alloc(len(lab) + 1, 8)
    m.vw(labva, lab.encode() + b'\0')
    put(0x208, labva)
    m.ntbuildlab_va = labva
    kpb = d.alloc(m.psz * max(m.cpus, 1) + m.psz, 8)
    put(0x218, kpb)
    m.prcbs = []
    for i in range(m.cpus):
        prcb = m.large_alloc(0x200, 64)
        m.prcbs.append(prcb)
        m.wptr(kpb + i * m.psz, prcb)
    # MmPfnDatabase
    if m.bits == 64:
        pfndb = 0xfffffa8000000000 if m.build < 14393 else 0xffff800000000000 + r.randrange(0x10, 0xff) * (1 << 39)
    else:
        pfndb = 0x81000000 if m.build < 6000 else 0x84a00000
    m.pfndb = pfndb
    m.wptr(m.kdbg_vars[0xC0], pfndb)
    # unloaded drivers
    m.wptr(m.kdbg_vars[0x220], m.unloaded_arr)
    m.w32(m.kdbg_vars[0x228], m.unloaded_count)
    # L1TF swizzle hint bytes (dump-format §4.4): 0 unless the scenario sets them
    if size > 0x2C3 and scen.get('l1tf_bytes'):
        kd[0x2C2], kd[0x2C3] = scen['l1tf_bytes']
    m.kdbg_bytes = kd


def finish_kdbg(m):
    if m.scen.get('kdbg_encoded'):
        encode_kdbg(m)
    else:
        m.vw(m.kdbg, bytes(m.kdbg_bytes))
    if m.scen.get('kdbg_bad_pointer'):
        # the header's KdDebuggerDataBlock points at zeros in nt .data; the real block is found
        # only by the .data scan (pool-internals §1.1 fallback)
        d = m.data_area
        d.rng = m.aux
        m.header_kdbg = d.alloc(0x400, 16)
        d.rng = m.rng


M64 = (1 << 64) - 1


def _rol(x, n):
    n &= 63
    return ((x << n) | (x >> (64 - n))) & M64 if n else x


def _bswap(x):
    return int.from_bytes(x.to_bytes(8, 'little'), 'big')


def kdbg_decode_qword(e, never, always, p):
    """pool-internals §1.5 five steps."""
    x = _rol(e ^ never, never & 0xFF)
    return _bswap(x ^ p) ^ always


def kdbg_encode_qword(v, never, always, p):
    x = _bswap(v ^ always) ^ p
    n = never & 63
    x = ((x >> n) | (x << (64 - n))) & M64 if n else x
    return x ^ never


def _rip(va_next, target):
    return struct.pack('<i', target - va_next)


def kd_copy_function(va, flag, kdbg, never, always, qwords, xor_form):
    """A KdCopyDataBlock-like routine in the byte forms of pool-internals §1.5:
    cmp byte [rip+d32],0 (80 3D d32 00) -> KdpDataBlockEncoded; lea r64,[rip+d32] -> the
    block; mov r64,[rip+d32] -> KiWaitNever; xor (8.1+) or mov (Win8) r64,[rip+d32] ->
    KiWaitAlways; a bswap; other instructions in between; ret."""
    c = bytearray()

    def rip_insn(prefix, target, tail=b''):
        start = va + len(c)
        n = len(prefix) + 4 + len(tail)
        c.extend(prefix + _rip(start + n, target) + tail)
    c += b'\x48\x83\xec\x28'                       # sub rsp,28h
    rip_insn(b'\x80\x3d', flag, b'\x00')              # cmp byte [rip+KdpDataBlockEncoded],0
    je_at = len(c)
    c += b'\x74\x00'                                 # je done (patched)
    rip_insn(b'\x48\x8d\x15', kdbg)                   # lea rdx,[rip+KdDebuggerDataBlock]
    c += b'\xb9' + struct.pack('<I', qwords)          # mov ecx, Size/8
    rip_insn(b'\x4c\x8b\x05', never)                  # mov r8,[rip+KiWaitNever]
    rip_insn(b'\x4c\x8d\x15', flag)                   # lea r10,[rip+KdpDataBlockEncoded] (P)
    if not xor_form:
        rip_insn(b'\x4c\x8b\x1d', always)             # mov r11,[rip+KiWaitAlways]  (Win8)
    loop = len(c)
    c += b'\x48\x8b\x02'                             # mov rax,[rdx]
    c += b'\x49\x33\xc0'                             # xor rax,r8
    c += b'\x51\x41\x8a\xc8'                         # push rcx; mov cl,r8b
    c += b'\x48\xd3\xc0\x59'                         # rol rax,cl; pop rcx
    c += b'\x49\x33\xc2'                             # xor rax,r10
    c += b'\x48\x0f\xc8'                             # bswap rax
    if xor_form:
        rip_insn(b'\x48\x33\x05', always)             # xor rax,[rip+KiWaitAlways]  (8.1+)
    else:
        c += b'\x49\x33\xc3'                         # xor rax,r11
    c += b'\x48\x89\x02\x48\x83\xc2\x08\xff\xc9'     # mov [rdx],rax; add rdx,8; dec ecx
    c += b'\x75' + bytes([(loop - (len(c) + 2)) & 0xFF])   # jnz loop
    rip_insn(b'\xc6\x05', flag, b'\x00')              # mov byte [rip+KdpDataBlockEncoded],0
    c[je_at + 1] = len(c) - (je_at + 2)
    c += b'\x48\x83\xc4\x28\xc3'                     # add rsp,28h; ret
    return bytes(c)


def decoy_function(va, kind, a, b, c_):
    """`80 3D` sequences that are not KdCopyDataBlock (§1.5: expect several candidates)."""
    c = bytearray()

    def rip_insn(prefix, target, tail=b''):
        start = va + len(c)
        n = len(prefix) + 4 + len(tail)
        c.extend(prefix + _rip(start + n, target) + tail)
    rip_insn(b'\x80\x3d', a, b'\x00')
    if kind == 0:                                  # no bswap
        c += b'\x75\x0e'
        rip_insn(b'\x48\x8d\x0d', b)
        rip_insn(b'\x48\x8b\x05', c_)
        c += b'\xc3'
    elif kind == 1:                                # full shape, wrong targets (does not decode)
        rip_insn(b'\x48\x8d\x0d', b)
        rip_insn(b'\x48\x8b\x05', c_)
        rip_insn(b'\x48\x33\x05', b + 0x40)
        c += b'\x48\x0f\xc8\xc3'
    else:                                          # immediate return
        c += b'\x0f\x95\xc0\xc3'                   # setne al; ret
    return bytes(c)


def encode_kdbg(m):
    """Keep the KDBG block encoded in memory (x64 >= 9200, pool-internals §1.5), with random
    KiWaitNever/KiWaitAlways, KdpDataBlockEncoded = 1 and a KdCopyDataBlock-like routine plus
    decoy `80 3D` sequences in nt .text.  Uses m.aux so the rest of the dump stays identical
    to the plain scenario with the same seed."""
    a = m.aux
    d = m.data_area
    d.rng = a
    never_va, always_va = d.alloc(8, 8), d.alloc(8, 8)
    flag_va = d.alloc(1, 1)
    decoy_vars = [d.alloc(8, 8) for _ in range(4)]
    d.rng = m.rng
    never = a.getrandbits(64) | 1
    if never & 63 == 0:
        never |= 5
    always = a.getrandbits(64)
    p = flag_va                                   # canonical address of KdpDataBlockEncoded
    m.vw(never_va, struct.pack('<Q', never))
    m.vw(always_va, struct.pack('<Q', always))
    m.vw(flag_va, b'\x01')
    kd = bytes(m.kdbg_bytes)
    enc = b''.join(struct.pack('<Q', kdbg_encode_qword(struct.unpack_from('<Q', kd, i)[0], never, always, p))
                   for i in range(0, len(kd), 8))
    assert all(kdbg_decode_qword(struct.unpack_from('<Q', enc, i)[0], never, always, p) ==
               struct.unpack_from('<Q', kd, i)[0] for i in range(0, len(kd), 8))
    m.vw(m.kdbg, enc)
    # code: the routine + decoys in free 16-byte-aligned stretches of nt .text
    _, text, text_sz, _ = m.nt_img.sec('.text')
    busy = sorted(v - m.nt_base for k, v in m.nt_exports.items() if m.nt_base + text <= v < m.nt_base + text + text_sz)

    def place(n):
        for _ in range(1000):
            off = text + a.randrange(0x100, text_sz - 0x200) & ~0xF
            if all(not (off - 16 <= b < off + n + 16) for b in busy):
                busy.append(off)
                busy.extend(range(off, off + n, 16))
                return off
        raise RuntimeError('no room in nt .text')
    fn_va = None
    for _ in range(200):
        off = place(0x80)
        va = m.nt_base + off
        code = kd_copy_function(va, flag_va, m.kdbg, never_va, always_va, m.kdbg_size // 8, m.build >= 9600)
        body = code[:-1]
        if 0xC3 not in body and body.count(b'\x80\x3d') == 1:
            fn_va = va
            m.vw(va, code)
            break
    assert fn_va, 'could not place KdCopyDataBlock'
    decoys = []
    for k in (0, 1, 2, 1, 0):
        for _ in range(200):
            off = place(0x40)
            va = m.nt_base + off
            code = decoy_function(va, k, a.choice(decoy_vars + [flag_va]) if k == 2 else a.choice(decoy_vars),
                                  a.choice(decoy_vars), a.choice(decoy_vars))
            if 0xC3 not in code[:-1]:
                m.vw(va, code)
                decoys.append(hex(va))
                break
    m.kdbg_encoding = {'ki_wait_never': hex(never), 'ki_wait_always': hex(always),
                       'ki_wait_never_va': hex(never_va), 'ki_wait_always_va': hex(always_va),
                       'kdp_data_block_encoded_va': hex(flag_va), 'kd_copy_data_block': hex(fn_va),
                       'form': 'xor' if m.build >= 9600 else 'mov', 'decoys': decoys}


def set_var(m, off, value, width=None):
    """Write the kernel variable that KDBG member `off` points at."""
    va = m.kdbg_vars.get(off)
    if va is None:
        return None
    width = width or m.psz
    m.vw(va, struct.pack('<Q' if width == 8 else '<I', value & ((1 << (8 * width)) - 1)))
    return va


def build_processes(m):
    """PsActiveProcessHead with a System EPROCESS (links only)."""
    head = m.data_area.alloc(2 * m.psz, 8)
    m.pshead = head
    ep = m.np_alloc(0x880 if m.bits == 64 else 0x2C0, b'Proc')
    links = ep + (0x448 if m.bits == 64 else 0xB8)
    m.vw(links, m.P(head) * 2)
    m.vw(head, m.P(links) * 2)
    m.system_eprocess = ep
