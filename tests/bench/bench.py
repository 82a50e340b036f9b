#!/usr/bin/env python3
"""make bench: dumpleak's cost against dump size, and against a peer.

Forges sparse dumps (4/16/64 GiB, full and bitmap, x64 and x86-pae) into
build-bench/, times `info`, the main job and `suspect` (median of --runs,
warm and cold page cache), a peer's open-and-index (kdmp-parser's parser,
from $DUMPLEAK_PEER) on the 64-bit ones, and batch throughput with -j 1/2.
Prints a table and writes build-bench/results.json.  Stdlib only; not part
of `make check` (it takes minutes and drops the page cache)."""
import argparse
import ctypes
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FORGE = os.path.join(HERE, '..', 'forge', 'forge.py')
BUILD = 19041          # allows type 5 for x86-pae too (so does 9600)
MIB = 1 << 20
RSS_TARGET_MIB = 64
MAIN_TARGET_S = 0.5
PEER_FACTOR = 10

COMMANDS = [('info', ['info']), ('main', []), ('suspect', ['suspect', '--top', '10'])]
# Small dumps for the batch: a spread of layouts, default scenario (the bench
# scenario's 100 MiB of images do not fit in 64 MiB); combinations the forge
# refuses are skipped.
BATCH_KINDS = [('x64', 1, 19041), ('x64', 5, 19041), ('x64', 6, 19041), ('x64', 8, 19041),
               ('x64', 9, 19041), ('x64', 10, 19041), ('x64', 2, 7601), ('x64', 6, 9600),
               ('x86-pae', 1, 19041), ('x86-pae', 5, 9600), ('x86-pae', 2, 7601), ('x86', 1, 7601)]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def forge_stamp(scenario):
    """Dumps are rebuilt when the forge's sources or the scenario change."""
    h = hashlib.sha256(scenario.encode())
    fdir = os.path.dirname(FORGE)
    for name in sorted(os.listdir(fdir)):
        if name.endswith('.py'):
            with open(os.path.join(fdir, name), 'rb') as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def pick_scenario():
    out = subprocess.run([sys.executable, FORGE, '--list-scenarios'], capture_output=True,
                         text=True, check=True).stdout.split()
    return 'bench' if 'bench' in out else 'default'


def forge(path, arch, dtype, build, phys_mb, scenario, cpus=8, seed=None):
    cmd = [sys.executable, FORGE, '--arch', arch, '--type', str(dtype), '--build', str(build),
           '--phys-mb', str(phys_mb), '--cpus', str(cpus), '--scenario', scenario,
           '--out', path, '--truth', path[:-4] + '.json']
    if seed is not None:
        cmd += ['--seed', str(seed)]
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode == 0


def ensure_dumps(out, sizes, scenario, batch_n):
    ddir = os.path.join(out, 'dumps')
    bdir = os.path.join(out, 'batch')
    stamp_file = os.path.join(out, 'forge.stamp')
    stamp = forge_stamp(scenario)
    fresh = os.path.exists(stamp_file) and open(stamp_file).read() == stamp
    if not fresh:
        subprocess.run(['rm', '-rf', ddir, bdir], check=True)
    os.makedirs(ddir, exist_ok=True)
    os.makedirs(bdir, exist_ok=True)
    big = []
    for gib in sizes:
        for arch in ('x64', 'x86-pae'):
            for dtype in (1, 5):
                p = os.path.join(ddir, '%s-t%d-%dg.dmp' % (arch, dtype, gib))
                if not os.path.exists(p):
                    log('forging %s' % p)
                    if not forge(p, arch, dtype, BUILD, gib * 1024, scenario):
                        sys.exit('bench: the forge failed on %s' % p)
                big.append({'path': p, 'arch': arch, 'type': dtype, 'gib': gib})
    small = sorted(os.path.join(bdir, n) for n in os.listdir(bdir) if n.endswith('.dmp'))
    i = 0
    while len(small) < batch_n and i < batch_n * 3:
        arch, dtype, build = BATCH_KINDS[i % len(BATCH_KINDS)]
        p = os.path.join(bdir, '%03d-%s-t%d-%d.dmp' % (i, arch, dtype, build))
        if not os.path.exists(p) and forge(p, arch, dtype, build, 64, 'default', cpus=2 + i % 7, seed=i):
            small.append(p)
        i += 1
    with open(stamp_file, 'w') as f:
        f.write(stamp)
    return big, sorted(small)[:batch_n]


