#!/usr/bin/env python3
"""dumpleak forge: writes synthetic Windows kernel crash dumps + truth JSON.
See README.md.  Spec: /work/shared/spec/dump-format.md, pool-internals.md,
cli-contract.md."""
import argparse
import hashlib
import json
import os
import random
import struct
import sys
import time

sys.dont_write_bytecode = True          # keep tests/forge free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kernel
import special
import headers
import triage
import truth as T
import scenarios
import defects

PAGE = 0x1000
X86_BUILDS = [2600, 3790, 7601, 9600, 19041]
X64_BUILDS = [3790, 7601, 9600, 19041, 22631, 26100]
ARM64_BUILDS = [16299, 19041, 22000, 22631, 26100]


def valid_combo(arch, dtype, build):
    """dump-format §2.1 "Combinations that exist"."""
    if arch == 'arm64':
        return dtype == 4 and build >= 16299
    if arch == 'x86' and build >= 9200:
        return False                       # non-PAE only below 9200
    if arch in ('x86', 'x86-pae'):
        if build > 19045 or build < 2195:
            return False
    if arch == 'x64' and build < 3790:
        return False
    if dtype == 1 or dtype == 4:
        return True
    if dtype == 2:
        return build < 9200
    if dtype in (5, 6):
        return build >= 9200
    if dtype in (8, 9, 10):
        return arch == 'x64'
    return False


def seeded(seed, *parts):
    h = hashlib.sha256(('%s|' % seed + '|'.join(map(str, parts))).encode()).digest()
    return random.Random(int.from_bytes(h[:8], 'little'))


