"""capture.py --matrix DIR / --verify DIR: a small matrix of hypervisor captures and its checks."""
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
EXT = {'elf': 'elf', 'elf32': 'elf', 'kdump': 'kdump', 'kdump-flat': 'flat', 'raw': 'raw',
       'vbox': 'core', 'vmem': 'vmem', 'vmss-inline': 'vmsn'}

# source dumps: name -> forge arguments
SOURCES = {
    'x64_19041': dict(arch='x64', build=19041, phys_mb=128, cpus=2, seed=11),
    'x64_26100': dict(arch='x64', build=26100, phys_mb=96, cpus=4, seed=12),
    'pae_7601': dict(arch='x86-pae', build=7601, phys_mb=128, cpus=2, seed=13),
    'x86_2600': dict(arch='x86', build=2600, phys_mb=64, cpus=1, seed=14),
    'pae_7601_big': dict(arch='x86-pae', build=7601, phys_mb=4608, cpus=2, seed=15),   # RAM > 4 GiB
    'x64_19041_kdbgbad': dict(arch='x64', build=19041, phys_mb=64, cpus=2, seed=16,
                              defect='kdbg-bad-tag'),
    # KDBG encoded in memory (forge scenario kdbg-encoded): what a live x64 Win8+ guest holds
    'x64_9600_enc': dict(arch='x64', build=9600, phys_mb=96, cpus=2, seed=17, scenario='kdbg-encoded'),
    'x64_26100_enc': dict(arch='x64', build=26100, phys_mb=128, cpus=4, seed=18, scenario='kdbg-encoded'),
}


