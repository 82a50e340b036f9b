"""capture.py --matrix DIR / --verify DIR: a small matrix of hypervisor captures and its checks."""
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
EXT = {'elf': 'elf', 'elf32': 'elf', 'kdump': 'kdump', 'kdump-flat': 'flat', 'raw': 'raw'}

# source dumps: name -> forge arguments
SOURCES = {
    'x64_19041': dict(arch='x64', build=19041, phys_mb=128, cpus=2, seed=11),
    'x64_26100': dict(arch='x64', build=26100, phys_mb=96, cpus=4, seed=12),
    'pae_7601': dict(arch='x86-pae', build=7601, phys_mb=128, cpus=2, seed=13),
    'x86_2600': dict(arch='x86', build=2600, phys_mb=64, cpus=1, seed=14),
    'pae_7601_big': dict(arch='x86-pae', build=7601, phys_mb=4608, cpus=2, seed=15),   # RAM > 4 GiB
    'x64_19041_kdbgbad': dict(arch='x64', build=19041, phys_mb=64, cpus=2, seed=16,
                              defect='kdbg-bad-tag'),
}


def jobs(mdf):
    j = []

    def add(src, kind, tag=None, **opt):
        name = '%s_%s' % (src, kind.replace('-', ''))
        if tag:
            name += '_' + tag
        j.append(dict(src=src, kind=kind, name=name, opt=opt))
    for s in ('x64_19041', 'x64_26100', 'pae_7601', 'x86_2600'):
        for k in ('elf', 'kdump', 'kdump-flat', 'raw'):
            add(s, k)
    add('x64_19041', 'elf', 'user1', cpus_in_user=1)             # CPU 0 in user mode, CPU 1 kernel
    add('x64_26100', 'elf', 'alluser', cpus_in_user=4)           # every vCPU in user mode
    add('pae_7601', 'kdump', 'user1', cpus_in_user=1)
    add('x64_19041', 'elf', 'vmci', vmcoreinfo=True)             # notes + VMCOREINFO header
    add('pae_7601', 'kdump', 'vmci_nonotes', vmcoreinfo=True, no_cpu_notes=True)
    add('x86_2600', 'elf', 'nonotes', no_cpu_notes=True)         # self-map scan
    add('x64_26100', 'kdump', 'nonotes', no_cpu_notes=True)
    add('x64_19041', 'elf', 'lowstub', no_cpu_notes=True, low_stub=True)
    add('x86_2600', 'elf32', 'vaddr0', vaddr_zero=True)
    add('pae_7601_big', 'elf')                                   # ELF64 + EM_386
    add('pae_7601_big', 'kdump')
    add('pae_7601_big', 'raw')
    add('x64_19041_kdbgbad', 'elf')                              # source content defect kept
    if mdf:
        add('x64_19041', 'kdump', 'mdf', writer='makedumpfile')
        add('x64_19041', 'kdump-flat', 'mdf', writer='makedumpfile')
        add('x86_2600', 'kdump', 'mdf', writer='makedumpfile')
        add('pae_7601', 'kdump-flat', 'mdf', writer='makedumpfile', cpus_in_user=1)
    for d, s, k in (('truncated-elf-segment', 'x64_19041', 'elf'),
                    ('lying-note-size', 'pae_7601', 'elf'),
                    ('flat-overlap', 'x64_19041', 'kdump-flat'),
                    ('flat-past-end', 'x86_2600', 'kdump-flat'),
                    ('no-cr3', 'x64_19041', 'raw'),
                    ('no-cr3', 'pae_7601', 'elf'),
                    ('no-cr3', 'x86_2600', 'kdump')):
        add(s, k, d.replace('-', ''), defect=d)
    return j


def forge_one(args):
    name, p, d = args
    cmd = [sys.executable, os.path.join(HERE, 'forge.py'), '--arch', p['arch'], '--type', '1',
           '--build', str(p['build']), '--phys-mb', str(p['phys_mb']), '--cpus', str(p['cpus']),
           '--seed', str(p['seed']), '--out', os.path.join(d, 'src', name + '.dmp'),
           '--truth', os.path.join(d, 'src', name + '.json')]
    if p.get('defect'):
        cmd += ['--defect', p['defect']]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return name


