"""Named scenarios (dicts of overrides read by forge.py / kernel.py / pool.py).
The case scenarios reproduce the figures of /work/shared/cases/00N_*.txt:
tag figures there are !poolused *diff* values (pool-internals §2.5), so a tag
entry here is [npAllocs, npFrees, npBytes, pAllocs, pFrees, pBytes] with
allocs - frees = the case figure; the forge splits each over the CPU tables.
'default' is fully randomised by the seed."""

GIB = 1 << 30


def T(diff, nbytes, frees=0, pdiff=0, pbytes=0, pfrees=0):
    return [diff + frees, frees, nbytes, pdiff + pfrees, pfrees, pbytes]


def pages_split(total_pages, n, seed):
    """n page counts summing to total_pages (deterministic)."""
    import random
    r = random.Random(seed)
    cuts = sorted(r.sample(range(1, total_pages), n - 1))
    out, prev = [], 0
    for c in cuts + [total_pages]:
        out.append(c - prev)
        prev = c
    return out


SCENARIOS = {
    'default': {},
    'nopool': {'pool': False},
    'legacy-type2': {'type2_layout': 'legacy'},
    'modern-type2': {'type2_layout': 'modern'},
    'expansion': {'expansion': True, 'tracker_bits': 9},
    'overflow': {'overflow': True},
    'l1tf-bytes': {'l1tf_bytes': (45, 4)},
    # KDBG kept encoded in memory (pool-internals §1.5); same seed -> same dump as default otherwise
    'kdbg-encoded': {'kdbg_encoded': True, 'twin_of': None, 'arch': ('x64',), 'min_build': 9200,
                     'types': (1, 2, 5, 6, 8, 9, 10)},
    # the header's KdDebuggerDataBlock points at zeros; a plain KDBG sits in nt .data
    'kdbg-bad-pointer': {'kdbg_bad_pointer': True, 'twin_of': None, 'types': (1, 2, 5, 6, 8, 9, 10)},

    # case 000: x86 PAE Server 2003 (3790), Thre handle leak, NonPagedPool 65244/65503.
    'case000': {
        'arch': ('x86-pae',), 'build': (3790,), 'cpus': 4, 'phys_mb': 4096,
        'tracker_bits': 11, 'bugcheck': (0xE2, [0, 0, 0, 0]),
        'tags': [('Thre', [772672, 463590, 192867168, 0, 0, 0]),
                 ('MmCm', [42, 9, 12153104, 0, 0, 0])],
        'big': [('MmCm', [12153104 // 4 // 4096 * 4096] * 2 + [2 * 4096], 0)],
        'vm': {'physical_pages': 1048352, 'available_pages': 697734, 'resavail_pages': 958085,
               'modified_pages': 195, 'nonpaged_pool_pages': 65244, 'nonpaged_pool_max_pages': 65503,
               'paged_pools': [6576, 629, 624, 608, 625], 'paged_pool_max_pages': 66560,
               'shared_commit_pages': 7711, 'process_commit_pages': 10625,
               'paged_pool_commit_pages': 9102, 'driver_commit_pages': 1759,
               'committed_pages': 425816, 'commit_limit_pages': 2052560},
        'drivers': [('mydriver.sys', 'system32\\drivers', 0x8000, [b'Thre'], ['ExAllocatePoolWithTag'])],
        'year': 2008,
    },
    # case 001: Server 2003 SP2 x86 PAE, NotMyfault nonpaged leak, bugcheck D1, uniprocessor.
    'case001': {
        'arch': ('x86-pae',), 'build': (3790,), 'cpus': 1, 'phys_mb': 1024,
        'tracker_bits': 11,
        'bugcheck': (0xD1, [0xe14c0008, 2, 0, 0xf799f579]),
        'driver_base': {'myfault.sys': 0xf799f000},
        'tags': [('Leak', T(23, 193024000, frees=1290)),
                 ('LSwi', T(1, 2576384)),
                 ('TCPt', T(33, 1422640, frees=5012))],
        'totals': (23954, 203162872, 32342, 19144784),     # the !poolused TOTAL row
        'big': [('Leak', [p * 4096 for p in pages_split(47125, 23, 1)], 0),
                ('LSwi', [2576384], 0)],
        'vm': {'physical_pages': 262010, 'available_pages': 166628, 'resavail_pages': 199386,
               'modified_pages': 359, 'nonpaged_pool_pages': 49746, 'nonpaged_pool_max_pages': 51967,
               'paged_pools': [3639, 675, 675], 'paged_pool_max_pages': 70656},
        'plain_tags': True, 'year': 2009, 'filler_max_bytes': 1400000,
    },
    # case 002: Win10 x64 19041, myfault ExAllocatePool2 40 MiB x 119 'Leak'.
    'case002': {
        'arch': ('x64',), 'build': (19041,), 'cpus': 4, 'phys_mb': 8192,
        'tracker_bits': 12, 'pcid': False,
        'nt_base': 0xfffff80722600000,
        'driver_base': {'myfault.sys': 0xfffff80747f50000},
        'driver_opts': {'myfault.sys': {'tag_offsets': [0x1559 - 2, 0x15c7 - 2]}},
        'bugcheck': (0xD1, [0xffffd50f2a4c0000, 2, 0, 0xfffff80747f51650]),
        'tags': [('Leak', T(119, 4991221760, frees=7)),
                 ('ConT', T(238, 14499840, frees=40)),
                 ('KETR', T(16410, 8117664, frees=391)),
                 ('EtwB', T(196, 7565568, frees=20, pdiff=2, pbytes=131072)),
                 ('2872', T(6, 5660864)),
                 ('287R', T(1026, 4183040, frees=3)),
                 ('File', T(9734, 3877408, frees=1203341)),
                 ('Thre', T(1257, 3217920, frees=80211)),
                 ('EtwR', T(12141, 2672640, frees=511))],
        'big': [('Leak', [40 * 1024 * 1024] * 119, 0x200)],
        'vm': {'physical_pages': 2069421, 'available_pages': 445015, 'resavail_pages': 707292,
               'modified_pages': 11479, 'committed_pages': 1688747, 'commit_limit_pages': 4166573},
        'unloaded': [('360Sensor64.sys', 0xfffff8073c6e0000, 0xc000),
                     ('dump_storport.sys', 0xfffff80731550000, 0x10000),
                     ('dump_storahci.sys', 0xfffff807315a0000, 0x33000),
                     ('dump_dumpfve.sys', 0xfffff80731000000, 0x1e000),
                     ('luafv.sys', 0xfffff80726b80000, 0x2c000),
                     ('dump_storport.sys', 0xfffff80726b20000, 0x10000),
                     ('dump_storahci.sys', 0xfffff80726b70000, 0x33000),
                     ('dump_dumpfve.sys', 0xfffff80726bd0000, 0x1e000),
                     ('dam.sys', 0xfffff80728130000, 0x1c000),
                     ('360elam64.sys', 0xfffff80724200000, 0xa000),
                     ('hwpolicy.sys', 0xfffff80725230000, 0x11000)],
        'plain_tags': True, 'year': 2023, 'filler_max_bytes': 2600000,
    },
    # case 004: x86 Server 2003 (/3GB), 'None' leak from a GUID-named driver importing ExAllocatePool.
    'case004': {
        'arch': ('x86',), 'build': (3790,), 'cpus': 4, 'phys_mb': 3400,
        'tracker_bits': 11, 'nt_base': 0xe0800000, 'nt_text_size': 0xA0000,
        'export_rva': {'ExAllocatePool': 0x94d1f, '_wcsnicmp': 0x28e04,
                       'ExFreePoolWithTag': 0x9b708, 'KeInitializeEvent': 0x3e30a},
        'drivers': [('{5D2F7A3E-1B4C-4E8A-9F06-3C7B2D1E0A94}.sys', 'system32\\drivers', 0xC000, [],
                     [])],
        'driver_base': {'{5D2F7A3E-1B4C-4E8A-9F06-3C7B2D1E0A94}.sys': 0xf50b3000},
        'driver_opts': {'{5D2F7A3E-1B4C-4E8A-9F06-3C7B2D1E0A94}.sys': {
            'imports': ['ExAllocatePool', '_wcsnicmp', 'ExFreePoolWithTag', 'KeInitializeEvent'],
            'iat_at': 0x5058, 'imports_in_init': True}},
        'bugcheck': (0xE2, [0, 0, 0, 0]),
        'tags': [('None', T(246479, 50827424, frees=1877301)),
                 ('MmCm', T(1198, 18462512, frees=77))],
        'vm': {'physical_pages': 851420, 'available_pages': 573277, 'resavail_pages': 800628,
               'modified_pages': 22, 'nonpaged_pool_pages': 31369, 'nonpaged_pool_max_pages': 31986,
               'paged_pools': [19071, 735, 747, 720, 746], 'paged_pool_max_pages': 38912},
        'plain_tags': True, 'year': 2010,
    },
    # Windows 7 SP1 x64: 'Ddk ' leak (driver calling ExAllocatePool with POOL_TAGGING).
    'win7': {
        'arch': ('x64', 'x86', 'x86-pae'), 'build': (7601,), 'cpus': 4,
        'tags': [('Ddk ', T(52011, 213037056, frees=90211))],
        'big': [('Ddk ', [4096 * 16] * 40, 0)],
        'drivers': [('leaky.sys', 'system32\\drivers', 0x7000, [b'Ddk '], ['ExAllocatePoolWithTag'])],
        'overflow': True,
    },
    # Windows 11 (22631 / 26100), 8 CPUs, ExAllocatePool2 'Leak' in NonPagedPoolNx.
    'win11': {
        'arch': ('x64',), 'build': (22631, 26100), 'cpus': 8,
        'tags': [('Leak', T(300, 300 * 1048576, frees=12)),
                 ('Thre', T(2100, 5376000, frees=912000))],
        'big': [('Leak', [1048576] * 300, 0x200)],
    },
}


# ---- issue 4: suspect-driver scenarios (x64 19041, x86-pae 7601, x64 26100 in the matrix) ----
SUSPECT_CFG = {'arch': ('x64', 'x86-pae'), 'phys_mb': 128, 'plain_tags': True,
               'filler_max_bytes': 900000}
DRV = 'system32\\drivers'
KMDF_EXPORTS = ['WdfVersionBind', 'WdfVersionUnbind', 'WdfVersionBindClass', 'WdfVersionUnbindClass',
                'WdfLdrQueryInterface']


def _sus(**kw):
    d = dict(SUSPECT_CFG)
    d.update(kw)
    return d


SCENARIOS.update({
    # (a) the tag as an instruction immediate in .text (x64 mov r8d / mov r9d / mov [rsp+28h];
    # x86 push), a second code tag in paged pool
    'suspect-code': _sus(
        drivers=[('lkcode.sys', DRV, 0x12000, [], ['ExAllocatePoolWithTag']),
                 ('pgleak.sys', DRV, 0xA000, [], ['ExAllocatePoolWithTag'])],
        driver_opts={'lkcode.sys': {'init_size': 0x2000,
                                    'code_sites': [('LkCd', 'r8d'), ('LkCd', 'r9d'), ('LkCd', 'rsp')]},
                     'pgleak.sys': {'init_size': 0x1000, 'code_sites': [('LkPg', 'rsp')]}},
        tags=[('LkCd', T(40000, 81920000, frees=1200)),
              ('LkPg', T(0, 0, pdiff=9000, pbytes=36864000, pfrees=40))],
        suspect_tags=['LkCd', 'LkPg'],
        pooltag=['LkCd - lkcode.sys - forge: leaking driver, tag in code',
                 'Zq* - zqfilter.sys - forge: wildcard line matching nothing here']),
    # (b) the tag only in data (.rdata and .data strings)
    'suspect-data': _sus(
        drivers=[('dtonly.sys', DRV, 0xC000, [], ['ExAllocatePoolWithTag'])],
        driver_opts={'dtonly.sys': {'init_size': 0x1000, 'data_tags': [('DtLk', '.rdata'), ('DtLk', '.data')]}},
        tags=[('DtLk', T(30000, 61440000, frees=77))],
        suspect_tags=['DtLk']),
    # (c) one tag, two drivers: in code in one, in data in the other (loaded first) -> code wins
    'suspect-shared': _sus(
        drivers=[('shdata.sys', DRV, 0xA000, [], ['ExAllocatePoolWithTag']),
                 ('shcode.sys', DRV, 0xA000, [], ['ExAllocatePoolWithTag'])],
        driver_opts={'shdata.sys': {'init_size': 0x1000, 'data_tags': [('ShTg', '.rdata')]},
                     'shcode.sys': {'init_size': 0x1000, 'code_sites': [('ShTg', 'r8d')]}},
        tags=[('ShTg', T(25000, 51200000, frees=310))],
        suspect_tags=['ShTg']),
    # (d) the only site sits in a PAGE-section page absent from the dump (paged out in full
    # dumps; valid PTE but page frame not included in kernel-only dumps)
    'suspect-absent': _sus(
        drivers=[('pagedrv.sys', DRV, 0x9000, [], ['ExAllocatePoolWithTag'])],
        driver_opts={'pagedrv.sys': {'init_size': 0x1000, 'page_size': 0x3000, 'page_tag': b'AbPg'}},
        tags=[('AbPg', T(20000, 40960000, frees=5))],
        suspect_tags=['AbPg'],
        pooltag=['AbPg - pagedrv.sys - forge: tag only in a paged-out PAGE section']),
    # (e) case 004's None leak: exactly one driver imports ExAllocatePool (IAT resident, import
    # descriptors in the discarded INIT section); the others import ExAllocatePoolWithTag
    'suspect-none': _sus(
        drivers=[('oldstyle.sys', DRV, 0xB000, [], [])],
        driver_opts={'oldstyle.sys': {'init_size': 0x2000, 'imports_in_init': True,
                                      'imports': ['ExAllocatePool', 'ExFreePool', 'KeInitializeEvent',
                                                  'IoCreateDevice']}},
        tags=[('None', T(150000, 30000000, frees=900000))],
        suspect_tags=['None']),
    # (f) the leaking driver has unloaded: its tag is in no loaded image
    'suspect-unloaded': _sus(
        unloaded_extra=['leakold.sys'],
        tags=[('UnLd', T(12000, 24576000, frees=4))],
        suspect_tags=['UnLd'],
        pooltag=['UnLd - leakold.sys - forge: driver that unloaded']),
    # (g) KMDF: the tag is the first 4 characters of the driver's name; it imports WDF01000.SYS
    'suspect-kmdf': _sus(
        drivers=[('Wdf01000.sys', DRV, 0x20000, [], ['ExAllocatePoolWithTag']),
                 ('acmeaudio.sys', DRV, 0xA000, [], ['ExAllocatePoolWithTag']),
                 ('acmekbd.sys', DRV, 0xA000, [], []),
                 ('vhfkmdf.sys', DRV, 0x8000, [], [])],
        driver_opts={'Wdf01000.sys': {'init_size': 0x2000, 'exports': KMDF_EXPORTS},
                     'acmeaudio.sys': {'init_size': 0x1000},
                     'acmekbd.sys': {'init_size': 0x1000, 'imports': ['KeBugCheckEx', 'RtlInitUnicodeString'],
                                     'extra_libs': [('WDF01000.SYS', KMDF_EXPORTS[:4])]},
                     'vhfkmdf.sys': {'init_size': 0x1000, 'imports': ['KeBugCheckEx'],
                                     'extra_libs': [('WDF01000.SYS', KMDF_EXPORTS[:2])]}},
        tags=[('acme', T(18000, 36864000, frees=250)), ('vhfk', T(12, 24576))],
        suspect_tags=['acme']),
})

def _bench():
    """issue 6: 300 extra modules (~100 MiB of images, headers + sections + a few resident
    non-zero code pages each, the rest zero pages), 32 bench tags placed in code/data/nowhere,
    4096-entry tracker tables, a 64K-entry big-page table.  Deterministic (its own generator)."""
    import random
    r = random.Random(6)
    drivers, opts = [], {}
    btags = ['Bn%02d' % i for i in range(32)]
    where = {}
    for j, t in enumerate(btags):
        if j < 24:
            where.setdefault((j * 11 + 3) % 300, []).append(('code', t))
            if j % 5 == 0:
                where.setdefault((j * 17 + 150) % 300, []).append(('data', t))
        elif j < 28:
            where.setdefault((j * 13 + 7) % 300, []).append(('data', t))
        # Bn28..Bn31: in no image
    for i in range(300):
        name = 'bdrv%03d.sys' % i
        size = r.randrange(6, 160) * 0x1000
        allocs = ['ExAllocatePool'] if i in (41, 197) else ['ExAllocatePoolWithTag']
        drivers.append((name, DRV, size, [], allocs))
        o = {'init_size': 0x1000, 'fill': r.randrange(1, 4)}
        cs = [(t, r.choice(['r8d', 'r9d', 'rsp'])) for k, t in where.get(i, ()) if k == 'code']
        ds = [(t, r.choice(['.rdata', '.data'])) for k, t in where.get(i, ()) if k == 'data']
        if cs:
            o['code_sites'] = cs
        if ds:
            o['data_tags'] = ds
        opts[name] = o
    tags = [(t, T(20000 - 500 * j, (400 - 10 * j) * 1048576, frees=1000 + j)) for j, t in enumerate(btags)]
    tags.append(('None', T(90000, 18000000, frees=120000)))
    big = [(btags[j % 24], [r.randrange(1, 17) * PAGE_ for _ in range(250)], 0x200 if j % 3 else 0)
           for j in range(24)]
    return {'arch': ('x64', 'x86-pae'), 'cpus': 8, 'phys_mb': 4096, 'tracker_bits': 12,
            'filler_tags': 1500, 'bigpage_entries': 65536, 'big_va32': 0x98000000,
            'drivers': drivers, 'driver_opts': opts, 'tags': tags, 'big': big, 'plain_tags': True,
            'filler_max_bytes': 8000000, 'suspect_tags': btags[:20] + ['None']}


PAGE_ = 0x1000
SCENARIOS['bench'] = _bench()

for _n, _t in (('case001', ['Leak']), ('case002', ['Leak']), ('case004', ['None']), ('win7', ['Ddk ']),
               ('win11', ['Leak'])):
    SCENARIOS[_n]['suspect_tags'] = _t


def names():
    return sorted(SCENARIOS)


def get(name, arch, build, dtype=None):
    s = SCENARIOS.get(name or 'default')
    if s is None:
        raise SystemExit('forge: unknown scenario %s' % name)
    s = dict(s)
    if 'types' in s and dtype is not None and dtype not in s['types']:
        raise SystemExit('forge: scenario %s needs --type %s' % (name, '|'.join(map(str, s['types']))))
    if build < s.get('min_build', 0):
        raise SystemExit('forge: scenario %s needs --build >= %d' % (name, s['min_build']))
    if 'arch' in s and arch not in s['arch']:
        raise SystemExit('forge: scenario %s needs --arch %s' % (name, '|'.join(s['arch'])))
    if 'build' in s and build not in s['build']:
        raise SystemExit('forge: scenario %s needs --build %s' % (name, '|'.join(map(str, s['build']))))
    return s
