"""Stage 2: pool tracker tables (pool-internals §2), big-page table (§3), pool
descriptors and Mm counters (§1.4, §5.2).  Returns the truth additions
{vm, pool, bigpool, layout[, expect]}."""
import math
import struct

from kernel import set_var

PAGE = 0x1000
M64 = (1 << 64) - 1
M32 = 0xFFFFFFFF

HOT = [b'Io  ', b'Hal ', b'MdlP', b'ObSt', b'Irp ', b'File', b'Key ', b'Even', b'Toke', b'Thre',
       b'Proc', b'Cont', b'MmSt', b'Mdl ', b'Ntfx', b'CcBc', b'Vad ', b'Sema', b'Muta', b'ObNm',
       b'Devi', b'Driv', b'Port', b'AlIn', b'CM31', b'CM25', b'Se  ', b'SeTl', b'MmCa', b'Wait',
       b'Ddk ', b'IoNm', b'FMfc', b'FMsl', b'Nbtl', b'NDpp', b'TcpE', b'AfdB', b'EtwR', b'EtwB',
       b'MmSi', b'PsIn', b'Ntfn', b'NtFs', b'ReEv', b'Timr', b'WfpL', b'KSec']


MUST = [b'Irp ', b'File', b'Thre', b'Proc', b'Cont', b'Even', b'MmSt', b'ObSt', b'Key ']


def entry_size(m):
    """§2.2 _POOL_TRACKER_TABLE stride by build."""
    if m.bits == 64:
        return 0x28 if m.build < 16299 else (0x38 if m.build < 22000 else 0x50)
    return 0x1C if m.build < 16299 else 0x30


def big_entry_size(m):
    """§3.1 _POOL_TRACKER_BIG_PAGES stride by build."""
    if m.bits == 64:
        return 0x20 if m.build >= 20348 else 0x18
    return 0x0C if m.build < 3790 else 0x10


def home(m, key, mask):
    """x64 hash (verified) / x86 derived hash (hint only), §2.3."""
    if m.bits == 64:
        h = 40543 * key
        return ((h & M32) ^ (h >> 32)) & mask
    b = key.to_bytes(4, 'little')
    x = ((((b[0] << 2) ^ b[1]) << 2 ^ b[2]) << 2) ^ b[3]
    return ((40543 * x) >> 2) & mask


def pack_entry(m, esz, key, c):
    """c = [npA, npF, npB, pA, pF, pB] (already wrapped to field widths)."""
    a, f, b, pa, pf, pb = c
    if esz == 0x28:
        return struct.pack('<III4xQIIQ', key, a & M32, f & M32, b & M64, pa & M32, pf & M32, pb & M64)
    if esz == 0x38:
        return struct.pack('<I4xQQQQQQ', key, b & M64, a & M64, f & M64, pb & M64, pa & M64, pf & M64)
    if esz == 0x50:
        return struct.pack('<I4xQQQQQQqqQ', key, b & M64, a & M64, f & M64, pb & M64, pa & M64,
                           pf & M64, 0, 0, 0)
    if esz == 0x1C:
        return struct.pack('<IIIIIII', key, a & M32, f & M32, b & M32, pa & M32, pf & M32, pb & M32)
    if esz == 0x30:
        return struct.pack('<IIQQI4xQQ', key, b & M32, a & M64, f & M64, pb & M32, pa & M64, pf & M64)
    raise ValueError(esz)


def tag_str(key_bytes):
    """cli-contract tag rendering."""
    out = ''
    for ch in key_bytes:
        if ch == 0x5C:
            out += '\\\\'
        elif 0x20 <= ch <= 0x7E:
            out += chr(ch)
        else:
            out += '\\x%02x' % ch
    return out


def split(rng, total, parts):
    """Random non-negative integer partition of total into `parts` pieces."""
    if parts == 1:
        return [total]
    cuts = sorted(rng.randrange(0, total + 1) for _ in range(parts - 1))
    out, prev = [], 0
    for c in cuts + [total]:
        out.append(c - prev)
        prev = c
    return out