def jobs(mdf):
    j = []

    def add(src, kind, tag=None, alt=False, **opt):
        """alt: also an index entry whose capture is the VMware state file (.vmss/.vmsn)."""
        name = '%s_%s' % (src, kind.replace('-', ''))
        if tag:
            name += '_' + tag
        j.append(dict(src=src, kind=kind, name=name, opt=opt, alt=alt))
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
    # VirtualBox ELF cores (§2.1)
    add('x64_19041', 'vbox')                                     # format 0x00010006
    add('pae_7601', 'vbox', 'f5', vbox_format='0x00010005')      # 32-bit guest, ELF64/EM_X86_64
    add('x86_2600', 'vbox')
    add('pae_7601', 'vbox', 'em386_f4', vbox_machine='386',
        vbox_format='0x00010004')                                # 32-bit host build: EM_386
    add('pae_7601_big', 'vbox')                                  # RAM above 4 GiB
    add('x64_19041', 'vbox', 'user1', cpus_in_user=1)
    add('x64_26100', 'vbox', 'alluser', cpus_in_user=4)          # -> self-map-scan
    add('x64_26100', 'vbox', 'f0', vbox_format='0x00010000')     # registers not readable -> scans
    add('x64_19041', 'vbox', 'f0_lowstub', vbox_format='0x00010000', low_stub=True)
    # VMware .vmem + .vmss/.vmsn, state file with the RAM inline (§4.1)
    add('x64_19041', 'vmem', alt=True)                           # one region, .vmss
    add('x64_26100', 'vmem', 'hole_vmsn', alt=True, vmem_layout='hole', vmss_ext='vmsn',
        vmss_magic='bad1', vmss_cr_inline=True)                  # flat read would be wrong
    add('pae_7601', 'vmem', 'hole', vmem_layout='hole', vmss_magic='bed3', vmss_region_bytes=8)
    add('x86_2600', 'vmem')
    add('x86_2600', 'vmem', 'flat', vmem_layout='none')          # no region tags: flat .vmem
    add('pae_7601_big', 'vmem', alt=True)                        # compacted: 4 GiB hole left out
    add('x64_19041', 'vmem', 'user1', cpus_in_user=1)
    add('x64_26100', 'vmem', 'alluser', cpus_in_user=4)          # -> self-map-scan
    add('x64_19041', 'vmss-inline', 'hole', vmem_layout='hole')
    add('pae_7601', 'vmss-inline')
    add('pae_7601_big', 'vmss-inline')                           # 4.5 GiB block: offsets > 4 GiB
    # encoded KDBG: no plaintext KDBG anywhere in the capture (kdbg_from scan, encoded true)
    for s in ('x64_9600_enc', 'x64_26100_enc'):
        for k in ('elf', 'kdump', 'vbox', 'raw', 'vmem'):
            add(s, k)
    add('x64_9600_enc', 'elf', 'vmci', vmcoreinfo=True)          # header -> the encoded block
    add('x64_26100_enc', 'kdump-flat')
    for d, s, k, o in (('vbox-cpu-count', 'x64_19041', 'vbox', {}),
                       ('vbox-bad-magic', 'pae_7601', 'vbox', {}),
                       ('vmss-bad-tag', 'x64_19041', 'vmem', {}),
                       ('vmss-region-outside', 'pae_7601', 'vmem', {}),
                       ('vmss-compressed-memory', 'x86_2600', 'vmss-inline', {}),
                       ('vmem-alone', 'x64_26100', 'vmem', {}),
                       ('vmss-no-cpu', 'pae_7601', 'vmem', {'vmem_layout': 'hole'}),
                       ('vmss-no-cpu', 'x64_19041', 'vmss-inline', {})):
        add(s, k, d.replace('-', ''), defect=d, **o)
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
    if p.get('scenario'):
        cmd += ['--scenario', p['scenario']]
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
        e = dict(capture=j['name'] + '.' + EXT[j['kind']], truth=j['name'] + '.json',
                 kind=j['kind'], writer=c['writer'], arch=t['arch'], build=t['build'],
                 scenario=t.get('scenario'), defect=t.get('capture_defect'),
                 source_defect=t.get('defect'), seed=p['seed'], phys_mb=p['phys_mb'],
                 cpus=c['processors'], cr3_source=c['cr3_source'],
                 kdbg_from=t['info']['source']['kdbg_from'],
                 kdbg_encoded=t['info']['source']['kdbg_encoded'],
                 expect_exit=t['expect']['exit'], options=j['opt'], files=c['files'],
                 source_dump='src/%s.dmp' % j['src'], source_truth='src/%s.json' % j['src'])
        index.append(e)
        if j['alt']:
            # the same capture, entered by its state file (the .vmem is found beside it)
            e2 = dict(e)
            e2['capture'] = c['vmware']['state_file']
            e2['entered_by'] = 'state-file'
            index.append(e2)
    with open(os.path.join(d, 'index.json'), 'w') as f:
        json.dump(index, f, indent=1)
    print('capture matrix: %d index entries (%d captures) from %d source dumps in %s (%.1f s)%s'
          % (len(index), len(js), len(SOURCES), d, time.time() - t0,
             '' if mdf else '; makedumpfile not installed: its variants left out'))
    return 0