def capture_one(args):
    job, d = args
    import capture
    src = os.path.join(d, 'src', job['src'])
    out = os.path.join(d, job['name'] + '.' + EXT[job['kind']])
    argv = ['--dump', src + '.dmp', '--truth', src + '.json', '--kind', job['kind'],
            '--out', out, '--truth-out', os.path.join(d, job['name'] + '.json')]
    o = job['opt']
    for k, v in o.items():
        flag = '--' + k.replace('_', '-')
        argv += [flag] if v is True else [flag, str(v)]
    rc = capture.main(argv)
    if rc:
        raise RuntimeError('capture %s failed (%d)' % (job['name'], rc))
    return job['name']


def run(d):
    t0 = time.time()
    os.makedirs(os.path.join(d, 'src'), exist_ok=True)
    mdf = shutil.which('makedumpfile') is not None
    js = jobs(mdf)
    with ProcessPoolExecutor() as ex:
        list(ex.map(forge_one, [(n, p, d) for n, p in SOURCES.items()]))
        list(ex.map(capture_one, [(j, d) for j in js]))
    index = []
    for j in js:
        with open(os.path.join(d, j['name'] + '.json')) as f:
            t = json.load(f)
        p = SOURCES[j['src']]
        c = t['capture']
        index.append(dict(capture=j['name'] + '.' + EXT[j['kind']], truth=j['name'] + '.json',
                          kind=j['kind'], writer=c['writer'], arch=t['arch'], build=t['build'],
                          scenario=t.get('scenario'), defect=t.get('capture_defect'),
                          source_defect=t.get('defect'), seed=p['seed'], phys_mb=p['phys_mb'],
                          cpus=c['processors'], cr3_source=c['cr3_source'],
                          expect_exit=t['expect']['exit'], options=j['opt'],
                          source_dump='src/%s.dmp' % j['src'], source_truth='src/%s.json' % j['src']))
    with open(os.path.join(d, 'index.json'), 'w') as f:
        json.dump(index, f, indent=1)
    print('capture matrix: %d captures from %d source dumps in %s (%.1f s)%s'
          % (len(index), len(SOURCES), d, time.time() - t0,
             '' if mdf else '; makedumpfile not installed: its variants left out'))
    return 0


# ---------------------------------------------------------------- verify
LKDF = r'''
import sys, json, kdumpfile
sys.path.insert(0, sys.argv[1])
from capture_phys import SourceDump
path, srcdump, skip = sys.argv[2], sys.argv[3], set(json.loads(sys.argv[4]))
k = kdumpfile.kdumpfile(path)
src = SourceDump(srcdump)
bad = n = 0
for p, pg in src.nonzero_pages().items():
    if p in skip:
        continue
    n += 1
    if k.read(kdumpfile.KDUMP_MACHPHYSADDR, p * 4096, 4096) != pg:
        bad += 1
a = k.attr
print(json.dumps({'format': a['file.format'], 'arch': a['arch.name'] if 'arch.name' in a else None,
                  'cpus': a['cpu']['number'] if 'cpu' in a else None, 'pages': n, 'bad': bad}))
'''


def lkdf_python():
    for py in ('/usr/bin/python3', sys.executable):
        if os.path.exists(py) and subprocess.run([py, '-c', 'import kdumpfile'],
                                                 stderr=subprocess.DEVNULL).returncode == 0:
            return py
    return None