def drop_caches():
    """Whole-system drop, as root only; False when the machine refuses."""
    try:
        os.sync()
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('3\n')
        return True
    except OSError:
        return False


# Peak RSS needs a small launcher: a child's ru_maxrss keeps the high-water
# mark of the image it exec'd from -- a fork of this Python process, larger
# than dumpleak itself.  GNU time forks from its own small image.
TIME = '/usr/bin/time' if os.access('/usr/bin/time', os.X_OK) else None
RSS_FILE = None                 # where GNU time writes %M; set in main()


def run_once(argv, ok_codes=(0, 1)):
    """Wall time (perf_counter), user+sys CPU (wait4's rusage: this child and
    the children it waited for) and peak RSS (GNU time's %M, else an upper
    bound from wait4) of one run."""
    launch = [TIME, '-f', '%M', '-o', RSS_FILE] + argv if TIME else argv
    t0 = time.perf_counter()
    p = subprocess.Popen(launch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc not in ok_codes:
        raise RuntimeError('%s: exit %d' % (' '.join(argv), rc))
    rss = ru.ru_maxrss
    if TIME:
        with open(RSS_FILE) as f:               # "Command exited with ..." may precede
            rss = int(f.read().split()[-1])
    return {'wall': wall, 'cpu': ru.ru_utime + ru.ru_stime, 'rss_kib': rss,
            'minflt': ru.ru_minflt, 'majflt': ru.ru_majflt}


def measure(argv, runs, cold, ok_codes=(0, 1)):
    """Median of each figure over `runs` runs; warm runs follow one untimed
    run that fills the page cache."""
    if not cold:
        run_once(argv, ok_codes)
    samples = []
    for _ in range(runs):
        if cold:
            drop_caches()
        samples.append(run_once(argv, ok_codes))
    med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    med['runs'] = runs
    return med


# --- pages a run reads, for the dd comparison (no peer) ---------------------

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]


def resident_ranges(path):
    """(first page, page count) of every run of the file's pages in the page
    cache: after evicting the file and one dumpleak run, that is what the run
    read (readahead included) -- the I/O a dd of the same pages must do."""
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, 1, 1, fd, 0)        # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), 'mmap')
        npages = (size + 4095) // 4096
        vec = ctypes.create_string_buffer(npages)
        rc = libc.mincore(addr, size, vec)
        libc.munmap(addr, size)
        if rc:
            raise OSError(ctypes.get_errno(), 'mincore')
    finally:
        os.close(fd)
    bits = vec.raw[:npages].translate(bytes([i & 1 for i in range(256)]))
    return [(m.start(), m.end() - m.start()) for m in re.finditer(b'\x01+', bits)]