def generate(a):
    arch, dtype, build = a.arch, a.type, a.build
    if not valid_combo(arch, dtype, build):
        sys.stderr.write('forge: invalid combination arch=%s type=%d build=%d (dump-format §2.1)\n'
                         % (arch, dtype, build))
        sys.exit(2)
    scen = scenarios.get(a.scenario, arch, build, dtype)
    # twins (kdbg-encoded, kdbg-bad-pointer) draw the same main stream as the default scenario
    rscen = scen['twin_of'] if 'twin_of' in scen else (None if a.scenario == 'default' else a.scenario)
    rng = seeded(a.seed, arch, dtype, build, rscen, a.phys_mb, a.cpus)
    phys_mb = a.phys_mb or scen.get('phys_mb') or 256
    if arch == 'x86' and phys_mb > 4096:
        raise SystemExit('forge: non-PAE x86 holds at most 4 GiB')
    cpus = a.cpus or scen.get('cpus') or 2
    kernel_only = dtype in (2, 6, 8, 9)
    m = kernel.Machine(arch, build, rng, phys_mb, cpus, kernel_only)
    m.scen = scen
    m.aux = seeded(a.seed, arch, dtype, build, a.scenario, a.phys_mb, a.cpus, 'aux')
    kernel.layout_vas(m)
    special.build_large(m)
    kernel.build_modules(m, scen)
    kernel.build_processes(m)
    year = scen.get('year') or kernel.YEAR.get(build, 2020)
    systime = scen.get('system_time') or kernel.filetime(year, rng)
    kernel.build_unloaded(m, scen, systime)
    kernel.build_kdbg(m, scen)
    kernel.write_ldr_list(m)
    special.build_special(m, scen)
    special.build_random(m)
    pool_truth = None
    if scen.get('pool', True) and dtype != 4 and arch != 'arm64':
        import pool
        pool_truth = pool.build(m, scen, a.defect)
    ctx0 = {}
    if a.defect:
        defects.check_type(a.defect, dtype)
        defects.pre(a.defect, m, scen, ctx0)
    kernel.finish_kdbg(m)
    # crash context: a stack page and a data page (for triage)
    m.stack_top = m.np_alloc(0x2000, b'Stak') & ~0xF
    special.build_prototype(m, seeded(a.seed, arch, dtype, build, rscen, a.phys_mb, a.cpus, 'proto'))
    m.data_page_va = m.modules[-1].base + 0x1000
    m.crash_ip = m.modules[-1].base + 0x1000 + rng.randrange(0x100, 0x800)

    # ---- header values ------------------------------------------------
    hdr_size = 0x2000 if m.bits == 64 else 0x1000
    dtb = m.pt.root
    if arch == 'x64' and scen.get('pcid', rng.random() < 0.5):
        dtb |= rng.randrange(1, 0x1000) & 0xFFF        # PCID bits in [11:0] (§1.3)
    if 'attributes' in scen:
        attributes = scen['attributes']
    else:
        attributes = rng.choice([None, None, 0, 8]) if dtype == 4 else rng.choice([None, 0, 0x20])
    bc = scen.get('bugcheck') or rng.choice([
        (0xD1, [m.np_next + 0x1008, 2, 0, m.crash_ip]),
        (0x1000007E if m.bits == 64 else 0x7E, [0xC0000005, m.crash_ip, m.stack_top - 0x400, m.stack_top - 0x800]),
        (0xE2, [0, 0, 0, 0]),
        (0x133, [1, 0x1E00, m.np_next, 0]),
    ])
    code, params = bc
    if code == 0x161:
        attributes = (attributes or 0) | 0x10
    pfn_form = scen.get('pfn_form') or ('array' if attributes and attributes & 8 else
                                         rng.choice(['variable', 'array']))
    h = {
        'major': 0xF, 'minor': build, 'dtb': dtb,
        'pfn_database': m.kdbg_vars[0xC0] if pfn_form == 'variable' else m.pfndb, 'pfn_form': pfn_form,
        'ps_loaded_module_list': m.psloaded, 'ps_active_process_head': m.pshead,
        'machine': kernel.MACHINE[arch], 'processors': cpus,
        'bugcheck_code': code, 'bugcheck_params': params,
        'pae': arch == 'x86-pae' if m.bits == 32 else None,
        'kdbg': getattr(m, 'header_kdbg', m.kdbg), 'dump_type': dtype,
        'system_time': systime, 'system_uptime': rng.randrange(10**9, 10**13),
        'attributes': attributes,
        'comment': scen.get('comment', rng.choice([None, 'dumpleak forge'])),
        'product_type': scen.get('product_type', 3 if build in (3790,) else 1),
        'suite_mask': scen.get('suite_mask', 0x110 if build != 3790 else 0x112),
        'writer_status': rng.choice([None, 0]) if build >= 7600 else None,
        'boot_id': rng.randrange(1, 500) if build >= 9200 else None,
        'sp': m.stack_top - 0x200, 'ip': m.crash_ip,
        'runs': None, 'mini_dump_fields': 0x45474150 if dtype != 4 else 0,
    }
    if dtype != 4 and m.bits == 64:
        h['mini_dump_fields'] = 0x45474150
    # ---- body -----------------------------------------------------------
    if dtype in (1, 5, 10):
        present = [[b, n] for b, n in m.phys.runs]          # all RAM
    else:
        # kernel-only: every page the forge used + clustered extra (user/cache) pages
        pset = set(p for p in (m.phys.used | set(m.phys.data)) if m.phys.in_ram(p))
        extra_frac = 0.2 if dtype == 9 else 0.03
        want, got = int(m.phys.total * extra_frac), 0
        runs_w = [n for _, n in m.phys.runs]
        while got < want:
            b, n = rng.choices(m.phys.runs, runs_w)[0]
            st = rng.randrange(b, b + n)
            for p in range(st, min(st + rng.choice([1, 3, 16, 64, 256, 1024]), b + n)):
                if p not in pset:
                    pset.add(p)
                    got += 1
        present = headers.ranges_of(sorted(pset - m.excluded))
    legacy = dtype == 2 and (a.type2_layout == 'legacy' or
                             (a.type2_layout is None and scen.get('type2_layout') == 'legacy'))
    tmodules = None
    if dtype == 4:
        name_form = scen.get('name_form') or ('bare' if attributes and attributes & 8 else
                                              rng.choice(['path', 'path', 'bare']))
        out, total, fields, tmodules = triage.build(m, hdr_size, attributes, name_form, rng)
        h['mini_dump_fields'] = fields
        ext = []
        body_info = dict(m.triage_info, name_form=name_form)
    else:
        out, ext, total, runs = headers.body(m, dtype, present, hdr_size, legacy=legacy)
        h['runs'] = runs
        if dtype == 5 and scen.get('runs_in_bitmap', rng.random() < 0.3):
            h['runs'] = m.phys.runs        # some type-5 dumps carry the real RAM layout
        headers.put_pages(m, out, ext)
        body_info = getattr(m, 'bitmap_info', None) or getattr(m, 'rdmp_info', None) or {}
        if legacy:
            body_info = dict(body_info, layout='legacy')
    h['required_dump_space'] = total
    ctx = {'m': m, 'h': h, 'out': out, 'ext': ext, 'total': total, 'rng': rng,
           'present': present if dtype != 4 else [], 'dtype': dtype, 'hdr_size': hdr_size,
           'legacy': legacy, 'tmodules': tmodules}
    ctx.update(ctx0)
    # ---- defects (may rewrite h / out / ext / total) ---------------------
    expect = {'exit': 0, 'exit_ok': [0], 'kind': 'good'}
    if dtype == 4:
        expect = {'exit': 1, 'exit_ok': [1], 'kind': 'triage: no pool or memory-manager data',
                  'null_sections': ['vm', 'pool', 'bigpool', 'suspects']}
    elif pool_truth is None:
        expect = {'exit': 1, 'exit_ok': [1], 'kind': 'no pool data in this scenario',
                  'null_sections': ['pool', 'bigpool']}
    elif pool_truth.get('expect'):
        expect = pool_truth.pop('expect')
    raw_file = None
    if a.defect:
        expect, raw_file = defects.apply(a.defect, ctx, expect)
    h = ctx['h']
    hb = headers.header(m, h)
    ctx['out'].put(0, hb)
    size = ctx['total'] if ctx.get('file_size') is None else ctx['file_size']
    if raw_file is not None:
        with open(a.out, 'wb') as f:
            f.write(raw_file)
    else:
        ctx['out'].write(a.out, size)
        if ctx.get('post'):
            ctx['post'](a.out)
    # ---- truth ------------------------------------------------------------
    ext = [[p, n, o] for p, n, o in ctx['ext']]
    clamped = []
    for p, n, o in ext:                      # clamp extents at EOF (§3.2)
        if o >= size:
            continue
        n = min(n, (size - o) // PAGE)
        if n > 0:
            clamped.append([p, n, o])
    ext = sorted(clamped)
    merged = []
    for p, n, o in ext:
        if merged and merged[-1][0] + merged[-1][1] == p and merged[-1][2] + merged[-1][1] * PAGE == o:
            merged[-1][1] += n
        else:
            merged.append([p, n, o])
    pages_present = sum(n for _, n, _ in merged) if dtype != 4 else None
    tr = {
        'schema': 'forge/1',
        'scenario': a.scenario or 'default', 'defect': a.defect, 'seed': a.seed,
        'arch': arch, 'type': dtype, 'build': build, 'phys_mb': phys_mb, 'cpus': cpus,
        'file_size': size,
        'expect': expect,
        'header': T.header_truth(m, h),
        'body': body_info,
        'info': T.info(m, h, arch, dtype, pages_present,
                       None if ctx.get('kdbg_bad') else m.build_lab, not ctx.get('kdbg_bad')),
        'notes': m.notes,
    }
    if ctx.get('wrapper'):
        tr['info']['source']['wrapper'] = ctx['wrapper']
    if scen.get('kdbg_encoded'):
        tr['info']['source']['kdbg_encoded'] = True
    if scen.get('kdbg_bad_pointer'):
        tr['info']['source']['kdbg_from'] = 'scan'
    if dtype != 4:
        tr['phys'] = phys_truth(m, merged, rng)
        tr['vtop'] = vtop_samples(m, merged, rng)
        tr['random_pt'] = m.random_pt
        tr['ram_runs'] = [[b, n] for b, n in m.phys.runs]
    else:
        tr['phys'] = None
        tr['vtop'] = []
    mods = tmodules or {
        'loaded': [{'name': mod.name, 'path': mod.path, 'base': hex(mod.base), 'size': mod.size}
                   for mod in m.modules],
        'unloaded': m.unloaded}
    if ctx.get('kdbg_bad'):
        mods = dict(mods, unloaded=None)          # MmUnloadedDrivers is only reachable through KDBG
    if ctx.get('file_size') is not None and dtype != 4 and expect.get('exit_ok') == [0, 1]:
        lost = 0
        for p in m.phys.data:
            for fp, n, o in ctx['ext']:
                if fp <= p < fp + n:
                    if o + (p - fp + 1) * PAGE > size:
                        lost += 1
                    break
        expect['content_pages_lost'] = lost       # 0 -> every structure is still readable
    if ctx.get('modules_override_n') is not None:
        mods = dict(mods, loaded=mods['loaded'][:ctx['modules_override_n']], partial=True)
    tr['modules'] = mods
    tr['kernel'] = {
        'nt_base': hex(m.nt_base), 'kdbg': hex(m.kdbg), 'kdbg_size': m.kdbg_size,
        'ps_loaded_module_list': hex(m.psloaded), 'build_lab': m.build_lab,
        'exports': {k: hex(v) for k, v in sorted(m.nt_exports.items())},
        'tag_sites': {mod.name: [[t.decode('latin1'), hex(v)] for t, v in getattr(mod, 'tag_sites', [])]
                      for mod in m.modules if getattr(mod, 'tag_sites', None)},
        'iat': {mod.name: {k: hex(v) for k, v in mod.iat.items()} for mod in m.modules
                if getattr(mod, 'iat', None)},
        'imports_in_init': sorted(mod.name for mod in m.modules if getattr(mod, 'imports_in_init', False)),
    }
    if getattr(m, 'kdbg_encoding', None):
        tr['kernel']['kdbg_encoding'] = m.kdbg_encoding
    if pool_truth and ctx.get('kdbg_bad'):
        pool_truth.update(vm=None, pool=None, bigpool=None)   # nothing reachable without KDBG
    if pool_truth:
        tr.update(pool_truth)
        if tr.get('pool'):
            import suspects as S
            tr['suspect_hints'] = suspect_hints(m, tr['pool'], S.Present(merged))
    if dtype != 4 and not (a.defect and expect.get('exit') in (3, 4)):
        import suspects as S
        present = S.Present(merged)
        pages = S.image_pages(m, present)
        tr['image_pages'] = pages
        sus = S.build(m, scen, present, tr.get('pool'), (tr['modules'] or {}).get('unloaded') or [], pages)
        if sus is not None:
            tr['suspects'] = sus
    if scen.get('pooltag'):
        pt_path = os.path.splitext(a.out)[0] + '.pooltag.txt'
        with open(pt_path, 'w') as f:
            f.write('# pooltag.txt-format lines written by the forge (<Tag> - <binary> - <description>)\n')
            for line in scen['pooltag']:
                f.write(line + '\n')
        tr['pooltag_file'] = os.path.basename(pt_path)
    if ctx.get('truth_patch'):
        ctx['truth_patch'](tr)
    with open(a.truth, 'w') as f:
        json.dump(tr, f, indent=1, sort_keys=False)
        f.write('\n')
    return tr


def suspect_hints(m, pool, present):
    """Where each pool tag's 4 bytes occur in the *resident* pages of each loaded image
    (the !for_each_module s-a equivalent, pool-internals §4.3), plus, for None/Ddk/Wdm,
    modules whose IAT holds a resolved allocator export (§4.4)."""
    import pool as P
    import suspects as S
    images = []
    for mod in m.modules:
        sec = [(n, rva, sz) for n, rva, sz, _ in mod.image.sections]
        images.append((mod, S._runs(m, mod, present), sec))
    out = {}
    # the tags `suspect` looks at by default: top 20 of each pool + the default-tag names
    tags = [t for t in pool['tags'] if t['key'] is not None]
    pick = set(t['tag'] for t in sorted(tags, key=lambda t: -t['nonpaged']['bytes'])[:20])
    pick |= set(t['tag'] for t in sorted(tags, key=lambda t: -t['paged']['bytes'])[:20])
    pick |= {'None', 'Ddk ', 'Wdm ', 'Leak'}
    for t in tags:
        if t['tag'] not in pick:
            continue
        key = int(t['key'], 16).to_bytes(4, 'little')
        hits = []
        for mod, runs, sec in images:
            offs = []
            for start, blob in runs:
                i = blob.find(key)
                while i >= 0 and len(offs) < 16:
                    offs.append(start + i)
                    i = blob.find(key, i + 1)
            if offs:
                def secname(rva):
                    for n, a, sz in sec:
                        if a <= rva < a + sz:
                            return n
                    return 'headers'
                hits.append({'module': mod.name, 'offsets': [hex(o) for o in offs],
                             'sections': sorted(set(secname(o) for o in offs))})
        if hits:
            out[t['tag']] = hits
    allocs = {}
    for mod in m.modules:
        imp = sorted(k for k in getattr(mod, 'iat', {}) if k.startswith('ExAllocatePool'))
        if imp:
            allocs[mod.name] = imp
    return {'tag_in_image': out, 'allocator_imports': allocs}


def phys_truth(m, ext, rng):
    present = set()
    absent = []
    # a few RAM pfns not in the file, and a few outside RAM
    ram_runs = m.phys.runs
    def in_ext(p):
        return any(a <= p < a + n for a, n, _ in ext)
    tries = 0
    while len(absent) < 6 and tries < 5000:
        tries += 1
        b, n = rng.choice(ram_runs)
        p = rng.randrange(b, b + n)
        if not in_ext(p) and p not in absent:
            absent.append(p)
    absent += [0, 0x9f, 0xA0 + rng.randrange(0x5F), m.phys.max_pfn, m.phys.max_pfn + 12345]
    if any(b == 0x100000 for b, _ in ram_runs):
        absent.append(0xC0000 + rng.randrange(0x40000))
    absent = sorted(set(p for p in absent if not in_ext(p)))
    return {'extents': ext, 'pages_present': sum(n for _, n, _ in ext), 'absent_pfns': absent,
            'max_pfn': m.phys.max_pfn}


def vtop_samples(m, ext, rng):
    pt = m.pt

    def present(pa):
        p = pa >> 12
        return any(a <= p < a + n for a, n, _ in ext)

    vas = []
    pages = sorted(pt.oracle)
    valid = [v for v in pages if pt.oracle[v][0] == 'valid']
    for v in rng.sample(valid, min(12, len(valid))):
        vas += [v + rng.randrange(0, PAGE)]
    for v in (m.nt_base, m.kdbg, m.psloaded, m.ldr_entries[0], m.ldr_entries[-1]):
        vas.append(v)
    for lva, size, pa, kind in pt.large_maps:
        vas += [lva, lva + size - 1, lva + rng.randrange(size), lva + size // 2 - 1, lva + size // 2]
    for a, k in m.paged_pages:
        vas += [a + rng.randrange(PAGE)]
    for a, k in m.paged_pages[:-1]:
        vas += [a + 0xFFF, a + 0x1000]                 # both sides of each boundary
    vas += [m.tpde_va + 0x10, m.tpde_va + 0x1FFF, m.hole_va + 0x123, m.hole_va + 0x2FFF]
    # never-mapped addresses (zero PML4/PDE/PTE)
    if m.bits == 64:
        vas += [0xffffff0000001000 & ~0xFFF | 0x10, m.rand_va + m.rand_span + 0x40000000 + 8]
    else:
        vas += [0xbff00010, m.rand_va + m.rand_span + 0x400000 + 8]
    vas += [m.paged_va + 0x100 * PAGE]
    for va, k in getattr(m, 'proto_vas', ()):
        vas.append(va + (0x234 if k != 'vad' else 0))
    out = []
    seen = set()
    for va in vas:
        if va in seen:
            continue
        seen.add(va)
        e = pt.lookup(va)
        if e is None:
            kind, pa = 'not-present', None
        else:
            kind, pa = e
        note = None
        if m.tpde_va <= va < m.tpde_va + 3 * PAGE:
            note = 'pde-in-transition'
        if kind == 'prototype':
            note = 'prototype-' + dict(getattr(m, 'proto_vas', ()))[va & ~0xFFF]
        if kind == 'transition' and m.notes.get('swizzle_bit') and \
                (pt.rd(pt.pte_addr(va)) >> m.notes['swizzle_bit']) & 1:
            note = 'swizzled'
        d = {'va': hex(va), 'pa': None if pa is None else hex(pa), 'kind': kind,
             'present': bool(pa is not None and present(pa))}
        if note:
            d['note'] = note
        out.append(d)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description='dumpleak test-dump forge')
    ap.add_argument('--arch', choices=['x86', 'x86-pae', 'x64', 'arm64'])
    ap.add_argument('--type', type=int, choices=[1, 2, 4, 5, 6, 8, 9, 10])
    ap.add_argument('--build', type=int)
    ap.add_argument('--scenario', default=None)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--phys-mb', type=int, default=None)
    ap.add_argument('--cpus', type=int, default=None)
    ap.add_argument('--defect', default=None, choices=defects.NAMES)
    ap.add_argument('--type2-layout', choices=['modern', 'legacy'], default=None)
    ap.add_argument('--out')
    ap.add_argument('--truth')
    ap.add_argument('--matrix', metavar='DIR')
    ap.add_argument('--list-scenarios', action='store_true')
    a = ap.parse_args(argv)
    if a.list_scenarios:
        print('\n'.join(scenarios.names()))
        return 0
    if a.matrix:
        import matrix
        return matrix.run(a.matrix, a.seed)
    for k in ('arch', 'type', 'build', 'out', 'truth'):
        if getattr(a, k) is None:
            ap.error('--%s is required (or use --matrix DIR)' % k)
    if a.scenario and a.scenario not in scenarios.names():
        ap.error('unknown scenario %s (have: %s)' % (a.scenario, ', '.join(scenarios.names())))
    generate(a)
    return 0


if __name__ == '__main__':
    sys.exit(main())