def skip_pages(t):
    c = t['capture']
    s = {int(c['kernel_root'], 16) // 4096}
    sm = c.get('self_map')
    if sm:
        s.add(int(sm['table'], 16) // 4096)
        s.update(int(x, 16) // 4096 for x in sm.get('pds', []))
    return sorted(s)


def cr3_check(t, kind, path, E, K):
    """Run the reference CR3 finder (capture_cr3) and compare with the truth."""
    import capture_cr3 as C
    vmci = None
    if kind in ('elf', 'elf32'):
        try:
            r = E.ElfReader(path)
            notes = r.notes
        except ValueError:                       # lying note: PT_NOTE unusable
            r = E.ElfReader.__new__(E.ElfReader)
            r.f = open(path, 'rb')
            import struct as S
            h = r.f.read(64)
            r.cls64 = h[4] == 2
            r.loads, notes = [], []
            phoff, phes, phn = (S.unpack_from('<Q', h, 32)[0], 56, S.unpack_from('<H', h, 56)[0]) \
                if r.cls64 else (S.unpack_from('<I', h, 28)[0], 32, S.unpack_from('<H', h, 44)[0])
            r.f.seek(phoff)
            ph = r.f.read(phes * phn)
            for i in range(phn):
                if r.cls64:
                    ty, _, off, _, pa, fs, ms, _ = S.unpack_from('<IIQQQQQQ', ph, i * phes)
                else:
                    ty, off, _, pa, fs, ms, _, _ = S.unpack_from('<IIIIIIII', ph, i * phes)
                if ty == 1:
                    r.loads.append((pa, off, fs, ms))
        vmci = next((dsc for n, _, dsc, _ in notes if n == 'VMCOREINFO'), None)
        read, nonzero = r.read_page, r.nonzero_pfns()
    elif kind == 'raw':
        f = open(path, 'rb')
        end = os.path.getsize(path)

        def read(p):
            if p * 4096 >= end:
                return None
            f.seek(p * 4096)
            return f.read(4096)
        notes = []
        nonzero = [p for p in E._data_pages(f.fileno(), 0, end) if read(p).count(0) != 4096]
    else:
        r = K.KdumpReader(path)
        notes, vmci, read, nonzero = r.notes, r.vmcoreinfo, r.read_page, r.nonzero_pfns()
    src, root = C.find(C.Mem(read), t['arch'], notes, nonzero, int(t['kernel']['nt_base'], 16), vmci)
    want = t['capture']['cr3_source']
    assert src == want, 'reference CR3 finder: %s, truth: %s' % (src, want)
    if want:
        assert root == int(t['capture']['kernel_root'], 16), 'root %#x' % root
    # every user-mode vCPU's CR3 must fail validation
    mem = C.Mem(read)
    for u in t['capture'].get('user_cpus') or []:
        assert not C.valid(mem, t['arch'], C.mask(t['arch'], int(u['cr3'], 16)),
                           int(t['kernel']['nt_base'], 16)), 'user CR3 maps the kernel'
    return 'cr3 %s' % src


def verify(d):
    sys.path.insert(0, HERE)
    import capture_elf as E
    import capture_kdump as K
    from capture_phys import SourceDump
    with open(os.path.join(d, 'index.json')) as f:
        index = json.load(f)
    py = lkdf_python()
    mdf = shutil.which('makedumpfile')
    readelf = shutil.which('readelf')
    fails = 0
    srcs = {}
    plain = {(e['source_dump'], json.dumps(e['options'], sort_keys=True)): e['capture']
             for e in index if e['kind'] == 'kdump' and e['writer'] == 'own' and not e['defect']}
    for e in index:
        t0 = time.time()
        path = os.path.join(d, e['capture'])
        t = json.load(open(os.path.join(d, e['truth'])))
        msgs = []
        try:
            if e['source_dump'] not in srcs:
                s = SourceDump(os.path.join(d, e['source_dump']))
                srcs[e['source_dump']] = s.nonzero_pages()
            src = srcs[e['source_dump']]
            skip = set(skip_pages(t))
            kind = e['kind']
            target = path
            if kind == 'kdump-flat' and e['defect'] is None:
                target = path + '.rebuilt'
                K.unflatten(path, target)
                if mdf:
                    r2 = path + '.mdfR'
                    with open(path, 'rb') as fi:
                        subprocess.run([mdf, '-R', r2], stdin=fi, check=True,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    same = open(r2, 'rb').read() == open(target, 'rb').read()
                    os.unlink(r2)
                    if not same:
                        raise AssertionError('makedumpfile -R and the own unflattener disagree')
                    msgs.append('makedumpfile -R == own unflatten')
                key = (e['source_dump'], json.dumps(e['options'], sort_keys=True))
                if e['writer'] == 'own' and key in plain:
                    same = open(target, 'rb').read() == open(os.path.join(d, plain[key]), 'rb').read()
                    if not same:
                        raise AssertionError('rebuilt stream differs from %s' % plain[key])
                    msgs.append('rebuilt == %s' % plain[key])
            if e['defect'] and kind != 'kdump-flat':
                msgs.append(cr3_check(t, kind, path, E, K))
            if e['defect']:
                if kind == 'kdump-flat':
                    try:
                        K.unflatten(path, path + '.tmp')
                        raise AssertionError('defective stream unflattened without error')
                    except ValueError as x:
                        msgs.append('own unflatten refuses: %s' % x)
                    finally:
                        if os.path.exists(path + '.tmp'):
                            os.unlink(path + '.tmp')
                print('ok   %-40s %s' % (e['capture'], '; '.join(msgs) or e['defect']))
                continue
            if kind in ('elf', 'elf32'):
                r = E.ElfReader(target)
                read = r.read_page
                ncpu = sum(1 for n in r.notes if n[0] == 'CORE')
                assert ncpu == t['capture']['processors'], 'CORE notes %d' % ncpu
                nq = sum(1 for n in r.notes if n[0] == 'QEMU')
                assert nq == (ncpu if t['capture']['cpu_notes'] else 0), 'QEMU notes %d' % nq
                if readelf:
                    p = subprocess.run([readelf, '-W', '-n', '-l', target], capture_output=True, text=True)
                    assert p.returncode == 0 and 'Warning' not in p.stderr, p.stderr[:200]
                    assert p.stdout.count('NT_PRSTATUS') == ncpu
                    msgs.append('readelf ok')
            elif kind == 'raw':
                f = open(target, 'rb')

                def read(pfn, f=f):
                    f.seek(pfn * 4096)
                    return f.read(4096)
            else:
                r = K.KdumpReader(target)
                read = r.read_page
                if t['capture']['writer'] == 'own':
                    assert r.nr_cpus == t['capture']['processors']
                nq = sum(1 for n in r.notes if n[0] == 'QEMU')
                assert nq == (t['capture']['processors'] if t['capture']['cpu_notes'] else 0), 'QEMU notes %d' % nq
                if t['capture']['vmcoreinfo']:
                    assert r.vmcoreinfo and r.vmcoreinfo[:8] in (b'PAGEDU64', b'PAGEDUMP'), 'vmcoreinfo'
            bad = [p for p, pg in src.items() if p not in skip and read(p) != pg]
            assert not bad, '%d pages differ from the MEMORY.DMP (first %#x)' % (len(bad), bad[0])
            msgs.append('%d dump pages equal' % (len(src) - len(skip & set(src))))
            msgs.append(cr3_check(t, kind, target, E, K))
            if py and kind != 'raw':
                p = subprocess.run([py, '-c', LKDF, HERE, target, os.path.join(d, e['source_dump']),
                                    json.dumps(sorted(skip))], capture_output=True, text=True)
                if p.returncode != 0:
                    raise AssertionError('libkdumpfile: ' + p.stderr.strip().splitlines()[-1])
                res = json.loads(p.stdout)
                assert res['bad'] == 0, 'libkdumpfile reads %d pages differently' % res['bad']
                msgs.append('libkdumpfile %s ok' % res['format'])
            if target != path:
                os.unlink(target)
            print('ok   %-40s %s (%.1f s)' % (e['capture'], '; '.join(msgs), time.time() - t0))
        except Exception as x:       # noqa: BLE001 - report and go on
            fails += 1
            print('FAIL %-40s %s' % (e['capture'], x))
    print('%d captures, %d failed%s' % (len(index), fails, '' if py else ' (libkdumpfile python bindings absent)'))
    return 1 if fails else 0