def evict(path):
    """Drop one file from the page cache (no root, touches nobody else's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def touched(bin_, path):
    evict(path)
    run_once([bin_, path])
    ranges = resident_ranges(path)
    return ranges, sum(n for _, n in ranges)


def coalesce(ranges, most=1024):
    """Merge across the smallest gaps until at most `most` ranges are left:
    one dd per scattered page would time process start-up, not reading.  The
    gaps read too are mostly holes in the sparse dumps."""
    if len(ranges) <= most:
        return list(ranges)
    gaps = sorted(ranges[i + 1][0] - (ranges[i][0] + ranges[i][1]) for i in range(len(ranges) - 1))
    limit = gaps[len(ranges) - most - 1]
    out = []
    for first, n in ranges:
        if out and first - (out[-1][0] + out[-1][1]) <= limit:
            out[-1] = (out[-1][0], first + n - out[-1][0])
        else:
            out.append((first, n))
    return out


def dd_script(path, ranges, out):
    """One shell script of dd reads, so it is timed as one child."""
    sp = os.path.join(out, os.path.basename(path) + '.dd.sh')
    with open(sp, 'w') as f:
        for first, n in coalesce(ranges):
            f.write('dd if=%s of=/dev/null bs=4096 skip=%d count=%d status=none\n' % (path, first, n))
    return ['sh', sp]


# --- report -----------------------------------------------------------------

def fmt(m):
    if not m:
        return '%8s %8s %7s' % ('-', '-', '-')
    return '%8.1f %8.1f %7.1f' % (m['wall'] * 1e3, m['cpu'] * 1e3, m['rss_kib'] / 1024)


def speed(ratio):
    return '%.1fx faster' % (1 / ratio) if ratio <= 1 else '%.1fx slower' % ratio


def scaling(rows, sizes):
    """Opening (info, warm) against size: run-based dumps should not grow;
    bitmap dumps grow with the bitmap only (pages/8 bytes).  Judged on CPU
    time: wall time on a shared machine carries other people's load."""
    out = []
    for arch in ('x64', 'x86-pae'):
        for dtype in (1, 5):
            pts = [(r['gib'], r['results']['info']['warm']) for r in rows
                   if r['arch'] == arch and r['type'] == dtype]
            if len(pts) < 2:
                continue
            (g0, a), (g1, b) = pts[0], pts[-1]
            bm_mib = lambda g: g * (1 << 30) / 4096 / 8 / MIB
            ent = {'arch': arch, 'type': dtype,
                   'info_cpu_ms': {str(g): round(m['cpu'] * 1e3, 2) for g, m in pts},
                   'info_rss_mib': {str(g): round(m['rss_kib'] / 1024, 1) for g, m in pts},
                   'info_minflt': {str(g): m['minflt'] for g, m in pts}}
            grow_mib = (b['rss_kib'] - a['rss_kib']) / 1024
            ent['rss_growth_mib'] = round(grow_mib, 1)
            if dtype == 1:
                # Constant: the largest opens within 5 ms or 1.5x of the smallest,
                # and memory does not follow the dump (4 MiB of slack for noise).
                ent['model'] = 'run-based: constant'
                ent['holds'] = b['cpu'] <= max(a['cpu'] * 1.5, a['cpu'] + 0.005) and grow_mib <= 4
            else:
                per = (b['cpu'] - a['cpu']) / (bm_mib(g1) - bm_mib(g0))
                ent['model'] = 'bitmap: linear in the bitmap'
                ent['ms_per_bitmap_mib'] = round(per * 1e3, 2)
                # Middle sizes on the line through the ends (30% + 3 ms for a shared
                # machine); memory grows by the bitmap at most.
                line = all(abs(m['cpu'] - (a['cpu'] + per * (bm_mib(g) - bm_mib(g0))))
                           <= 0.3 * m['cpu'] + 0.003 for g, m in pts[1:-1])
                ent['holds'] = line and grow_mib <= bm_mib(g1) - bm_mib(g0) + 4
            out.append(ent)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--bin', default='build/dumpleak')
    ap.add_argument('--out', default='build-bench')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--sizes', default='4,16,64', help='GiB of physical memory')
    ap.add_argument('--batch', type=int, default=100, help='small dumps for -j 1 / -j 2')
    ap.add_argument('--no-cold', action='store_true', help='skip cold-cache runs')
    a = ap.parse_args()
    bin_ = os.path.abspath(a.bin)
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    global RSS_FILE
    RSS_FILE = os.path.join(out, 'rss.tmp')
    sizes = [int(s) for s in a.sizes.split(',')]

    scenario = pick_scenario()
    big, small = ensure_dumps(out, sizes, scenario, a.batch)
    cold = not a.no_cold and drop_caches()
    peer = os.environ.get('DUMPLEAK_PEER', '')
    have_peer = bool(peer) and os.path.isfile(peer) and os.access(peer, os.X_OK)
    modes = ['warm'] + (['cold'] if cold else [])

    print('dumpleak bench: forge scenario "%s"%s, build %d, 8 CPUs, median of %d runs; %s; RSS %s'
          % (scenario, '' if scenario == 'bench' else ' (the forge has no "bench" scenario yet)',
             BUILD, a.runs, 'cold: drop_caches' if cold else 'cold: unavailable',
             'from GNU time' if TIME else "from wait4: an upper bound (includes Python's image; install 'time')"))
    base = measure(['true'], a.runs, False, ok_codes=(0,))
    print('launcher floor (GNU time + exec of true): %.1f ms wall, %.1f ms CPU, %.1f MiB RSS -- included below'
          % (base['wall'] * 1e3, base['cpu'] * 1e3, base['rss_kib'] / 1024))
    print('peer: %s' % (peer if have_peer else
                        'peer unavailable (DUMPLEAK_PEER unset or not executable); comparing with dd of the pages dumpleak reads'))
    sys.stdout.flush()

    rows, ranges_of = [], {}
    for d in big:
        log('timing %s' % os.path.basename(d['path']))
        res = {}
        for name, args in COMMANDS:
            res[name] = {m: measure([bin_] + args + [d['path']], a.runs, m == 'cold') for m in modes}
        ranges, npages = touched(bin_, d['path'])
        ranges_of[d['path']] = ranges
        d['pages_read_main'] = npages
        d['read_ranges_main'] = len(ranges)
        if d['arch'] == 'x64':
            if have_peer:
                # kdmp-parser indexes every page in Parse(); with no option it then prints the context.
                res['peer'] = {m: measure([peer, d['path']], a.runs, m == 'cold', ok_codes=(0,))
                               for m in modes}
            else:
                res['dd'] = {m: measure(dd_script(d['path'], ranges, out), a.runs, m == 'cold', (0,))
                             for m in modes}
        d['results'] = res
        rows.append(d)

    # Table.
    hdr = '%-8s %4s %5s %-8s | %8s %8s %7s | %8s %8s %7s' % (
        'arch', 'type', 'GiB', 'command', 'wall ms', 'cpu ms', 'RSS MiB', 'wall ms', 'cpu ms', 'RSS MiB')
    print('\n%s\n%-29s | %-26s | %s' % ('=' * len(hdr), '', 'warm', 'cold' if cold else 'cold: unavailable'))
    print(hdr)
    print('-' * len(hdr))
    for d in rows:
        for name in [c for c, _ in COMMANDS] + ['peer', 'dd']:
            if name in d['results']:
                r = d['results'][name]
                label = {'peer': 'peer', 'dd': 'dd read'}.get(name, name)
                print('%-8s %4d %5d %-8s | %s | %s' % (d['arch'], d['type'], d['gib'], label,
                                                       fmt(r.get('warm')), fmt(r.get('cold'))))
        print('%-28s   main job read %d pages (%.1f MiB, readahead included) in %d ranges of a %.0f GiB file%s'
              % ('', d['pages_read_main'], d['pages_read_main'] * 4096 / MIB, d['read_ranges_main'],
                 os.path.getsize(d['path']) / (1 << 30), '; dd: %d processes reading %.0f MiB (gaps merged)' % (
                     len(coalesce(ranges_of[d['path']])),
                     sum(n for _, n in coalesce(ranges_of[d['path']])) * 4096 / MIB)
                 if 'dd' in d['results'] else ''))

    # Ratios against the peer (or dd).
    ref = 'peer' if have_peer else 'dd'
    ratios = []
    print('\nratio dumpleak main job / %s (wall, warm%s):' % (
        'peer open-and-index' if have_peer else 'dd of the same pages', ', cold' if cold else ''))
    for d in rows:
        if ref not in d['results']:
            continue
        ent = {'arch': d['arch'], 'type': d['type'], 'gib': d['gib']}
        parts = []
        for m in modes:
            r = d['results']['main'][m]['wall'] / d['results'][ref][m]['wall']
            rc = d['results']['main'][m]['cpu'] / d['results'][ref][m]['cpu']
            ent[m], ent[m + '_cpu'] = round(r, 4), round(rc, 4)
            parts.append('%s %.3f (%s; CPU %s)' % (m, r, speed(r), speed(rc)))
        ratios.append(ent)
        print('  %-8s type %d %3d GiB: %s' % (d['arch'], d['type'], d['gib'], ', '.join(parts)))

    scal = scaling(rows, sizes)
    print('\nopening cost (info, warm, CPU) against size:')
    for s in scal:
        extra = ('; %.2f ms per MiB of bitmap' % s['ms_per_bitmap_mib']
                 if s['type'] == 5 else '')
        print('  %-8s type %d: %s ms (%s GiB), RSS +%.1f MiB -> %s: %s%s' % (
            s['arch'], s['type'], ' / '.join('%.1f' % v for v in s['info_cpu_ms'].values()),
            ' / '.join(s['info_cpu_ms']), s['rss_growth_mib'], s['model'], 'holds' if s['holds'] else 'DOES NOT HOLD', extra))

    # Batch throughput.
    batch = {}
    if small:
        log('batch of %d dumps' % len(small))
        for j in (1, 2):
            argv = [bin_, '--json', '-j', str(j)] + small
            lines = subprocess.run(argv, capture_output=True, text=True).stdout.count('\n')
            m = measure(argv, min(a.runs, 3), False, ok_codes=(0, 1, 3, 4))
            m['dumps_per_s'] = len(small) / m['wall']
            m['lines'] = lines
            batch['j%d' % j] = m
        print('\nbatch: %d dumps of 64 MiB (%d kinds, default scenario), --json, warm:' % (len(small), len(BATCH_KINDS)))
        for k, m in batch.items():
            print('  -%s %s: %.2f s wall, %.2f s CPU, %.1f MiB RSS, %.0f dumps/s, %d lines'
                  % (k[0], k[1:], m['wall'], m['cpu'], m['rss_kib'] / 1024, m['dumps_per_s'], m['lines']))
        if 'j2' in batch:
            print('  speed-up -j 2 / -j 1: %.2fx' % (batch['j1']['wall'] / batch['j2']['wall']))

    # Targets.
    full64 = [d for d in rows if d['type'] == 1 and d['gib'] == max(sizes)]
    t_main = all(d['results']['main']['warm']['wall'] < MAIN_TARGET_S for d in full64)
    max_rss = max(m['rss_kib'] for d in rows for c, _ in COMMANDS for m in d['results'][c].values())
    t_rss = max_rss < RSS_TARGET_MIB * 1024
    # The peer's index grows with the dump: judged where users are (the largest size).
    top = [r for r in ratios if r['gib'] == max(sizes)]
    t_peer = all(r['warm'] <= 1 / PEER_FACTOR for r in top) if have_peer and top else None
    t_scal = all(s['holds'] for s in scal)
    targets = {'main_64g_full_under_0_5s_warm': t_main, 'peak_rss_under_64mib': t_rss,
               'max_rss_mib': round(max_rss / 1024, 1), 'ten_times_faster_than_peer': t_peer,
               'opening_scales': t_scal}
    yn = lambda v: 'n/a (peer unavailable)' if v is None else ('holds' if v else 'DOES NOT HOLD')
    print('\ntargets:')
    print('  main job, %d GiB full dumps, warm < %.1f s: %s (%s)' % (
        max(sizes), MAIN_TARGET_S, yn(t_main),
        ', '.join('%s %.0f ms' % (d['arch'], d['results']['main']['warm']['wall'] * 1e3) for d in full64)))
    print('  peak RSS < %d MiB on every dump and command: %s (max %.1f MiB)' % (RSS_TARGET_MIB, yn(t_rss), max_rss / 1024))
    if batch:
        # Memory must not grow with the number of dumps either.
        worst = max(batch.values(), key=lambda m: m['rss_kib'])
        targets['batch_rss_under_64mib'] = worst['rss_kib'] < RSS_TARGET_MIB * 1024
        print('  peak RSS < %d MiB in the batch of %d: %s (%s)' % (
            RSS_TARGET_MIB, len(small), yn(targets['batch_rss_under_64mib']),
            ', '.join('-%s %s %.1f MiB' % (k[0], k[1:], m['rss_kib'] / 1024) for k, m in batch.items())))
    print('  >= %dx faster than the peer open-and-index, %d GiB, warm: %s (%s)' % (
        PEER_FACTOR, max(sizes), yn(t_peer),
        ', '.join('type %d %.0fx' % (r['type'], 1 / r['warm']) for r in top) if have_peer else 'see the dd ratios'))
    print('  opening constant (runs) / linear in the bitmap (bitmap): %s' % yn(t_scal))

    res = {'scenario': scenario, 'build': BUILD, 'runs': a.runs, 'cold': cold, 'launcher_floor': base,
           'peer': peer if have_peer else None, 'comparison': ref,
           'dumps': [{k: v for k, v in d.items()} | {'path': os.path.relpath(d['path'], out)}
                     for d in rows],
           'ratios': ratios, 'scaling': scal, 'batch': batch, 'targets': targets}
    with open(os.path.join(out, 'results.json'), 'w') as f:
        json.dump(res, f, indent=1)
    print('\nresults: %s' % os.path.join(out, 'results.json'))


if __name__ == '__main__':
    main()
