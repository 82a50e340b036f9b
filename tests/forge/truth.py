"""Truth JSON assembly (cli-contract.md member names)."""

BUGCHECK_NAMES = {
    0x0A: 'IRQL_NOT_LESS_OR_EQUAL', 0x19: 'BAD_POOL_HEADER', 0x1A: 'MEMORY_MANAGEMENT',
    0x1E: 'KMODE_EXCEPTION_NOT_HANDLED', 0x3B: 'SYSTEM_SERVICE_EXCEPTION',
    0x41: 'MUST_SUCCEED_POOL_EMPTY', 0x50: 'PAGE_FAULT_IN_NONPAGED_AREA',
    0x7E: 'SYSTEM_THREAD_EXCEPTION_NOT_HANDLED', 0xC2: 'BAD_POOL_CALLER',
    0xD1: 'DRIVER_IRQL_NOT_LESS_OR_EQUAL', 0xE2: 'MANUALLY_INITIATED_CRASH',
    0x161: 'LIVE_SYSTEM_DUMP', 0x133: 'DPC_WATCHDOG_VIOLATION',
}
TYPE_NAMES = {1: 'full', 2: 'kernel', 4: 'triage', 5: 'bitmap-full', 6: 'bitmap-kernel',
              8: 'rdmp-kernel', 9: 'rdmp-kernel-user', 10: 'rdmp-full'}


def bugcheck_name(code):
    base = code & ~0x10000000
    n = BUGCHECK_NAMES.get(base)
    if n and code & 0x10000000:
        n += '_M'
    return n


def hx(v):
    return hex(v)


def info(m, h, arch, dump_type, pages_present, build_lab, kdbg_ok=True):
    mask = 0xFFFFFFFF if m.bits == 32 else (1 << 64) - 1
    return {
        'source': {'input': 'crashdump', 'wrapper': None, 'cr3_from': 'header',
                   'kdbg_from': 'header' if kdbg_ok else None,
                   'kdbg_encoded': False if kdbg_ok else None},
        'format': {'signature': 'PAGEDU64' if m.bits == 64 else 'PAGEDUMP', 'bits': m.bits,
                   'arch': arch, 'dump_type': dump_type, 'dump_type_name': TYPE_NAMES[dump_type],
                   'pages_present': pages_present},
        'os': {'build': m.build, 'checked': False, 'build_lab': build_lab, 'processors': m.cpus},
        'bugcheck': {'code': '0x%08x' % h['bugcheck_code'], 'name': bugcheck_name(h['bugcheck_code']),
                     'params': [hx(p & mask) for p in h['bugcheck_params']]},
    }


def header_truth(m, h):
    return {
        'signature': 'PAGEDU64' if m.bits == 64 else 'PAGEDUMP',
        'major': h['major'], 'minor': h['minor'], 'dtb': hx(h['dtb']),
        'pfn_database': hx(h['pfn_database']), 'pfn_database_form': h['pfn_form'],
        'ps_loaded_module_list': hx(h['ps_loaded_module_list']),
        'ps_active_process_head': hx(h['ps_active_process_head']),
        'machine': h['machine'], 'processors': h['processors'],
        'bugcheck_code': hx(h['bugcheck_code']),
        'bugcheck_params': [hx(p) for p in h['bugcheck_params']],
        'pae': (bool(h['pae']) if m.bits == 32 else None),
        'kdbg': hx(h['kdbg']), 'dump_type': h['dump_type'],
        'system_time': h['system_time'], 'system_uptime': h['system_uptime'],
        'attributes': h.get('attributes'), 'required_dump_space': h['required_dump_space'],
        'mini_dump_fields': h['mini_dump_fields'], 'product_type': h['product_type'],
        'suite_mask': h['suite_mask'], 'comment': h.get('comment'),
        'writer_status': h.get('writer_status'), 'boot_id': h.get('boot_id'),
        'header_size': 0x2000 if m.bits == 64 else 0x1000,
    }
