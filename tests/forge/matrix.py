"""--matrix DIR: the standard matrix (every valid arch/type/build, each defect, one big dump)."""
import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

X86 = [2600, 3790, 7601, 9600, 19041]
X64 = [3790, 7601, 9600, 19041, 22631, 26100]
SUSPECT = ['suspect-code', 'suspect-data', 'suspect-shared', 'suspect-absent', 'suspect-none',
           'suspect-unloaded', 'suspect-kmdf']


def jobs():
    out = []
    cpus = [1, 2, 8]
    k = 0

    def add(arch, t, build, scenario=None, defect=None, phys=None, layout=None, tag=None, seed=None,
            ncpu=None, twin=None):
        nonlocal k
        name = '%s_t%d_%d' % (arch, t, build)
        if tag:
            name += '_' + tag
        out.append(dict(arch=arch, type=t, build=build, scenario=scenario, defect=defect,
                        phys_mb=(64 if k % 2 else 96) if phys is None else (phys or None),
                        cpus=ncpu if ncpu else (None if scenario else cpus[k % 3]), type2_layout=layout,
                        name=name, seed=seed if seed is not None else 100 + k, twin=twin))
        k += 1
        return name
    for b in X86:
        for arch in (['x86', 'x86-pae'] if b < 9200 else ['x86-pae']):
            add(arch, 1, b)
            add(arch, 4, b)
            if b < 9200:
                add(arch, 2, b, layout='modern', tag='modern')
                add(arch, 2, b, layout='legacy', tag='legacy')
            else:
                add(arch, 5, b)
                add(arch, 6, b)
    for b in X64:
        for t in (1, 4, 8, 9, 10):
            add('x64', t, b)
        if b < 9200:
            add('x64', 2, b, layout='modern', tag='modern')
            add('x64', 2, b, layout='legacy', tag='legacy')
        else:
            add('x64', 5, b)
            add('x64', 6, b)
    add('arm64', 4, 22000)
    add('arm64', 4, 26100)
    # defects
    import defects
    base = {1: ('x64', 19041), 2: ('x86', 3790), 5: ('x64', 22631), 6: ('x86-pae', 9600), 8: ('x64', 26100)}
    for d in defects.FILE_DEFECTS + defects.MEM_DEFECTS:
        need = defects.NEEDS.get(d, (1,))
        t = need[0]
        arch, b = base[t]
        if d in ('gzip', 'zip', 'cab'):
            add('x64', 4, 19041, defect=d, tag=d)          # small inner dump
            if d == 'gzip':
                add('x86', 1, 2600, defect=d, tag=d, phys=32)
            continue
        add(arch, t, b, defect=d, tag=d)
        if d in ('truncated-body', 'bitmap-popcount-mismatch', 'module-cycle'):
            a2, b2 = base[need[1] if len(need) > 1 else 1]
            add(a2, need[1] if len(need) > 1 else t, b2, defect=d, tag=d + '2')
    for d in defects.POOL_DEFECTS:
        add('x64', 6, 19041, defect=d, tag=d)
        add('x86-pae', 1, 3790, defect=d, tag=d)
    # scenarios reproducing the case write-ups and named variants
    add('x86-pae', 1, 3790, scenario='case000', tag='case000', phys=0)
    add('x86-pae', 2, 3790, scenario='case001', layout='legacy', tag='case001', phys=0)
    add('x64', 6, 19041, scenario='case002', tag='case002', phys=0)
    add('x86', 2, 3790, scenario='case004', layout='modern', tag='case004', phys=0)
    add('x64', 2, 7601, scenario='win7', layout='legacy', tag='win7', phys=0)
    add('x86-pae', 1, 7601, scenario='win7', tag='win7', phys=0)
    add('x64', 6, 22631, scenario='win11', tag='win11', phys=0)
    add('x64', 5, 26100, scenario='win11', tag='win11', phys=0)
    add('x64', 1, 9600, scenario='expansion', tag='expansion')
    add('x86-pae', 6, 19041, scenario='overflow', tag='overflow')
    add('x64', 8, 19041, scenario='l1tf-bytes', tag='l1tf')
    add('x64', 1, 19041, scenario='nopool', tag='nopool')
    # the big one: > 4 GiB offsets, sparse
    add('x64', 5, 19041, phys=6144, tag='big', seed=7)
    # issue 4: suspect-driver scenarios on three configurations
    for arch, t, b in (('x64', 6, 19041), ('x86-pae', 1, 7601), ('x64', 5, 26100)):
        for sc in SUSPECT:
            add(arch, t, b, scenario=sc, tag=sc, phys=0)
    # KDBG twins: same seed/arch/type/build/phys/cpus as a default dump, so every section but
    # info.source (and header.kdbg for the bad pointer) must come out identical
    for i, (arch, t, b, sc) in enumerate((('x64', 5, 19041, 'kdbg-encoded'), ('x64', 1, 9600, 'kdbg-encoded'),
                                          ('x64', 8, 26100, 'kdbg-encoded'), ('x64', 1, 19041, 'kdbg-bad-pointer'),
                                          ('x86-pae', 6, 9600, 'kdbg-bad-pointer'))):
        tw = add(arch, t, b, phys=64, ncpu=2, seed=900 + i, tag='twin%d' % i)
        add(arch, t, b, scenario=sc, phys=64, ncpu=2, seed=900 + i, tag='%s%d' % (sc, i), twin=tw + '.dmp')
    return out


def _one(j, root):
    import forge
    a = argparse.Namespace(arch=j['arch'], type=j['type'], build=j['build'], scenario=j['scenario'],
                           seed=j['seed'], phys_mb=j['phys_mb'], cpus=j['cpus'], defect=j['defect'],
                           type2_layout=j['type2_layout'],
                           out=os.path.join(root, j['name'] + '.dmp'),
                           truth=os.path.join(root, j['name'] + '.json'))
    tr = forge.generate(a)
    e = {'dump': j['name'] + '.dmp', 'truth': j['name'] + '.json', 'arch': j['arch'],
         'type': j['type'], 'build': j['build'], 'scenario': j['scenario'] or 'default',
         'defect': j['defect'], 'seed': j['seed'], 'phys_mb': j['phys_mb'], 'cpus': j['cpus']}
    if j.get('twin'):
        e['twin'] = j['twin']
    if tr.get('pooltag_file'):
        e['pooltag'] = tr['pooltag_file']
    return e


def run(root, seed=1, extra=()):
    t0 = time.time()
    os.makedirs(root, exist_ok=True)
    js = jobs() + list(extra)
    with ProcessPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        idx = list(ex.map(_one, js, [root] * len(js)))
    with open(os.path.join(root, 'index.json'), 'w') as f:
        json.dump(idx, f, indent=1)
    print('forge: %d dumps in %s (%.1f s)' % (len(idx), root, time.time() - t0))
    return 0