# ---------------------------------------------------------------- verify
LKDF = r'''
import sys, json, kdumpfile
sys.path.insert(0, sys.argv[1])
from capture_phys import SourceDump
path, srcdump, skip = sys.argv[2], sys.argv[3], set(json.loads(sys.argv[4]))
probe = json.loads(sys.argv[5]) if len(sys.argv) > 5 else []
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
probed = {}
for pa in probe:
    try:
        b = k.read(kdumpfile.KDUMP_MACHPHYSADDR, pa, 4096)
        probed[hex(pa)] = 'zeros' if b == bytes(4096) else 'data'
    except Exception as x:
        probed[hex(pa)] = type(x).__name__


def runs(name):
    out, i = [], 0
    try:
        bm = a[name]
    except Exception:
        return None
    while len(out) < 64:
        try:
            s = bm.find_set(i)
        except Exception:
            break
        try:
            c = bm.find_clear(s)
        except Exception:
            c = None
        out.append([s, c])
        if c is None:
            break
        i = c
    return out
print(json.dumps({'format': a['file.format'], 'arch': a['arch.name'] if 'arch.name' in a else None,
                  'cpus': a['cpu']['number'] if 'cpu' in a else None, 'pages': n, 'bad': bad,
                  'probe': probed, 'memory_pagemap': runs('memory.pagemap'),
                  'file_pagemap': runs('file.pagemap')}))
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


def open_capture(kind, path, E, K):
    """-> dict(read, nonzero, notes, vmcoreinfo, states, reader) with the forge's own readers.
    states None = the QEMU notes (capture_cr3 default)."""
    import capture_vbox as V
    import capture_vmware as VM
    o = dict(notes=[], vmcoreinfo=None, states=None, reader=None)
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
        o.update(notes=notes, vmcoreinfo=next((dsc for n, _, dsc, _ in notes if n == 'VMCOREINFO'), None),
                 read=r.read_page, nonzero=r.nonzero_pfns(), reader=r)
    elif kind == 'raw':
        f = open(path, 'rb')
        end = os.path.getsize(path)

        def read(p):
            if p * 4096 >= end:
                return None
            f.seek(p * 4096)
            return f.read(4096)
        o.update(read=read, nonzero=[p for p in E._data_pages(f.fileno(), 0, end)
                                     if read(p).count(0) != 4096])
    elif kind == 'vbox':
        r = V.VBoxReader(path)
        states, mode, why = r.cpu_states()
        o.update(read=r.read_page, nonzero=r.nonzero_pfns(), states=states, reader=r, mode=mode, why=why)
    elif kind in ('vmem', 'vmss-inline'):
        r = VM.VmwareReader(path)
        o.update(read=r.read_page, nonzero=r.nonzero_pfns(), states=r.states, reader=r)
    else:
        r = K.KdumpReader(path)
        o.update(notes=r.notes, vmcoreinfo=r.vmcoreinfo, read=r.read_page, nonzero=r.nonzero_pfns(), reader=r)
    return o


def cr3_check(t, kind, path, E, K, cap=None):
    """Run the reference CR3 finder (capture_cr3) and compare with the truth."""
    import capture_cr3 as C
    c = cap or open_capture(kind, path, E, K)
    src, root = C.find(C.Mem(c['read']), t['arch'], c['notes'], c['nonzero'],
                       int(t['kernel']['nt_base'], 16), c['vmcoreinfo'], c['states'])
    want = t['capture']['cr3_source']
    assert src == want, 'reference CR3 finder: %s, truth: %s' % (src, want)
    if want:
        assert root == int(t['capture']['kernel_root'], 16), 'root %#x' % root
    # every user-mode vCPU's CR3 must fail validation
    mem = C.Mem(c['read'])
    for u in t['capture'].get('user_cpus') or []:
        assert not C.valid(mem, t['arch'], C.mask(t['arch'], int(u['cr3'], 16)),
                           int(t['kernel']['nt_base'], 16)), 'user CR3 maps the kernel'
    return 'cr3 %s' % src


def kdbg_check(t, cap):
    """Plaintext KDBG blocks in the capture's pages ('KDBG' OwnerTag at +0x10, KernBase at +0x18
    = nt base): exactly the truth's block when info.source says a plain KDBG exists, none when
    the source keeps it encoded (or damaged)."""
    import struct as S
    import capture_cr3 as C
    nt = int(t['kernel']['nt_base'], 16)
    m32 = t['info']['format']['bits'] == 32
    hits = []
    for p in cap['nonzero']:
        pg = cap['read'](p)
        i = pg.find(b'KDBG')
        while i >= 0:
            if i >= 0x10 and i + 16 <= 4096:
                kb = S.unpack_from('<Q', pg, i + 8)[0]
                if (kb & 0xFFFFFFFF if m32 else kb) == nt:
                    hits.append(p * 4096 + i - 0x10)
            i = pg.find(b'KDBG', i + 1)
    src = t['info']['source']
    if src['kdbg_encoded'] or src['kdbg_from'] is None:
        assert not hits, 'plaintext KDBG at %s in a capture whose KDBG is %s' % (
            [hex(h) for h in hits], 'encoded' if src['kdbg_encoded'] else 'damaged')
        return 'no plaintext KDBG'
    want = C.vtop(C.Mem(cap['read']), t['arch'], int(t['capture']['kernel_root'], 16),
                  int(t['kernel']['kdbg'], 16))
    assert hits == [want], 'plaintext KDBG at %s, expected %#x' % ([hex(h) for h in hits], want)
    return 'plain KDBG at %#x' % want


def file_kdbg_bytes(paths):
    """Occurrences of b'KDBG' in the data extents of the capture's files (uncompressed kinds)."""
    n = 0
    for path in paths:
        with open(path, 'rb') as f:
            fd, end, pos, tail = f.fileno(), os.path.getsize(path), 0, b''
            while pos < end:
                try:
                    dpos = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError:
                    break
                hpos = os.lseek(fd, dpos, os.SEEK_HOLE)
                f.seek(dpos)
                while dpos < hpos:
                    b = f.read(min(1 << 24, hpos - dpos))
                    n += (tail + b).count(b'KDBG')
                    tail = b[-3:]
                    dpos += len(b)
                pos = hpos
    return n


def vbox_checks(t, e, r, readelf, msgs):
    import struct as S
    f = t['capture']['facts']
    assert r.ei_version == 0 and r.e_version == 1 and r.shnum == 0, 'ELF version / shnum'
    want_m = 3 if e['options'].get('vbox_machine') == '386' else 62
    assert r.machine == want_m, 'e_machine %d' % r.machine
    assert r.note_off == 64 + 56 * (1 + len(f['loads'])), 'PT_NOTE not right after the phdrs'
    assert int(f['mem_off']) % 4096 != 0, 'data page aligned'
    cores = [n for n in r.notes if n[0] == 'VBCORE']
    cpus = [n for n in r.notes if n[0] == 'VBCPU']
    assert r.notes[0][0] == 'VBCORE' and len(cores) == 1, 'VBCORE first'
    assert len(cpus) == t['capture']['processors'], 'VBCPU notes %d' % len(cpus)
    assert all(len(d) == int(f['vbcpu_size'], 16) for _, _, d in cpus), 'VBCPU size'
    # namesz without NUL, 8-byte padding: raw bytes
    r.f.seek(r.note_off)
    raw = r.f.read(12)
    assert S.unpack_from('<I', raw, 0)[0] == 6, 'VBCORE n_namesz'
    assert r.mmio and all(ms > 0 for _, ms in r.mmio), 'no MMIO PT_LOAD'
    pas = [int(l[0], 16) for l in f['loads']]
    assert pas != sorted(pas), 'PT_LOADs sorted'
    # the same notes walked with 4-byte padding (Tetrane, libkdumpfile) land on the same offsets
    import capture_elf as E
    r.f.seek(r.note_off)
    n4 = E.parse_notes(r.f.read(r.note_size))
    assert [(a, b, c) for a, b, c, _ in n4] == r.notes, '4-byte note walk differs'
    st, mode, why = r.cpu_states()
    if not t['capture']['vbox']['registers_readable']:
        # the 0x00010000 blob is a trap for readers that ignore the format: DBGFCORECPU's cr3
        # offset holds the kernel's page-table base, its cs offset RPL 0
        d = cpus[0][2]
        assert S.unpack_from('<Q', d, 0x130)[0] == int(t['capture']['kernel_cr3'], 16) and \
            S.unpack_from('<H', d, 0xA0)[0] & 3 == 0, 'format 0x00010000 trap not armed'
    if t['capture']['vbox']['registers_readable'] and not t.get('capture_defect'):
        assert mode == t['arch'], 'guest mode from the registers: %s' % mode
        msgs.append('mode %s from VBCPU' % mode)
    else:
        assert not st, 'registers taken from an untrusted core'
        msgs.append('VBCPU not used (%s)' % why)
    if readelf:
        p = subprocess.run([readelf, '-W', '-h', '-n', '-l', r.f.name], capture_output=True, text=True)
        assert p.returncode == 0 and 'Warning' not in p.stderr, p.stderr[:200]
        assert p.stdout.count('  VBCPU ') == len(cpus), 'readelf VBCPU count'
        msgs.append('readelf ok')


def vmware_checks(t, e, r, msgs):
    import capture_vmware as VM
    cv = t['capture']['vmware']
    f = t['capture']['facts']
    if cv['read_flat']:
        assert r.warnings and not r.regs, 'expected a flat read with a warning'
        msgs.append('flat: %s' % r.warnings[0][:70])
        return
    assert not r.warnings, r.warnings
    st = r.state
    order = list(st.groups)
    assert order.index('memory') > 0 and ('cpu' not in order or order.index('cpu') > 0), \
        'memory or cpu group first'
    assert hex(st.magic) == f['magic'], 'magic'
    want = [[a, b, c] for a, b, c in f['regions']]
    assert [[hex(a), hex(b), hex(c)] for a, b, c in r.regs] == want, 'regions %s' % r.regs
    ext = [list(x) for x in r.extents()]
    assert ext == t['phys']['extents'], 'extents %s != truth %s' % (ext, t['phys']['extents'])
    if r.mem:
        assert r.mem[4] > 0, 'inline Memory block without a pad'
        msgs.append('inline Memory at %#x (pad %d)' % (r.mem[0], r.mem[4]))
    # does reading the image flat give other bytes than the region table? (truth says)
    img = r.img
    wrong = 0
    for pfn, n, off in r.extents():
        for p in r.nonzero_pfns():
            if pfn <= p < pfn + n and r.img_off + p * 4096 != off + (p - pfn) * 4096:
                img.seek(r.img_off + p * 4096)
                if img.read(4096) != r.read_page(p):
                    wrong += 1
    assert bool(wrong) == cv['flat_read_wrong'], 'flat read wrong on %d pages, truth %s' % (
        wrong, cv['flat_read_wrong'])
    msgs.append('%d regions (flat read wrong on %d pages), %d cpu states' % (len(r.regs), wrong, len(r.states)))


def verify(d):
    sys.path.insert(0, HERE)
    import capture_elf as E
    import capture_kdump as K
    import capture_vmware as VM
    from capture import READABLE_DEFECTS
    from capture_phys import SourceDump
    with open(os.path.join(d, 'index.json')) as f:
        index = json.load(f)
    py = lkdf_python()
    mdf = shutil.which('makedumpfile')
    readelf = shutil.which('readelf')
    fails = 0
    srcs = {}
    lkdf_notes = {}
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
            defect = e['defect']
            target = path
            if kind == 'kdump-flat' and defect is None:
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
            if defect == 'vmss-compressed-memory':
                try:
                    VM.VmwareReader(path)
                    raise AssertionError('compressed Memory block read without complaint')
                except NotImplementedError as x:
                    msgs.append('refused: %s' % x)
                st = VM.StateFile(path)
                mem = [b for n, i, v, b in st.tags('memory') if n == 'Memory']
                assert mem and mem[0][3] and mem[0][1] < mem[0][2], 'Memory block not compressed'
                print('ok   %-44s %s' % (e['capture'], '; '.join(msgs)))
                continue
            if defect and defect not in READABLE_DEFECTS and kind != 'kdump-flat':
                msgs.append(cr3_check(t, kind, path, E, K))
            if defect and defect not in READABLE_DEFECTS:
                if kind == 'kdump-flat':
                    try:
                        K.unflatten(path, path + '.tmp')
                        raise AssertionError('defective stream unflattened without error')
                    except ValueError as x:
                        msgs.append('own unflatten refuses: %s' % x)
                    finally:
                        if os.path.exists(path + '.tmp'):
                            os.unlink(path + '.tmp')
                print('ok   %-44s %s' % (e['capture'], '; '.join(msgs) or defect))
                continue
            cap = open_capture(kind, target, E, K)
            read = cap['read']
            if kind in ('elf', 'elf32'):
                r = cap['reader']
                ncpu = sum(1 for n in r.notes if n[0] == 'CORE')
                assert ncpu == t['capture']['processors'], 'CORE notes %d' % ncpu
                nq = sum(1 for n in r.notes if n[0] == 'QEMU')
                assert nq == (ncpu if t['capture']['cpu_notes'] else 0), 'QEMU notes %d' % nq
                if readelf:
                    p = subprocess.run([readelf, '-W', '-n', '-l', target], capture_output=True, text=True)
                    assert p.returncode == 0 and 'Warning' not in p.stderr, p.stderr[:200]
                    assert p.stdout.count('NT_PRSTATUS') == ncpu
                    msgs.append('readelf ok')
            elif kind == 'vbox':
                vbox_checks(t, e, cap['reader'], readelf, msgs)
            elif kind in ('vmem', 'vmss-inline'):
                vmware_checks(t, e, cap['reader'], msgs)
            elif kind != 'raw':
                r = cap['reader']
                if t['capture']['writer'] == 'own':
                    assert r.nr_cpus == t['capture']['processors']
                nq = sum(1 for n in r.notes if n[0] == 'QEMU')
                assert nq == (t['capture']['processors'] if t['capture']['cpu_notes'] else 0), 'QEMU notes %d' % nq
                if t['capture']['vmcoreinfo']:
                    assert r.vmcoreinfo and r.vmcoreinfo[:8] in (b'PAGEDU64', b'PAGEDUMP'), 'vmcoreinfo'
            bad = [p for p, pg in src.items() if p not in skip and read(p) != pg]
            assert not bad, '%d pages differ from the MEMORY.DMP (first %#x)' % (len(bad), bad[0])
            msgs.append('%d dump pages equal' % (len(src) - len(skip & set(src))))
            msgs.append(cr3_check(t, kind, target, E, K, cap))
            msgs.append(kdbg_check(t, cap))
            if t['info']['source']['kdbg_encoded'] and kind not in ('kdump', 'kdump-flat'):
                files = [os.path.join(d, x) for x in t['capture']['files']]
                n = file_kdbg_bytes(files)
                assert n == 0, '%d "KDBG" byte strings in %s' % (n, t['capture']['files'])
                msgs.append('no "KDBG" bytes in the files')
            if py and kind not in ('raw', 'vmem', 'vmss-inline'):
                probe = []
                if kind == 'vbox':
                    probe = [int(m[0], 16) for m in t['capture']['vbox']['mmio']] + [0xC0000]
                p = subprocess.run([py, '-c', LKDF, HERE, target, os.path.join(d, e['source_dump']),
                                    json.dumps(sorted(skip)), json.dumps(probe)],
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    raise AssertionError('libkdumpfile: ' + p.stderr.strip().splitlines()[-1])
                res = json.loads(p.stdout)
                assert res['bad'] == 0, 'libkdumpfile reads %d pages differently' % res['bad']
                msgs.append('libkdumpfile %s ok' % res['format'])
                if kind == 'vbox':
                    mm = [[int(a, 16) // 4096, (int(a, 16) + int(n, 16)) // 4096]
                          for a, n, _ in t['capture']['vbox']['mmio']]
                    fp = res['file_pagemap'] or []
                    inmem = all(any(s <= a and (c is None or b <= c) for s, c in res['memory_pagemap'])
                                for a, b in mm)
                    infile = any(any(s < b and (c is None or a < c) for s, c in fp) for a, b in mm)
                    assert not infile, 'libkdumpfile file.pagemap holds MMIO pages'
                    msgs.append('lkdf: MMIO %s memory.pagemap, reads %s' % (
                        'in' if inmem else 'NOT in', sorted(set(v for k, v in res['probe'].items()
                                                                if k != '0xc0000'))))
                    lkdf_notes.setdefault('vbox', set()).add(
                        'arch.name=%s, MMIO in memory.pagemap: %s, not in file.pagemap, MMIO reads: %s, '
                        'ROM read: %s' % (res['arch'], inmem, sorted(set(v for k, v in res['probe'].items()
                                                                         if k != '0xc0000')),
                                          res['probe'].get('0xc0000')))
            if target != path:
                os.unlink(target)
            print('ok   %-44s %s (%.1f s)' % (e['capture'], '; '.join(msgs), time.time() - t0))
        except Exception as x:       # noqa: BLE001 - report and go on
            fails += 1
            print('FAIL %-44s %s: %s' % (e['capture'], type(x).__name__, x))
    for k, v in lkdf_notes.items():
        for line in sorted(v):
            print('libkdumpfile on %s cores: %s' % (k, line))
    print('%d entries, %d failed%s' % (len(index), fails, '' if py else ' (libkdumpfile python bindings absent)'))
    return 1 if fails else 0