def random_tags(rng, n, exclude):
    out = []
    alpha = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
    while len(out) < n:
        t = bytes(ord(rng.choice(alpha)) for _ in range(rng.choice([3, 4, 4, 4])))
        t = t.ljust(4, b' ')
        if t not in exclude and t not in out:
            out.append(t)
    return out


def build(m, scen, defect):
    if m.arch == 'arm64':
        return None
    r = m.rng
    psz = m.psz
    esz = entry_size(m)
    n = scen.get('tracker_bits') or r.randrange(9, 14)
    size = (1 << n) + 1
    mask = (1 << n) - 1
    # per-processor tables exist from Server 2003 on (§2.4); XP keeps only PoolTrackTable
    cpus = m.cpus if m.build >= 3790 else 1
    cnt_bits = 32 if esz in (0x28, 0x1C) else 64          # allocs/frees width
    byte_bits = 64 if m.bits == 64 else 32
    d = m.data_area

    # ---- allocate the tables (nonpaged, page aligned) ----------------------
    # ---- tag set -------------------------------------------------------------
    fixed = [(t if isinstance(t, bytes) else t.encode('latin1'), v) for t, v in scen.get('tags', [])]
    fixed_keys = set(t for t, _ in fixed)
    ntags = scen.get('filler_tags') or r.randrange(40, 160)
    expansion_n = 0
    if scen.get('expansion') or (scen.get('expansion') is None and r.random() < 0.15 and not fixed):
        # a full hashed table: every one of the 2^n slots used, the rest in the expansion table
        n = scen.get('tracker_bits') or 9
        size, mask = (1 << n) + 1, (1 << n) - 1
        expansion_n = r.randrange(3, 20)
        ntags = (1 << n) + expansion_n - len(fixed) - 1
    tbytes = (size * esz + PAGE - 1) & ~(PAGE - 1)
    tables = [m.np_alloc(size * esz, b'Pool') for _ in range(cpus)]
    pool_key = b'Pool'
    must = [t for t in MUST if t not in fixed_keys]          # tags every system has (§2.8 steps 3/6)
    fill = [t for t in HOT if t not in fixed_keys and t != pool_key and t not in must]
    r.shuffle(fill)
    fill = must + fill
    extra = random_tags(r, max(0, ntags - len(fill)), set(fill) | fixed_keys | {pool_key})
    fill = (fill + extra)[:max(ntags, 0)]
    if ntags >= 60 and not scen.get('plain_tags'):
        fill[len(must)] = b'Ab\\c'                          # backslash -> "\\\\" in JSON
        fill[len(must) + 1] = b'rx\x01\x02'                 # non-printable -> \x01\x02
    allkeys = [pool_key] + [t for t, _ in fixed] + fill

    # ---- counters (totals per tag) --------------------------------------------
    totals = {}
    # 'Pool' is charged with the tracker tables (+ big-page table, below)
    big_n = scen.get('bigpage_entries') or r.choice([512, 1024, 4096])
    need = sum(len(sz) for _, sz, _ in scen.get('big', [])) + 100
    while big_n * 3 // 4 < need:
        big_n *= 2
    besz = big_entry_size(m)
    bbytes = (big_n * besz + PAGE - 1) & ~(PAGE - 1)
    pool_np = tbytes * cpus + bbytes + r.randrange(0, 8) * PAGE
    totals[pool_key] = [cpus + 1 + r.randrange(0, 5), 0, pool_np, 0, 0, 0]
    for t, v in fixed:
        totals[t] = list(v)
    target = scen.get('totals')                 # exact !poolused TOTAL row (diff/bytes)
    weights = [r.random() ** 3 for _ in fill]
    for i, t in enumerate(fill):
        a = int(weights[i] * 5000) + 1
        f = r.randrange(0, a + 1)
        b = (a - f) * r.choice([16, 32, 64, 96, 128, 256, 512, 1024]) + (0 if a > f else 0)
        pa = r.randrange(0, 3000) if r.random() < 0.5 else 0
        pf = r.randrange(0, pa + 1)
        pb = (pa - pf) * r.choice([16, 32, 64, 128, 256, 1024])
        cap = scen.get('filler_max_bytes')
        if cap:
            b, pb = min(b, cap // 2), min(pb, cap // 2)
        totals[t] = [a, f, b, pa, pf, pb]
    if target:
        # rescale filler so that the diff/bytes sums equal the case's TOTAL row
        for which, (dsum, bsum) in enumerate([(target[0], target[1]), (target[2], target[3])]):
            o = 3 * which
            fixed_d = sum(totals[t][o] - totals[t][o + 1] for t in totals if t not in fill)
            fixed_b = sum(totals[t][o + 2] for t in totals if t not in fill)
            rem_d, rem_b = dsum - fixed_d, bsum - fixed_b
            assert rem_d >= len(fill) and rem_b >= 8 * rem_d, (rem_d, rem_b)
            ds = [x + 1 for x in split(r, rem_d - len(fill), len(fill))]
            bs = [8 * x for x in ds]
            extra_b = rem_b - sum(bs)
            q, rm = divmod(extra_b // 8, len(fill))
            eb = [q + (1 if i < rm else 0) for i in range(len(fill))]     # even: no filler outranks the case tags
            bs = [b + 8 * e for b, e in zip(bs, eb)]
            bs[0] += extra_b % 8
            for t, dd, bb in zip(fill, ds, bs):
                fr = r.randrange(0, 4 * dd + 10)
                totals[t][o:o + 3] = [dd + fr, fr, bb]
    overflow = None
    if scen.get('overflow') or (scen.get('overflow') is None and r.random() < 0.25 and not fixed):
        oa = r.randrange(10, 500)
        of = r.randrange(0, oa)
        overflow = [oa, of, (oa - of) * 64, 0, 0, 0]

    # ---- placement: hash home + linear probing (keys never removed) ------------
    slot = {}
    index_of = {}
    hashed_keys = allkeys[:(1 << n)] if expansion_n else allkeys
    exp_keys = allkeys[len(hashed_keys):]
    for t in hashed_keys:
        key = struct.unpack('<I', t)[0]
        i = home(m, key, mask)
        while i in slot:
            i = (i + 1) & mask
        slot[i] = t
        index_of[t] = i

    # ---- per-CPU split ----------------------------------------------------------
    def cpu_split(vals):
        parts = [[0] * 6 for _ in range(cpus)]
        active = sorted(set([0] + r.sample(range(cpus), r.randrange(1, cpus + 1)))) if cpus > 1 else [0]
        if r.random() < 0.2 and cpus > 1:
            active = [c for c in active if c != 0] or [cpus - 1]    # only other CPUs used it
        for k in range(6):
            for c, v in zip(active, split(r, vals[k], len(active))):
                parts[c][k] = v
        return parts

    per = {}
    for t in allkeys:
        per[t] = cpu_split(totals[t])
    tabbufs = [bytearray(size * esz) for _ in range(cpus)]
    for t in hashed_keys:
        i = index_of[t]
        key = struct.unpack('<I', t)[0]
        for c in range(cpus):
            vals = per[t][c]
            if c == 0 or any(vals):
                tabbufs[c][i * esz:(i + 1) * esz] = pack_entry(m, esz, key, vals)
    if overflow:
        ov = cpu_split(overflow)
        for c in range(cpus):
            if any(ov[c]):
                tabbufs[c][(size - 1) * esz:size * esz] = pack_entry(m, esz, 0, ov[c])
    for c in range(cpus):
        m.vw(tables[c], bytes(tabbufs[c]))

    exp_va = 0
    if expansion_n:
        exp_va = m.np_alloc(max(len(exp_keys) * esz, PAGE), b'Pool')
        buf = b''
        for t in exp_keys:
            buf += pack_entry(m, esz, struct.unpack('<I', t)[0], totals[t])
        m.vw(exp_va, buf)

    # ---- globals in nt .data near &PoolTrackTable (§2.8) ------------------------
    while True:
        ptt_var = d.alloc(psz, psz, lo=0x3000, hi=d.size - 0x3000)
        form = scen.get('size_form') or r.choice(['before', 'before', 'pair-near', 'mask-first'])
        if form == 'before':
            s_off = ptt_var - psz - d.va
            mk_off = s_off - psz
        else:
            s_off = ptt_var - d.va + r.choice([-1, 1]) * r.randrange(2, 0x2F0) * psz
            mk_off = s_off + psz if form == 'pair-near' else s_off - psz
        if d.free(s_off, psz) and d.free(mk_off, psz):
            break
        d.taken.remove((ptt_var - d.va, ptt_var - d.va + psz))
    size_var, mask_var = d.at(s_off, psz), d.at(mk_off, psz)
    m.wptr(ptt_var, tables[0])
    bad_size = defect == 'pool-bad-size'
    m.wptr(size_var, size if not bad_size else size + 2)
    m.wptr(mask_var, mask if not bad_size else (mask >> 1) + 5)
    m.kdbg_put(0x1B8, ptt_var)
    # ExPoolTagTables[]: slot count per era; [0] == PoolTrackTable; unused slots NULL
    slots = 64 if m.bits == 32 else (640 if esz == 0x28 else (1280 if esz == 0x38 else 2048))
    ept = None
    if m.build >= 3790:
        ept = d.alloc(slots * psz, 16)
        m.vw(ept, b''.join(m.P(t) for t in tables))
    # expansion pair (P, N)
    exp_pair = None
    if expansion_n or r.random() < 0.5:
        exp_pair = d.alloc(2 * psz, psz, lo=ptt_var - d.va - 0x2F00, hi=ptt_var - d.va + 0x2F00)
        m.vw(exp_pair, m.P(exp_va) + m.P(len(exp_keys) if expansion_n else 0))

    # ---- big-page table (§3) ------------------------------------------------
    big_va = m.np_alloc(max(big_n * besz, PAGE), b'Pool')
    bigpool, bigbuf = build_bigpages(m, scen, big_n, besz, totals)
    if defect == 'bigpool-garbage':
        bigbuf = bytes(r.randrange(256) for _ in range(len(bigbuf)))
    m.vw(big_va, bigbuf)
    while True:
        bt_var = d.alloc(psz, psz, lo=ptt_var - d.va - 0x2F00, hi=ptt_var - d.va + 0x2F00)
        bs_off = bt_var - d.va + r.choice([psz, -psz, 2 * psz, r.randrange(-0x100, 0x100) * psz])
        if d.free(bs_off, psz):
            bs_var = d.at(bs_off, psz)
            break
        d.taken.remove((bt_var - d.va, bt_var - d.va + psz))
    m.wptr(bt_var, big_va)
    m.wptr(bs_var, big_n if defect != 'bigpool-garbage' else 0x1234567)
    inuse = sum(1 for e in bigpool if not e['free'])
    # ExpPoolBigEntriesInUse nearby, and sometimes the hash mask next to the size
    ebu = d.alloc(4, 4, lo=ptt_var - d.va - 0x2F00, hi=ptt_var - d.va + 0x2F00)
    m.w32(ebu, inuse)

    # ---- pool defects -----------------------------------------------------------
    expect = None
    pool_null = False
    if defect == 'pool-tracker-absent':
        m.wptr(ptt_var, m.hole_va + 0x2000)       # PoolTrackTable -> page behind an absent page table
        expect = {'exit': 1, 'exit_ok': [1], 'kind': 'PoolTrackTable points into an absent page',
                  'null_sections': ['pool', 'suspects']}
        pool_null = True
    elif bad_size:
        if m.bits == 32:
            expect = {'exit': 1, 'exit_ok': [1], 'kind': 'x86: PoolTrackTableSize/Mask do not validate',
                      'null_sections': ['pool', 'suspects']}
            pool_null = True
        else:
            expect = {'exit': 0, 'exit_ok': [0, 1],
                      'kind': 'Size/Mask pair invalid; x64 hash-probe sizing still finds 2^%d+1' % n}
    elif defect == 'bigpool-garbage':
        expect = {'exit': 1, 'exit_ok': [1], 'kind': 'big-page table size/content garbage',
                  'null_sections': ['bigpool']}

    # ---- truth: pool ----------------------------------------------------------
    def wrapped_sum(vals_list, k):
        return sum(v[k] for v in vals_list)
    tags = []
    for t in allkeys:
        v = totals[t]
        if not any(v):
            continue
        tags.append(tag_entry(t, v))
    if overflow:
        e = tag_entry(None, overflow)
        tags.append(e)
    tags.sort(key=lambda e: (e['key'] is None, e['key'] or ''))
    tot = {'nonpaged': {k: 0 for k in ('allocs', 'frees', 'diff', 'bytes')},
           'paged': {k: 0 for k in ('allocs', 'frees', 'diff', 'bytes')}}
    for e in tags:
        for p in ('nonpaged', 'paged'):
            for k in tot[p]:
                tot[p][k] += e[p][k]
    pool = {'source': 'tracker', 'processors_summed': cpus, 'tags': tags, 'totals': tot}

    # ---- vm: Mm counters + descriptors -----------------------------------------
    vm, layout_desc = build_vm(m, scen, tot, r)
    if pool_null and vm['usage_source'] == 'tracker':
        vm['nonpaged_pool_pages'] = vm['paged_pool_pages'] = None
        vm['usage_source'] = None

    layout = {
        'tracker_va': hex(tables[0]), 'tracker_entries': size, 'tracker_mask': mask,
        'entry_size': esz, 'pool_track_table_var': hex(ptt_var),
        'size_var': hex(size_var), 'mask_var': hex(mask_var), 'size_form': form,
        'size_var_delta': size_var - ptt_var,
        'percpu_va': hex(ept) if ept else None, 'percpu_slots': slots if ept else 0, 'percpu_tables': [hex(t) for t in tables],
        'expansion_pair_var': hex(exp_pair) if exp_pair else None,
        'expansion_va': hex(exp_va) if exp_va else None, 'expansion_entries': len(exp_keys),
        'overflow_index': size - 1, 'overflow_used': bool(overflow),
        'bigpage_va': hex(big_va), 'bigpage_entries': big_n, 'bigpage_entry_size': besz,
        'bigpage_table_var': hex(bt_var), 'bigpage_size_var': hex(bs_var),
        'bigpage_table_delta': bt_var - ptt_var, 'bigpage_size_delta': bs_var - ptt_var,
        'big_entries_in_use_var': hex(ebu),
        'key_home': {tag_str(t): index_of[t] for t in ([pool_key] + [t for t, _ in fixed]) if t in index_of},
    }
    layout.update(layout_desc)
    out = {'vm': vm, 'pool': None if pool_null else pool,
           'bigpool': None if defect == 'bigpool-garbage' else
           {'entries': [e for e in bigpool if not e['free']],
            'free_entries': [e for e in bigpool if e['free']]},
           'layout': layout}
    if expect:
        out['expect'] = expect
    return out


def tag_entry(t, v):
    a, f, b, pa, pf, pb = v
    return {'tag': tag_str(t) if t is not None else '(overflow)',
            'key': '0x%08x' % struct.unpack('<I', t)[0] if t is not None else None,
            'nonpaged': {'allocs': a, 'frees': f, 'diff': a - f, 'bytes': b},
            'paged': {'allocs': pa, 'frees': pf, 'diff': pa - pf, 'bytes': pb}}


def build_bigpages(m, scen, big_n, besz, totals):
    """Entries: in-use (page-aligned Va), freed (Va|1, old data kept), never used (Va = 1)."""
    r = m.rng
    old = m.build < 6000                 # 2000/XP/2003: NumberOfPages, no PoolType
    win10 = m.build >= 10240
    mask = big_n - 1
    allocs = []
    for t, sizes, ptype in scen.get('big', []):
        t = t if isinstance(t, bytes) else t.encode('latin1')
        for s in sizes:
            allocs.append((t, s, ptype))
    nrand = r.randrange(10, 60)
    pool_types = [0, 0x200, 1] if m.build >= 9200 else [0, 1]
    for _ in range(nrand):
        t = r.choice([b'MmCm', b'EtwB', b'CM31', b'Ntfx', b'FMsl', b'Vi54', b'TcpE', b'Ddk '])
        allocs.append((t, r.randrange(1, 64) * PAGE - (r.randrange(0, 0x800) if not old and r.random() < .3 else 0),
                       r.choice(pool_types)))
    nfree = r.randrange(5, 40)
    assert len(allocs) + nfree < big_n * 3 // 4, 'big-page table too small'
    va_next = m.np_next + 0x10000000 + r.randrange(0, 0x1000) * PAGE
    if m.bits == 32:
        va_next = scen.get('big_va32', 0x90000000) + r.randrange(0, 0x1000) * PAGE
    buf = bytearray(big_n * besz)
    used = {}
    # never-used slots: Va = 1
    for i in range(big_n):
        put_big(m, buf, i * besz, besz, 1, 0, 0, 0, old, win10)
    entries = []

    def place(va):
        h = 40543 * (va >> 12)
        i = ((h & M32) ^ (h >> 32)) & mask
        while i in used:
            i = (i + 1) & mask
        return i
    items = [(t, s, p, False) for t, s, p in allocs] + \
            [(r.choice(HOT), r.randrange(1, 16) * PAGE, r.choice(pool_types), True) for _ in range(nfree)]
    r.shuffle(items)
    for t, s, ptype, free in items:
        va = va_next
        va_next += (s + PAGE - 1) & ~(PAGE - 1)
        va_next += r.randrange(0, 4) * PAGE
        i = place(va)
        used[i] = va
        key = struct.unpack('<I', t)[0]
        put_big(m, buf, i * besz, besz, va | (1 if free else 0), key,
                ptype, s, old, win10, r.randrange(0x1000) if m.bits == 64 else 0)
        if old:
            nbytes = ((s + PAGE - 1) // PAGE) * PAGE
            pname = None
        else:
            nbytes = s
            pname = 'paged' if ptype & 1 else ('nonpaged-nx' if ptype & 0x200 else 'nonpaged')
        entries.append({'va': hex(va), 'tag': tag_str(t), 'bytes': nbytes, 'pool': pname,
                        'free': free, 'index': i})
    entries.sort(key=lambda e: int(e['va'], 16))
    return entries, bytes(buf)


def put_big(m, buf, off, besz, va, key, ptype, nbytes, old, win10, billed=0):
    pages = (nbytes + PAGE - 1) // PAGE
    if m.bits == 64:
        if old:
            struct.pack_into('<QIIQ', buf, off, va, key, pages, 0)
        else:
            pt = ((ptype & 0xFFF) << 8) | (0x5A if win10 and key else 0) if win10 else ptype
            struct.pack_into('<QIIQ', buf, off, va, key, pt, nbytes)
            if besz == 0x20:
                struct.pack_into('<Q', buf, off + 0x18, 0xffff800000000000 | billed << 12 if billed else 0)
    else:
        if besz == 0x0C:
            struct.pack_into('<III', buf, off, va, key, pages)
        elif old:
            struct.pack_into('<IIII', buf, off, va, key, pages, 0)
        else:
            pt = ((ptype & 0xFFF) << 8) | (0x5A if win10 and key else 0) if win10 else ptype
            struct.pack_into('<IIII', buf, off, va, key, pt, nbytes)


def build_vm(m, scen, tot, r):
    """Mm counters (KDBG A-var targets) and pool descriptors (§5.2)."""
    v = dict(scen.get('vm', {}))
    phys = v.get('physical_pages') or m.phys.total
    v.setdefault('physical_pages', phys)
    v.setdefault('available_pages', int(phys * r.uniform(0.3, 0.8)))
    v.setdefault('resavail_pages', int(phys * r.uniform(0.6, 0.9)))
    v.setdefault('modified_pages', r.randrange(10, max(11, phys // 50)))
    v.setdefault('commit_limit_pages', phys + r.randrange(phys // 2, phys * 2))
    v.setdefault('committed_pages', int(v['commit_limit_pages'] * r.uniform(0.1, 0.6)))
    c = v['committed_pages']
    v.setdefault('shared_commit_pages', r.randrange(c // 40, c // 8))
    v.setdefault('driver_commit_pages', r.randrange(c // 100, c // 20))
    v.setdefault('process_commit_pages', r.randrange(c // 40, c // 8))
    v.setdefault('paged_pool_commit_pages', r.randrange(c // 40, c // 8))
    if m.bits == 64 and m.build >= 10240:
        v.setdefault('nonpaged_pool_max_pages', 4294967296)
        v.setdefault('paged_pool_max_pages', 4294967296)
    else:
        v.setdefault('nonpaged_pool_max_pages', r.randrange(30000, 70000))
        v.setdefault('paged_pool_max_pages', r.randrange(38000, 90000))
    set_var(m, 0xF8, v['physical_pages'])
    set_var(m, 0x1A8, v['available_pages'])
    set_var(m, 0x1B0, v['resavail_pages'])
    set_var(m, 0x148, v['commit_limit_pages'])
    set_var(m, 0x150, v['committed_pages'])
    set_var(m, 0x158, v['shared_commit_pages'])
    set_var(m, 0x168, v['process_commit_pages'])
    # ULONG variables; on x64 the following 4 bytes may hold unrelated data (§1.4 rule)
    for off, key in ((0x160, 'driver_commit_pages'), (0x170, 'paged_pool_commit_pages')):
        va = set_var(m, off, v[key], 4)
        if m.bits == 64 and r.random() < 0.5:
            m.w32(va + 4, r.randrange(1, 1 << 32))
    set_var(m, 0x100, v['nonpaged_pool_max_pages'] * PAGE)
    set_var(m, 0x140, v['paged_pool_max_pages'] * PAGE)
    set_var(m, 0x258, v['committed_pages'] + r.randrange(0, 5000))   # MmPeakCommitment
    set_var(m, 0x260, v['commit_limit_pages'] * 2)                    # MmTotalCommitLimitMaximum
    set_var(m, 0xE8, 1)                               # MmLowestPhysicalPage
    set_var(m, 0xF0, m.phys.max_pfn - 1)              # MmHighestPhysicalPage
    # MMPFNLIST heads: Total at +0
    for off, val in ((0x180, r.randrange(0, 5000)), (0x188, r.randrange(0, 5000)),
                     (0x190, r.randrange(0, 50000)), (0x198, v['modified_pages']), (0x1A0, 0)):
        va = m.kdbg_vars.get(off)
        if va:
            m.wptr(va, val) if m.bits == 64 else m.w32(va, val)
    # pool descriptors
    np_bytes_pages = (tot['nonpaged']['bytes'] + PAGE - 1) // PAGE
    p_bytes_pages = (tot['paged']['bytes'] + PAGE - 1) // PAGE
    layout = {}
    kdbg_np = None
    if m.build < 6000:
        era, tp_off, tb_off, ra_off, rd_off = 'xp-2003', 0x10, 0x14, 0x8, 0xC
    elif m.build < 14393:
        era, tp_off, tb_off, ra_off, rd_off = 'win7-1511', 0xC0, 0x48, 0x40, 0x44
    else:
        era = None
    if era:
        np_pages = v.get('nonpaged_pool_pages') or np_bytes_pages + r.randrange(0, 300)
        paged = v.get('paged_pools') or [p_bytes_pages + r.randrange(0, 300)] + \
            [r.randrange(300, 800) for _ in range(r.choice([0, 2, 4]))]
        dsz = 0x140 if era == 'xp-2003' else 0x1140

        def desc(total_pages, ptype, index):
            b = bytearray(dsz)
            big = r.randrange(0, total_pages // 2 + 1)
            struct.pack_into('<II', b, 0, ptype, index) if era == 'xp-2003' else \
                struct.pack_into('<I', b, 0x80, index)
            struct.pack_into('<II', b, ra_off, r.randrange(10**5, 10**7), r.randrange(10**4, 10**5))
            struct.pack_into('<I', b, tp_off, total_pages - big)
            struct.pack_into('<I', b, tb_off, big)
            return bytes(b), big
        np_desc = struct.unpack_from('<Q', m.kdbg_bytes, 0x1C0)[0] & ((1 << m.bits) - 1)
        if m.data_area.free(np_desc - m.data_area.va, dsz):
            m.data_area.at(np_desc - m.data_area.va, dsz)
        else:
            np_desc = m.data_area.alloc(dsz, 16)
        m.kdbg_put(0x1C0, np_desc)
        b, _ = desc(np_pages, 0, 0)
        m.vw(np_desc, b)
        npools = len(paged) - 1
        ptrs = []
        for i, pg in enumerate(paged):
            dva = m.np_alloc(dsz, b'Pool')
            m.vw(dva, desc(pg, 1, i)[0])
            ptrs.append(dva)
        # ExpPagedPoolDescriptor: an array of descriptor pointers (0..N)
        arrva = m.data_area.alloc(psz_(m) * (len(ptrs) + 1), 8)
        m.vw(arrva, b''.join(m.P(p) for p in ptrs))
        m.kdbg_put(0x68, arrva)
        set_var(m, 0x70, npools, 4)
        layout = {'descriptor_era': era, 'nonpaged_descriptor': hex(np_desc),
                  'paged_descriptors': [hex(p) for p in ptrs], 'paged_descriptor_array': hex(arrva),
                  'descriptor_size': dsz}
        vm_np, vm_p = np_pages, sum(paged)
        src = 'descriptors'
        set_var(m, 0x250, np_pages, 4)                # MmAllocatedNonPagedPool (pages) cross-check
        v['paged_pool_usage_per_pool'] = paged
    else:
        vm_np, vm_p, src = np_bytes_pages, p_bytes_pages, 'tracker'
    out = {
        'page_size': PAGE,
        'physical_pages': v['physical_pages'], 'available_pages': v['available_pages'],
        'resavail_pages': v['resavail_pages'], 'modified_pages': v['modified_pages'],
        'nonpaged_pool_pages': vm_np, 'nonpaged_pool_nx_pages': None,
        'nonpaged_pool_max_pages': v['nonpaged_pool_max_pages'],
        'paged_pool_pages': vm_p, 'paged_pool_max_pages': v['paged_pool_max_pages'],
        'committed_pages': v['committed_pages'], 'commit_limit_pages': v['commit_limit_pages'],
        'shared_commit_pages': v['shared_commit_pages'], 'driver_commit_pages': v['driver_commit_pages'],
        'process_commit_pages': v['process_commit_pages'],
        'paged_pool_commit_pages': v['paged_pool_commit_pages'], 'usage_source': src,
    }
    if 'paged_pool_usage_per_pool' in v:
        layout['paged_pool_usage_per_pool'] = v['paged_pool_usage_per_pool']
    loose = ['nonpaged_pool_nx_pages']
    if m.bits == 64 and m.build >= 10240:
        loose += ['nonpaged_pool_max_pages', 'paged_pool_max_pages']
    layout['vm_loose'] = loose
    return out, layout


def psz_(m):
    return m.psz
