#!/usr/bin/env python3
"""Seeds and starting corpora for the fuzz targets, all from the forge.

    make_seeds.py --forge tests/forge/forge.py --out build-fuzz

writes OUT/seeds/ (template and analysis dumps the targets load at start),
OUT/corpus-open/ (the forge matrix cut to MAX_OPEN bytes), OUT/corpus-xlat/
(hand-built page tables for x64, PAE and x86) and OUT/corpus-analysis/."""
import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys

MAX_OPEN = 65536
PAGE = 4096

# Small dumps (16/32 MiB of RAM) so a copy per process stays cheap; together
# they cover the layouts the analysis switches on (arch, body, build era).
ANALYSIS = [
    ('x64-t5-19041', ['--arch', 'x64', '--type', '5', '--build', '19041', '--phys-mb', '32']),
    ('x64-t1-7601', ['--arch', 'x64', '--type', '1', '--build', '7601', '--phys-mb', '32']),
    ('x64-t6-22631-expansion', ['--arch', 'x64', '--type', '6', '--build', '22631', '--phys-mb', '32',
                                '--scenario', 'expansion']),
    ('x64-t8-26100', ['--arch', 'x64', '--type', '8', '--build', '26100', '--phys-mb', '32', '--cpus', '4']),
    ('x64-t4-19041', ['--arch', 'x64', '--type', '4', '--build', '19041']),
    ('x86pae-t1-9600', ['--arch', 'x86-pae', '--type', '1', '--build', '9600', '--phys-mb', '16']),
    ('x86-t2-3790', ['--arch', 'x86', '--type', '2', '--build', '3790', '--phys-mb', '16']),
    ('x86pae-t4-7601', ['--arch', 'x86-pae', '--type', '4', '--build', '7601']),
]
XLAT = [
    ('xlat-x64', ['--arch', 'x64', '--type', '1', '--build', '19041', '--phys-mb', '16']),
    ('xlat-x86', ['--arch', 'x86', '--type', '1', '--build', '7601', '--phys-mb', '16']),
]


def forge(fp, out, name, args):
    dmp = os.path.join(out, name + '.dmp')
    if not os.path.exists(dmp):
        subprocess.run([sys.executable, fp] + args + ['--out', dmp, '--truth', os.path.join(out, name + '.json')],
                       check=True)
    return dmp


def xlat_input(mode, pages, cr3_lo=0, root=0, pfn2=None, kdbg=0):
    flags = (root << 4) | (1 if pfn2 is not None else 0)
    ctl = struct.pack('<BBHIQ', mode, flags, cr3_lo, pfn2 or 0, kdbg)
    return ctl + b''.join(bytes(p) for p in pages)


def put(page, off, fmt, v):
    struct.pack_into(fmt, page, off, v)


def kdbg_page():
    d = bytearray(PAGE)
    d[0x10:0x14] = b'KDBG'
    put(d, 0x14, '<I', 0x340)
    return d


def xlat_corpus(out):
    os.makedirs(out, exist_ok=True)
    seeds = {}
    # x64: PML4, PDPT, PD, PT, KDBG page, data page at a far PFN.
    p = [bytearray(PAGE) for _ in range(6)]
    for i in (0, 0x1F0, 511):
        put(p[0], 8 * i, '<Q', 1 << 12 | 3)
    put(p[1], 0, '<Q', 2 << 12 | 3)
    put(p[1], 8, '<Q', 0x40000000 | 0x83)             # 1 GiB page
    put(p[2], 0, '<Q', 3 << 12 | 3)
    put(p[2], 8, '<Q', 0x200000 | 0x83)               # 2 MiB page
    put(p[2], 16, '<Q', 3 << 12 | 0x800)              # PDE in transition
    put(p[3], 0, '<Q', 4 << 12 | 0x8000000000000963)  # valid, NX, software bits
    put(p[3], 8, '<Q', 4 << 12 | 0x880)               # transition
    put(p[3], 16, '<Q', 0xFFFFF6FB7DBED000 << 16 & 0xFFFFFFFFFFFFFFFF | 0x400)  # prototype
    put(p[3], 24, '<Q', 0x1234 << 32 | 0x80)          # page file
    put(p[3], 32, '<Q', 0x80)                         # demand zero
    put(p[3], 40, '<Q', 0x1000 << 12 | 3)             # far page (second run)
    put(p[3], 48, '<Q', 0x2000 << 12 | 0x10 | 0x800 | (1 << 45))  # swizzled transition
    p[4] = kdbg_page()
    seeds['x64'] = xlat_input(0, p, cr3_lo=0x002, kdbg=0xFFFFFF8000000000, pfn2=0x1000)
    seeds['x64-plain'] = xlat_input(0, p[:5], kdbg=0x10)
    # PAE: PDPT at +0x20 of page 0, PD, PT, KDBG page.
    q = [bytearray(PAGE) for _ in range(4)]
    for i in range(4):
        put(q[0], 0x20 + 8 * i, '<Q', 1 << 12 | 1)
    put(q[1], 0, '<Q', 2 << 12 | 3)
    put(q[1], 8, '<Q', 0x200000 | 0x83)
    put(q[1], 0x800, '<Q', 2 << 12 | 3)
    put(q[2], 0, '<Q', 3 << 12 | 0x8000000000000003)
    put(q[2], 8, '<Q', 3 << 12 | 0x800)
    put(q[2], 16, '<Q', 0x80001000 << 32 | 0x400)
    put(q[2], 24, '<Q', 0x55 << 32 | 0x80)
    q[3] = kdbg_page()
    seeds['pae'] = xlat_input(1, q, cr3_lo=0x20, kdbg=0x80000000)
    # x86: PD, PT, KDBG page.
    r = [bytearray(PAGE) for _ in range(3)]
    put(r[0], 0, '<I', 1 << 12 | 3)
    put(r[0], 4, '<I', 0x400000 | 0x83)                 # 4 MiB page
    put(r[0], 4 * 0x200, '<I', 1 << 12 | 3)
    put(r[0], 4 * 0x300, '<I', 0xC00000 | 0x83 | (1 << 13))  # PSE-36 high bits
    put(r[1], 0, '<I', 2 << 12 | 3)
    put(r[1], 4, '<I', 2 << 12 | 0x800)
    put(r[1], 8, '<I', 0x12345 << 12 | 0x400)
    put(r[1], 12, '<I', 0x80)
    r[2] = kdbg_page()
    seeds['x86'] = xlat_input(2, r, kdbg=0x80000000)
    for name, data in seeds.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


