"""Large pages, software PTEs and a random page-table region (dump-format §4.1-§4.4).
Every special case is recorded in m.pt.oracle (kind, pa) for the truth file."""
import struct
from paging import PAGE, KFLAGS, G, V

def build_large(m):
    """One large page holding real structures (KPRCBs, unloaded-driver array)."""
    pt = m.pt
    if m.arch == 'x86':
        shift, lim = 22, 0x100000
    else:
        shift, lim = 21, None
    npg = 1 << (shift - 12)
    pfn = m.phys.alloc(npg, align=npg, limit_pfn=lim)
    pt.map_large(m.large_va, pfn * PAGE, shift)
    m.large_size = 1 << shift
    m.large_cur = m.large_va + m.rng.randrange(0, 64) * 0x100
    if m.bits == 64:
        # 1 GiB page mapping PA 0 (covers low RAM; pages beyond RAM are absent)
        pt.map_large(m.g1_va, 0, 30)


def build_special(m, scen):
    """Paged region: a run of consecutive pages of different PTE kinds."""
    pt, r = m.pt, m.rng
    va = m.paged_va
    kinds = ['valid', 'transition', 'pagefile', 'valid', 'zero', 'demand-zero', 'valid',
             'swizzled', 'valid', 'transition', 'valid']
    if not (m.bits == 64 and m.build >= 19041):
        kinds[7] = 'transition'
    m.paged_pages = []
    for i, k in enumerate(kinds):
        a = va + i * PAGE
        if k == 'valid':
            m.map_new(a, 1, m.pool_flags())
            m.vw(a, b'VALID PAGE %d' % i)
        elif k in ('transition', 'swizzled'):
            pfn = m.phys.alloc(limit_pfn=0x100000 if m.arch == 'x86' else None)
            sw = 45 if k == 'swizzled' else None
            pt.set_leaf(a, pt.transition(pfn, sw), 'transition', pfn * PAGE)
            m.phys.write(pfn * PAGE, b'TRANSITION PAGE %d' % i)
            if sw:
                m.notes['swizzle_bit'] = sw
        elif k == 'pagefile':
            pt.set_leaf(a, pt.pagefile(r.randrange(0x100, 0xFFFFF)), 'pagefile', None)
        elif k == 'demand-zero':
            pt.set_leaf(a, pt.pagefile(0, 0), 'not-present', None)
        elif k == 'zero':
            pt.set_leaf(a, 0, 'not-present', None)
        m.paged_pages.append((a, k))
    # PDE in transition (bit 7 = part of Protection, not PS) over a present PT
    last = len(pt.levels) - 1
    tva = (va + (1 << pt.levels[last - 1][0]) * 2) & ~((1 << pt.levels[last - 1][0]) - 1)
    for i in range(3):
        m.map_new(tva + i * PAGE, 1)
        m.vw(tva + i * PAGE, b'BEHIND TRANSITION PDE %d' % i)
    tpa = pt.table_for(tva, last)
    pde = tpa | 0x800 | (4 << 5)
    pt.set_entry(tva, last - 1, pde)
    m.tpde_va = tva
    # page table absent from the dump: full dumps -> PFN in the 0x9f-0xff hole;
    # kernel-only dumps -> a RAM page left out of the dump.
    hva = m.hole_va
    if m.kernel_only:
        pfn = m.phys.alloc(limit_pfn=0x100000 if m.arch == 'x86' else None)
        m.excluded.add(pfn)
    else:
        pfn = r.randrange(0xA0, 0xFF)
    pt.set_entry(hva, last - 1, pfn * PAGE | KFLAGS)
    for i in range(4):
        pt.oracle[hva + i * PAGE] = ('absent-table', None)
    m.absent_pt_pfn = pfn
    # a data page present in the page tables but whose PFN is outside RAM is not built.


def build_random(m):
    """Random 4K / large mappings in a private VA window (oracle comparison)."""
    pt, r = m.pt, m.rng
    base = m.rand_va
    span = m.rand_span
    mapped = []
    lim = 0x100000 if m.arch == 'x86' else m.phys.max_pfn
    large_shift = 22 if m.arch == 'x86' else 21
    lsz = 1 << large_shift
    slots = list(range(0, span // lsz))
    r.shuffle(slots)
    for j, s in enumerate(slots[:12]):
        sva = base + s * lsz
        if j < 3:
            pa = r.randrange(0, lim * PAGE // lsz) * lsz
            pt.map_large(sva, pa, large_shift)
            mapped.append([hex(sva), hex(pa), lsz])
        else:
            for _ in range(r.randrange(2, 8)):
                va = sva + r.randrange(0, lsz // PAGE) * PAGE
                if va in pt.oracle:
                    continue
                pfn = r.randrange(1, lim)
                pt.map4k(va, pfn, KFLAGS | (G if r.random() < .5 else 0))
                mapped.append([hex(va), hex(pfn * PAGE), PAGE])
    mapped.sort(key=lambda e: int(e[0], 16))
    m.random_pt = {'root': hex(pt.root), 'base': hex(base), 'span': span, 'mapped': mapped}


def build_prototype(m, rng):
    """Kernel VAs whose final PTE is a *prototype* PTE (dump-format §4.3/§4.4 step 3): the
    prototype PTE array sits in a valid kernel page; its entries are valid, transition,
    pagefile, and one VA uses the "look at the VAD" ProtoAddress.  x64 and x86 PAE only
    (the non-PAE packing is uncertain).  Uses its own rng (and makes the physical allocator
    use it too) so nothing else in the dump moves."""
    if m.arch not in ('x64', 'x86-pae'):
        m.proto_vas = []
        return
    pt = m.pt
    save = m.phys.rng
    m.phys.rng = rng
    try:
        base = m.paged_va + 0x60 * PAGE
        proto = base                                   # page holding the prototype PTEs
        m.map_new(proto, 1)
        slots = [rng.randrange(0, PAGE // 8) for _ in range(3)]
        while len(set(slots)) < 3:
            slots = [rng.randrange(0, PAGE // 8) for _ in range(3)]
        out = []
        for i, kind in enumerate(('valid', 'transition', 'pagefile', 'vad')):
            va = base + (0x10 + i) * PAGE
            pa = None
            if kind == 'vad':
                target = None
            else:
                target = proto + slots[i] * 8
                if kind == 'valid':
                    pfn = m.phys.alloc()
                    pte = pfn * PAGE | KFLAGS | G
                    pa = pfn * PAGE
                elif kind == 'transition':
                    pfn = m.phys.alloc()
                    pte = pt.transition(pfn)
                    pa = pfn * PAGE
                else:
                    pte = pt.pagefile(rng.randrange(0x100, 0xFFFFF))
                m.vw(target, struct.pack('<Q', pte))
                if pa is not None:
                    m.phys.write(pa, b'PROTOTYPE-MAPPED PAGE (%s)' % kind.encode())
            if m.bits == 64:
                field = 0xFFFFFFFF0000 if target is None else target & 0xFFFFFFFFFFFF
                raw = (field << 16) | 0x400 | ((4 << 5) if target is None else 0)
            else:
                field = 0xFFFFFFFF if target is None else target
                raw = (field << 32) | 0x400
            pt.set_leaf(va, raw, 'prototype', pa)
            out.append((va, kind))
        m.proto_vas = out
    finally:
        m.phys.rng = save
