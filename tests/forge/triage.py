"""Type-4 triage dump body (dump-format §2.6)."""
import struct
from headers import Out

PAGE = 0x1000


def dump_string(s):
    enc = s.encode('utf-16-le')
    b = struct.pack('<I', len(enc) // 2) + enc + b'\0\0'
    return b + bytes((-len(b)) % 8)


def build(m, hdr_size, attributes, name_form, rng):
    """Returns (Out, total size, mini_dump_fields, truth modules)."""
    x64 = m.bits == 64
    out = Out()
    tri = hdr_size
    tsz = 0x80 if x64 else 0x68
    p = tri + 0x100
    def take(n, al=8):
        nonlocal p
        p = (p + al - 1) & ~(al - 1)
        o = p
        p += n
        return o
    ctx = take(0x4D0 if x64 else 0x2CC, 16)
    exc = take(0x98 if x64 else 0x50)
    prcb = take(0x200)
    proc = take(0x100)
    thr = take(0x100)
    stack_sz = 0x1000 * rng.randrange(1, 4)
    stack = take(stack_sz, 16)
    # drivers
    mods = m.modules
    esz = 0x90 if x64 else 0x4C
    drv = take(esz * len(mods), 8)
    strings = []
    for mod in mods:
        s = mod.name if name_form == 'bare' else mod.path
        strings.append(s)
    pool = b''
    name_offs = []
    spool_off = drv + esz * len(mods)
    for s in strings:
        name_offs.append(spool_off + len(pool))
        pool += dump_string(s)
    take(len(pool))
    # unloaded drivers
    uesz = 0x38 if x64 else 0x28
    ustart = 8 if x64 else 4
    nunl = len(m.unloaded)
    reserve = 50 if attributes is not None and attributes & 8 else nunl
    unl = take(ustart + uesz * reserve, 8)
    dpage = take(PAGE, PAGE)
    kdbg = take(m.kdbg_size, 8)
    lab = m.build_lab.encode() + b'\0'
    blocks = [(m.ntbuildlab_va, lab)]
    bsz = 16 if x64 else 12
    dblk = take(bsz * len(blocks), 8)
    bdata = []
    for va, data in blocks:
        bdata.append(take(len(data), 8))
    valid = take(4, 4)
    size = (p + 0xFFF) & ~0xFFF
    size = max(size, 0x20000 if x64 else 0x10000)

    fields = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | 0x200 | 0x400 | 0x800
    t = bytearray(tsz)
    struct.pack_into('<IIIIIIIIIIIIIIIII', t, 0, 0, size, valid, ctx, exc, 0, unl, prcb, proc, thr,
                     stack, stack_sz, drv, len(mods), spool_off, len(pool), 0)
    struct.pack_into('<I', t, 0x44, 0)
    top = m.stack_top
    data_page_va = m.data_page_va
    if x64:
        struct.pack_into('<Q', t, 0x48, top)
        struct.pack_into('<QIIIIII', t, 0x60, data_page_va, dpage, PAGE, kdbg, m.kdbg_size, dblk, len(blocks))
    else:
        struct.pack_into('<I', t, 0x48, top)
        struct.pack_into('<IIIIIII', t, 0x4C, data_page_va, dpage, PAGE, kdbg, m.kdbg_size, dblk, len(blocks))
    out.put(tri, t)
    # context / exception
    c = bytearray(0x4D0 if x64 else 0x2CC)
    if x64:
        struct.pack_into('<I', c, 0x30, 0x10001F)
        struct.pack_into('<Q', c, 0x98, top)
        struct.pack_into('<Q', c, 0xF8, m.crash_ip)
    else:
        struct.pack_into('<I', c, 0, 0x1003F)
        struct.pack_into('<I', c, 0xB8, m.crash_ip)
        struct.pack_into('<I', c, 0xC4, top)
    out.put(ctx, c)
    out.put(exc, struct.pack('<IIQQI', 0xC0000005, 0, 0, m.crash_ip, 0) if x64 else
            struct.pack('<IIIII', 0xC0000005, 0, 0, m.crash_ip, 0))
    out.put(stack, bytes(rng.randrange(256) for _ in range(64)) * (stack_sz // 64))
    # driver list
    raw = attributes is not None and attributes & 8
    truth_loaded = []
    for i, mod in enumerate(mods):
        e = bytearray(esz)
        struct.pack_into('<I', e, 0, name_offs[i])
        k = 8 if x64 else 4
        if x64:
            struct.pack_into('<Q', e, k + 0x30, mod.base)          # DllBase
            struct.pack_into('<I', e, k + 0x40, mod.size)          # SizeOfImage
            struct.pack_into('<I', e, k + 0x78, mod.image.checksum)
            struct.pack_into('<I', e, k + 0x80, mod.image.timestamp)
            if raw:
                kl = m.vr(mod.ldr, 0x88)
                e[k:k + 0x30] = kl[:0x30]
                e[k + 0x38:k + 0x40] = kl[0x38:0x40]     # EntryPoint
                e[k + 0x48:k + 0x78] = kl[0x48:0x78]
        else:
            struct.pack_into('<I', e, k + 0x18, mod.base)          # DllBase
            struct.pack_into('<I', e, k + 0x20, mod.size)          # SizeOfImage
            struct.pack_into('<I', e, k + 0x44, mod.image.timestamp)
            if raw:
                kl = m.vr(mod.ldr, 0x48)
                e[k:k + 0x18] = kl[:0x18]
                e[k + 0x24:k + 0x40] = kl[0x24:0x40]
        out.put(drv + i * esz, e)
        s = strings[i]
        name = s.replace('/', '\\').split('\\')[-1]
        truth_loaded.append({'name': name, 'path': s if '\\' in s else None,
                             'base': hex(mod.base), 'size': mod.size})
    out.put(spool_off, pool)
    # unloaded
    u = bytearray(ustart + uesz * reserve)
    struct.pack_into('<I', u, 0, nunl)
    truth_unl = []
    for i, d in enumerate(m.unloaded):
        nm = d['name'][:12]
        enc = nm.encode('utf-16-le')
        base = int(d['base'], 16)
        o = ustart + i * uesz
        if x64:
            struct.pack_into('<HHIQ', u, o, len(enc), len(enc), 0, 0)
            u[o + 0x10:o + 0x10 + len(enc)] = enc
            struct.pack_into('<QQ', u, o + 0x28, base, base + d['size'])
        else:
            struct.pack_into('<HHI', u, o, len(enc), len(enc), 0)
            u[o + 8:o + 8 + len(enc)] = enc
            struct.pack_into('<II', u, o + 0x20, base, base + d['size'])
        truth_unl.append({'name': nm, 'base': d['base'], 'size': d['size'], 'time': None})
    out.put(unl, u)
    out.put(prcb, m.vr(m.prcbs[0], 0x200))
    out.put(dpage, m.vr(data_page_va, PAGE))
    out.put(kdbg, bytes(m.kdbg_bytes))
    for i, ((va, data), off) in enumerate(zip(blocks, bdata)):
        out.put(dblk + i * bsz, struct.pack('<QII', va, off, len(data)) if x64 else
                struct.pack('<III', va, off, len(data)))
        out.put(off, data)
    out.put(valid, b'TRGD')          # u32 'DGRT' (TRIAGE_DUMP_VALID) stored little-endian
    m.triage_info = {'valid_offset': valid, 'driver_list': drv, 'string_pool': spool_off,
                     'unloaded': unl, 'kdbg_copy': kdbg, 'data_blocks': dblk, 'size_of_dump': size}
    return out, size, fields, {'loaded': truth_loaded, 'unloaded': truth_unl}