def open_corpus(forge_py, out, matrix, extra):
    os.makedirs(out, exist_ok=True)
    if not os.path.exists(os.path.join(matrix, 'index.json')):
        os.makedirs(matrix, exist_ok=True)
        subprocess.run([sys.executable, forge_py, '--matrix', matrix], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(matrix, 'index.json')) as f:
        index = json.load(f)
    files = [os.path.join(matrix, e['dump']) if not os.path.isabs(e['dump']) else e['dump'] for e in index] + extra
    for path in files:
        if not os.path.exists(path):
            continue
        with open(path, 'rb') as f:
            data = f.read(MAX_OPEN)
        with open(os.path.join(out, os.path.basename(path)), 'wb') as f:
            f.write(data)


def vmss_seed(pages=4, cpus=2, old=False):
    """A VMware state file (vm-captures §4.1) with its memory inline: the
    fuzzer mutates the group table, the tag heads and the region values."""
    def tag(name, value=None, idx=(), block=None, size=4, pad=3):
        vsize = 63 if block is not None else size
        t = struct.pack('<BB', vsize | len(idx) << 6, len(name)) + name.encode()
        t += b''.join(struct.pack('<I', i) for i in idx)
        if block is None:
            return t + value.to_bytes(size, 'little')
        sizes = struct.pack('<II' if old else '<QQ', len(block), len(block))
        return t + sizes + struct.pack('<H', pad) + b'\xcc' * pad + block
    mem = b''.join(bytes([i + 1]) * 4096 for i in range(pages))
    memory = tag('regionsCount', 2) + tag('regionPPN', 0, (0,)) + tag('regionPageNum', 0, (0,)) + \
        tag('regionSize', 2, (0,)) + tag('regionPPN', 0x100, (1,)) + tag('regionPageNum', 2, (1,)) + \
        tag('regionSize', pages - 2, (1,), size=8) + tag('Memory', idx=(0, 0), block=mem) + b'\0\0'
    cpu = tag('cpu:numVCPUs', cpus)
    for c in range(cpus):
        cpu += tag('CR64', idx=(c,), block=struct.pack('<9Q', 0x80050033, 0, 0, 0x1000, 0x6F8, 0, 0, 0, 0), pad=0)
        cpu += tag('S', 0x10, (c, 1)) + tag('S.base64', 0xFFFFF80000000000, (c, 5), size=8)
    cpu += b'\0\0'
    groups = [('Checkpoint', b'\0\0'), ('memory', memory), ('cpu', cpu)]
    out = struct.pack('<III', 0xBED2BED0 if old else 0xBED2BED2, 8, len(groups))
    at = 12 + 80 * len(groups)
    for name, body in groups:
        out += name.encode().ljust(64, b'\0') + struct.pack('<QQ', at, len(body))
        at += len(body)
    return out + b''.join(body for _, body in groups)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--forge', required=True)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    seeds = os.path.join(a.out, 'seeds')
    os.makedirs(seeds, exist_ok=True)
    for name, args in XLAT:
        forge(a.forge, seeds, name, args)
    dumps = [forge(a.forge, seeds, 'analysis-' + name, args) for name, args in ANALYSIS]
    xlat_corpus(os.path.join(a.out, 'corpus-xlat'))
    open_corpus(a.forge, os.path.join(a.out, 'corpus-open'), os.path.join(a.out, 'matrix'), dumps)
    for name, data in (('state.vmss', vmss_seed()), ('state-old.vmss', vmss_seed(old=True))):
        with open(os.path.join(a.out, 'corpus-open', name), 'wb') as f:
            f.write(data)
    ca = os.path.join(a.out, 'corpus-analysis')
    os.makedirs(ca, exist_ok=True)
    # Seed order is the sorted file names (as fuzz_analysis loads them).
    names = sorted(os.path.basename(p) for p in dumps)
    rng = random.Random(5)
    for i in range(len(names)):
        with open(os.path.join(ca, 'seed%d' % i), 'wb') as f:
            f.write(bytes([i]))
        # A few patched variants, so inputs start long enough to carry records.
        for k in range(4):
            data = bytearray([i | (rng.randrange(32) << 3)])
            for _ in range(rng.randrange(1, 4)):
                n = rng.choice([1, 2, 4, 8])
                data += struct.pack('<HHB', rng.randrange(65536), rng.randrange(4096), n - 1)
                data += bytes(rng.randrange(256) for _ in range(n))
            with open(os.path.join(ca, 'seed%d-%d' % (i, k)), 'wb') as f:
                f.write(data)


if __name__ == '__main__':
    main()
