#!/usr/bin/env python3
"""capture.py: turn a forged type-1 MEMORY.DMP into the hypervisor captures of the same memory
(QEMU ELF core, kdump-compressed, makedumpfile flattened stream, raw image, VirtualBox ELF core,
VMware .vmem + .vmss/.vmsn or a state file with the RAM inline) + a truth file.

Written from /work/shared/spec/vm-captures.md §2, §2.1, §3, §4, §4.1, §7, §8 and dump-format.md
§1-§2 only.
See CAPTURES.md. Python 3 stdlib; makedumpfile (Debian) is used when asked for and installed.
"""
import argparse
import copy
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from capture_phys import PAGE, ZERO, SourceDump, Guest, DumpError, in_blocks   # noqa: E402
import capture_elf as E      # noqa: E402
import capture_kdump as K    # noqa: E402
import capture_vbox as V     # noqa: E402
import capture_vmware as VM  # noqa: E402

QEMU_KINDS = ['elf', 'elf32', 'kdump', 'kdump-flat', 'raw']
VMW_KINDS = ('vmem', 'vmss-inline')
KINDS = QEMU_KINDS + ['vbox', 'vmem', 'vmss-inline']
DEFECTS = {
    'truncated-elf-segment': ('elf', 'elf32'),
    'lying-note-size': ('elf', 'elf32', 'kdump'),
    'flat-overlap': ('kdump-flat',),
    'flat-past-end': ('kdump-flat',),
    'no-cr3': tuple(QEMU_KINDS),
    'vbox-cpu-count': ('vbox',),
    'vbox-bad-magic': ('vbox',),
    'vmss-bad-tag': ('vmem',),
    'vmss-region-outside': ('vmem',),
    'vmss-compressed-memory': ('vmss-inline',),
    'vmem-alone': ('vmem',),
    'vmss-no-cpu': VMW_KINDS,
}
# defects after which the state file is not used: the .vmem is read flat (§4.1, §8.1)
VMW_FLAT = ('vmss-bad-tag', 'vmss-region-outside', 'vmem-alone')
# content defects of the source dump that survive a capture unchanged (forge README)
SOURCE_DEFECTS_OK = (None, 'module-cycle', 'module-ptr-absent', 'kdbg-bad-tag',
                     'pool-tracker-absent', 'pool-bad-size', 'bigpool-garbage')
INPUT_NAME = {'elf': 'elf', 'elf32': 'elf', 'kdump': 'kdump', 'kdump-flat': 'kdump-flattened',
              'raw': 'raw', 'vbox': 'elf', 'vmem': 'vmem', 'vmss-inline': 'vmem'}


class Usage(Exception):
    pass


def H(v):
    return None if v is None else hex(v)


def have_makedumpfile():
    return shutil.which('makedumpfile') is not None


def run_makedumpfile(elf_path, out, flat):
    """Debian's makedumpfile as an independent kdump writer: -d 0 (keep every page), -c (zlib)."""
    if os.path.exists(out):
        os.unlink(out)
    cmd = ['makedumpfile', '-d', '0', '-c']
    if flat:
        with open(out, 'wb') as f:
            p = subprocess.run(cmd + ['-F', elf_path], stdout=f, stderr=subprocess.PIPE)
    else:
        p = subprocess.run(cmd + [elf_path, out], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError('makedumpfile failed (%d): %s' % (p.returncode, p.stderr.decode()[-400:]))


def vmcoreinfo_header(src):
    """The DUMP_HEADER as KeInitializeCrashDumpHeader leaves it for the fwcfg driver (no bugcheck
    yet: BugCheckCode and parameters 0; DumpType 1 = DUMP_TYPE_FULL)."""
    h = bytearray(src.header)
    if src.bits == 64:
        struct.pack_into('<I', h, 0x38, 0)
        h[0x40:0x60] = bytes(32)
        struct.pack_into('<I', h, 0xF98, 1)
    else:
        struct.pack_into('<I', h, 0x28, 0)
        h[0x2C:0x3C] = bytes(16)
        struct.pack_into('<I', h, 0xF88, 1)
    return bytes(h)


def make_cpus(guest, truth, n_user, rng):
    arch = guest.arch
    nt = int(truth['kernel']['nt_base'], 16)
    ncpu = truth['header']['processors']
    cpus, users = [], []
    for i in range(ncpu):
        user = i < n_user
        if arch == 'x64':
            kpcr = 0xFFFFF80000000000 + 0x7E000000 + 0x10000 * i if i else 0xFFFFF8007E6F0000
            teb = 0x000000C0DE000000 + 0x2000 * i
            krip = nt + 0x1000 + rng.randrange(0x100, 0x3F000) & ~0xF
            krsp = 0xFFFFF90000000000 + rng.randrange(1, 0x1000) * 0x6000 - 0x1C8
        else:
            kpcr = 0xFFDFF000 if i == 0 else 0x807C0000 + 0x4000 * i
            teb = 0x7FFDF000 - 0x1000 * i
            krip = nt + 0x1000 + rng.randrange(0x100, 0x3F000) & ~0xF
            krsp = 0x8A000000 + rng.randrange(1, 0x1000) * 0x3000 - 0x1C
        if user:
            cr3, code_va = guest.add_user_cr3(i)
            rip = code_va + rng.randrange(0, 0xF00)
            rsp = (0x000000C0DF000000 if arch == 'x64' else 0x0012F000) - 0x28 - 0x100 * i
            users.append({'cpu': i, 'cr3': hex(cr3), 'rip': hex(rip)})
        else:
            cr3, rip, rsp = guest.cr3, krip, krsp
        cpus.append(E.VCpu(i, arch, user, cr3, rip, rsp, rng, kpcr, teb,
                           pcid=bool(arch == 'x64' and guest.cr3 & 0xFFF)))
    return cpus, users


def expected_cr3_source(kind, cpu_notes, n_user, ncpu, vmci, low_stub, defect, vbox_format=None):
    if defect in ('no-cr3', 'lying-note-size', 'vmss-compressed-memory'):
        return None
    if kind == 'vbox':
        # registers only from format 0x00010004-6 with a sane VBCORE (§2.1 checks)
        if 0x00010004 <= vbox_format <= 0x00010006 and n_user < ncpu and \
                defect not in ('vbox-cpu-count', 'vbox-bad-magic'):
            return 'vbox-note'
    elif kind in VMW_KINDS:
        if n_user < ncpu and defect not in VMW_FLAT + ('vmss-no-cpu',):
            return 'vmware-state'
    elif kind != 'raw':
        if cpu_notes and n_user < ncpu:
            return 'qemu-note'
        if vmci:
            return 'vmcoreinfo'
    if low_stub:
        return 'low-stub'
    return 'self-map-scan'


def build(args):
    src = SourceDump(args.dump)
    with open(args.truth) as f:
        truth = json.load(f)
    kind = args.kind
    defect = args.defect
    if truth.get('type') != 1:
        raise Usage('source truth is not a type-1 dump')
    if truth.get('defect') not in SOURCE_DEFECTS_OK:
        raise Usage('source defect %s changes the physical layer; use a good dump or a content '
                    'defect (%s)' % (truth.get('defect'), ', '.join(d for d in SOURCE_DEFECTS_OK if d)))
    if defect and kind not in DEFECTS[defect]:
        raise Usage('--defect %s needs --kind %s' % (defect, '|'.join(DEFECTS[defect])))
    if args.writer == 'makedumpfile':
        if kind not in ('kdump', 'kdump-flat'):
            raise Usage('--writer makedumpfile is for kdump and kdump-flat')
        if not have_makedumpfile():
            raise Usage('makedumpfile is not installed (apt-get install -y --no-install-recommends makedumpfile)')
        if defect in ('flat-overlap', 'flat-past-end', 'lying-note-size'):
            raise Usage('defects are written by the own writer')
        if args.vmcoreinfo:
            raise Usage('makedumpfile parses a VMCOREINFO note as Linux text and fails on the '
                        'Windows header: use --writer own with --vmcoreinfo')
    check_kind_options(args, kind, defect, src)
    seed = truth.get('seed') or 1
    layout = None
    if kind == 'vbox':
        # the VGA BIOS pages become a ROM range with data: never spare
        guest = Guest(src, seed, bios=not args.no_bios,
                      reserved=range(V.VGA_ROM[0], V.VGA_ROM[0] + V.VGA_ROM[1]))
    elif kind in VMW_KINDS:
        layout = args.vmem_layout or 'one'
        guest = Guest(src, seed, blocks=VM.guest_blocks(src.runs, layout))
    else:
        guest = Guest(src, seed, bios=not args.no_bios)
    ncpu = truth['header']['processors']
    n_user = min(args.cpus_in_user or 0, ncpu)
    if n_user and guest.arch != 'x64' and guest.arch not in ('x86', 'x86-pae'):
        raise Usage('bad arch')
    cpu_notes = not args.no_cpu_notes
    vmci = args.vmcoreinfo
    low_stub = args.low_stub
    if low_stub and guest.arch != 'x64':
        raise Usage('--low-stub is an x64 structure')
    if kind == 'raw' and (vmci or n_user):
        raise Usage('a raw image has no notes: --vmcoreinfo / --cpus-in-user need elf or kdump')
    if defect == 'no-cr3':
        cpu_notes, vmci, low_stub, n_user = False, False, False, 0
    if defect == 'lying-note-size':
        vmci, low_stub = False, False
    nt = int(truth['kernel']['nt_base'], 16)

    # --- memory changes (outside the Windows RAM runs, or the self-map entry in the top table)
    if defect == 'no-cr3':
        guest.scramble_tables()
    elif defect != 'lying-note-size':
        avoid = [int(v['va'], 16) for v in truth.get('vtop') or []]
        if truth.get('random_pt'):
            avoid.append(int(truth['random_pt']['base'], 16))
        guest.add_self_map(truth['build'], avoid)
    if low_stub:
        guest.add_low_stub(nt)
    cpus, users = make_cpus(guest, truth, n_user, guest.rng)
    vmci_desc = vmcoreinfo_header(src) if vmci else None
    notes, note_index = E.build_notes(cpus, cpu_notes, vmci_desc)
    if defect == 'lying-note-size':
        # the first note (CORE of vCPU 0) claims a descriptor far larger than PT_NOTE
        notes = notes[:4] + struct.pack('<I', 0x7FFFFF00) + notes[8:]

    # --- ELF class / machine as QEMU picks them (§2)
    top = guest.max_pfn() * PAGE
    if kind == 'elf32':
        if guest.arch == 'x64' or top > 1 << 32:
            raise Usage('ELF32 is for 32-bit guests with every RAM block below 4 GiB')
        cls64 = False
    else:
        cls64 = guest.arch == 'x64' or top > 1 << 32
    machine = E.EM_X86_64 if guest.arch == 'x64' else E.EM_386

    out = args.out
    facts = {}
    writer = args.writer
    vbox_format = int(args.vbox_format, 0) if kind == 'vbox' else None
    files = [os.path.basename(out)]
    if kind == 'vbox':
        for p, pg in V.vga_rom_pages(guest.rng).items():
            guest.pages[p] = pg
        machine = E.EM_386 if args.vbox_machine == '386' else E.EM_X86_64     # the host build's
        cls64 = True
        facts = V.write_vbox(out, guest, cpus, vbox_format, machine, nt, guest.cr3, guest.rng, defect)
        writer = 'own'
    elif kind in VMW_KINDS:
        machine = cls64 = None
        regs = VM.regions(guest.runs, layout)
        magic = VM.MAGICS[args.vmss_magic]
        ram_mb = sum(n for _, n in guest.runs) * PAGE >> 20
        if kind == 'vmem':
            state = os.path.splitext(out)[0] + '.' + args.vmss_ext
            vsize = VM.write_vmem(out, guest, regs)
            facts = {'vmem': os.path.basename(out), 'vmem_size': vsize}
            if os.path.exists(state):
                os.unlink(state)
            if defect != 'vmem-alone':
                facts.update(VM.build_state(state, guest, cpus, regs, magic, args.vmss_region_bytes,
                                            args.vmss_cr_inline, False, defect, ram_mb))
                facts['state'] = os.path.basename(state)
                files.append(facts['state'])
        else:
            facts = VM.build_state(out, guest, cpus, regs, magic, args.vmss_region_bytes,
                                   args.vmss_cr_inline, True, defect, ram_mb,
                                   compress_mem=defect == 'vmss-compressed-memory')
            facts['state'] = os.path.basename(out)
        facts['layout'] = layout
        facts['regions'] = [[hex(a), hex(b), hex(c)] for a, b, c in regs]
        facts['region_value_bytes'] = args.vmss_region_bytes
        facts['cr64_form'] = 'indexed' if args.vmss_cr_inline else 'block'
        writer = 'own'
    elif kind in ('elf', 'elf32'):
        facts = E.write_elf(out, guest, notes, cls64, machine, args.vaddr_zero)
        writer = 'own'
        if defect == 'truncated-elf-segment':
            facts['truncated_at'] = truncate_elf(out, guest, facts, truth, src)
    elif kind in ('kdump', 'kdump-flat') and writer == 'makedumpfile':
        with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out))) as td:
            tmp = os.path.join(td, 'src.elf')
            E.write_elf(tmp, guest, notes, cls64, machine)
            run_makedumpfile(tmp, out, kind == 'kdump-flat')
        facts = {'writer_cmd': 'makedumpfile -d 0 -c' + (' -F' if kind == 'kdump-flat' else '')}
    elif kind in ('kdump', 'kdump-flat'):
        segs, total, facts = K.kdump_segments(guest, notes, note_index, cls64, ncpu)
        if kind == 'kdump':
            K.write_segments(out, segs, total)
        else:
            recs = K.flat_records(segs, total)
            facts['records'] = len(recs)
            if defect == 'flat-overlap':
                # a record re-writing the second half of the page_desc's first record and the
                # start of the next one, with different bytes
                i = next(i for i, (o, b) in enumerate(recs) if o >= facts['desc_offset'])
                o, b = recs[i]
                junk = bytes(guest.rng.getrandbits(8) for _ in range(len(b)))
                recs.insert(i + 2, (o + len(b) // 2, junk))
                facts['overlap'] = [hex(o + len(b) // 2), len(junk)]
            if defect == 'flat-past-end':
                K.write_flat(out, recs, end=False, lie_last=0x10000)
                facts['past_end'] = 'last record claims 0x10000 bytes more than the stream holds; no end record'
            else:
                K.write_flat(out, recs)
    elif kind == 'raw':
        write_raw(out, guest)
        writer = 'own'
    size = os.path.getsize(out)

    # --- truth
    t = copy.deepcopy(truth)
    cr3_src = expected_cr3_source(kind, cpu_notes, n_user, ncpu, vmci, low_stub, defect, vbox_format)
    info = t['info']
    src_info = truth['info']
    info['source'] = {
        'input': INPUT_NAME[kind],
        'wrapper': None,
        'cr3_from': cr3_src,
        'kdbg_from': (None if src_info['source'].get('kdbg_from') is None
                      else ('header' if vmci else 'scan')),
        'kdbg_encoded': src_info['source'].get('kdbg_encoded', False),
    }
    if raw_pages_present(kind):
        present = raw_end(guest) // PAGE
    else:
        present = sum(n for a, n in guest.blocks)
    phys = capture_phys_truth(kind, guest, facts, defect)
    if kind in VMW_KINDS or kind == 'vbox':
        present = phys['pages_present']
    info['format'] = {'signature': None, 'bits': src_info['format']['bits'],
                      'arch': src_info['format']['arch'], 'dump_type': None, 'dump_type_name': None,
                      'pages_present': present}
    info['bugcheck'] = None
    info['os']['processors'] = ncpu
    t['capture'] = {
        'kind': kind, 'writer': writer, 'cr3_source': cr3_src,
        'processors': ncpu, 'cpus_in_user': n_user, 'user_cpus': users,
        'cpu_notes': cpu_notes and kind not in ('raw',) + VMW_KINDS + ('vbox',),
        'vmcoreinfo': bool(vmci) and kind != 'raw',
        'low_stub': guest.added.get('low_stub'), 'self_map': guest.added.get('self_map'),
        'kernel_cr3': hex(guest.cr3), 'kernel_root': hex(guest.root),
        'elf_class': (64 if cls64 else 32) if kind not in ('raw',) + VMW_KINDS else None,
        'elf_machine': machine if kind not in ('raw',) + VMW_KINDS else None,
        'files': files,
        'blocks': [[hex(a * PAGE), hex(n * PAGE)] for a, n in guest.blocks],
        'ram_runs': [[a, n] for a, n in guest.runs],
        'source_dump': os.path.basename(args.dump), 'source_file_size': src.file_size,
        'facts': facts,
        'info_loose': ['format.pages_present'],
    }
    t['kind'] = kind
    t['file_size'] = size
    t['phys'] = phys
    if kind == 'vbox':
        t['capture']['vbox'] = {'format': hex(vbox_format), 'vbcpu_size': facts['vbcpu_size'],
                                'registers_readable': 0x00010004 <= vbox_format <= 0x00010006,
                                'guest_mode': guest.arch, 'mmio': [[l[0], l[3], l[4]] for l in facts['loads']
                                                                   if l[2] == '0x0']}
    if kind in VMW_KINDS:
        regs = [(int(a, 16), int(b, 16), int(c, 16)) for a, b, c in facts['regions']]
        # would reading the image (.vmem / Memory block data) flat put a non-zero page wrong?
        wrong = any(ppn != page for ppn, page, n in regs
                    for p in guest.pages if ppn <= p < ppn + n) if defect not in VMW_FLAT else False
        t['capture']['vmware'] = {'layout': layout, 'state_file': facts.get('state'),
                                  'vmem': facts.get('vmem'), 'read_flat': defect in VMW_FLAT,
                                  'flat_read_wrong': bool(wrong),
                                  'cpu_group': 'cr3_offsets' in facts}
    for v in t.get('vtop') or []:
        if v.get('pa') is not None:
            v['present'] = page_in_capture(kind, guest, int(v['pa'], 16) // PAGE)
    if defect:
        t['capture_defect'] = defect
        t['expect'] = defect_expect(defect, facts, t['expect'])
    if args.seed is not None:
        t['capture']['seed'] = args.seed
    with open(args.truth_out, 'w') as f:
        json.dump(t, f, indent=1)
    if (not defect or defect in READABLE_DEFECTS) and not args.no_check:
        check(out, kind, guest, src, defect)
    return t


# capture defects whose file still reads back page for page (checked like good captures)
READABLE_DEFECTS = ('vbox-cpu-count', 'vbox-bad-magic', 'vmss-bad-tag', 'vmss-region-outside',
                    'vmem-alone', 'vmss-no-cpu')


def check_kind_options(args, kind, defect, src):
    """Option combinations of the VirtualBox / VMware kinds (exit 2 otherwise)."""
    vbox_opts = args.vbox_format != '0x00010006' or args.vbox_machine != 'x86_64'
    vmw_opts = (args.vmem_layout is not None or args.vmss_magic != 'bed2' or args.vmss_ext != 'vmss'
                or args.vmss_region_bytes != 4 or args.vmss_cr_inline)
    if vbox_opts and kind != 'vbox':
        raise Usage('--vbox-format / --vbox-machine are for --kind vbox')
    if vmw_opts and kind not in VMW_KINDS:
        raise Usage('--vmem-layout / --vmss-* are for --kind vmem and vmss-inline')
    if kind == 'vbox':
        try:
            f = int(args.vbox_format, 0)
        except ValueError:
            raise Usage('--vbox-format: a number')
        if f not in V.FORMATS:
            raise Usage('--vbox-format: one of %s' % ', '.join('0x%08x' % x for x in V.FORMATS))
    if kind == 'vbox' or kind in VMW_KINDS:
        if args.vmcoreinfo or args.no_cpu_notes or args.vaddr_zero or args.writer != 'own':
            raise Usage('--vmcoreinfo / --no-cpu-notes / --vaddr-zero / --writer are QEMU options '
                        '(VMware without CPU state: --defect vmss-no-cpu)')
    if kind in VMW_KINDS:
        if args.no_bios:
            raise Usage('--no-bios: VMware captures hold RAM regions only')
        if kind == 'vmem' and not args.out.lower().endswith('.vmem'):
            raise Usage('--kind vmem: --out NAME.vmem (the state file is NAME.vmss/.vmsn beside it)')
        if kind == 'vmss-inline' and args.out.lower().endswith('.vmem'):
            raise Usage('--kind vmss-inline: --out is the state file (NAME.vmsn / NAME.vmss)')
        big = any(b + n > VM.G4 for b, n in src.runs)
        if defect in VMW_FLAT and ((args.vmem_layout or 'one') != 'one' or big):
            raise Usage('--defect %s reads the .vmem flat: it needs --vmem-layout one and a guest '
                        'without RAM above 4 GiB (so that the flat read is right)' % defect)


def raw_pages_present(kind):
    return kind == 'raw'


def raw_end(guest):
    """A raw image stops at the end of the highest RAM block (no BIOS ROM)."""
    ram_blocks = [(a, n) for a, n in guest.blocks if not (a == 0x100000 - 0x40 and n == 0x40)]
    return max(a + n for a, n in ram_blocks) * PAGE


def page_in_capture(kind, guest, pfn):
    """vbox: the PT_LOADs with data (MMIO ranges are not in the file); VMware: the regions."""
    if kind == 'raw':
        return pfn < raw_end(guest) // PAGE
    return in_blocks(guest.blocks, pfn)


def capture_phys_truth(kind, guest, facts, defect=None):
    note = ('extents = what the capture holds (QEMU blocks, not Windows runs); '
            'file_offset null for kdump (compressed pages)')
    if kind == 'raw':
        n = raw_end(guest) // PAGE
        ext = [[0, n, 0]]
    elif kind in ('elf', 'elf32'):
        ext = [[int(pa, 16) // PAGE, int(sz, 16) // PAGE, int(off, 16)] for pa, off, sz in facts['loads']]
    elif kind == 'vbox':
        ext = sorted([int(pa, 16) // PAGE, int(fs, 16) // PAGE, int(off, 16)]
                     for pa, off, fs, ms, what in facts['loads'] if int(fs, 16))
        note = ('extents = the PT_LOADs with data (RAM blocks + ROM ranges), sorted; MMIO ranges '
                '(p_filesz 0) are not in the file: capture.vbox.mmio')
    elif kind in VMW_KINDS:
        regs = [(int(a, 16), int(b, 16), int(c, 16)) for a, b, c in facts['regions']]
        base = facts.get('inline_data_off', 0)
        if defect in VMW_FLAT or not regs:
            size = facts['memory_block']['size_in_memory'] if base else facts['vmem_size']
            ext = [[0, size // PAGE, base]]
            note = 'extents = the .vmem read flat (file offset = physical address)'
        else:
            ext = sorted([ppn, n, base + page * PAGE] for ppn, page, n in regs)
            note = ('extents = the region table: [first_pfn, pages, offset in the %s]'
                    % ('state file (inline Memory block data)' if base else '.vmem'))
    else:
        ext = [[a, n, None] for a, n in guest.blocks]
    return {'extents': ext, 'pages_present': sum(e[1] for e in ext), 'absent_pfns': [],
            'max_pfn': max(e[0] + e[1] for e in ext), 'note': note}


def defect_expect(defect, facts, good):
    """good: the source's expect (kept by defects after which the analysis still works)."""
    def keep(kind, **kw):
        e = dict(good)
        e['kind'] = kind
        e.update(kw)
        return e
    if defect == 'vbox-cpu-count':
        return keep('VBCORE cCpus %d but %d VBCPU notes: registers not trusted (§2.1), CR3 from the '
                    'scans' % (facts['vbcore']['cCpus'], len(facts['vbcpu_desc_offsets'])))
    if defect == 'vbox-bad-magic':
        return keep('VBCORE magic %s: registers not trusted (§2.1), CR3 from the scans'
                    % facts['vbcore']['magic'])
    if defect == 'vmss-bad-tag':
        return keep('memory group: regionsCount tag with name length 255 runs past the group '
                    '(§4.1 checks): state file not used, .vmem read flat with a warning (right for '
                    'this one-region guest), CR3 from the scans', warning_expected=True)
    if defect == 'vmss-region-outside':
        return keep('region %d lies past the end of the .vmem (§4.1 checks): state file not used, '
                    '.vmem read flat with a warning, CR3 from the scans' % facts['bad_region']['index'],
                    warning_expected=True)
    if defect == 'vmem-alone':
        return keep('no .vmss/.vmsn beside the .vmem: flat read with a warning (§8.1), CR3 from '
                    'the scans', warning_expected=True)
    if defect == 'vmss-no-cpu':
        return keep('state file without a cpu group: region table used, CR3 from the scans')
    if defect == 'vmss-compressed-memory':
        return {'exit': 4, 'exit_ok': [4], 'kind': 'inline Memory block with value size 62 '
                '(compressed block): a compression dumpleak lacks (§4.1)'}
    if defect == 'truncated-elf-segment':
        return {'exit': 1, 'exit_ok': [0, 1], 'kind': 'ELF truncated at %s inside a PT_LOAD'
                % facts['truncated_at']['offset'],
                'partial_sections': ['vm', 'pool', 'bigpool', 'modules', 'suspects'],
                'content_pages_lost': facts['truncated_at']['content_pages_lost']}
    if defect == 'lying-note-size':
        return {'exit': 3, 'exit_ok': [3], 'kind': 'first ELF note claims n_descsz 0x7fffff00 '
                '(past PT_NOTE); no other CR3 source (no self-map, no low stub, no VMCOREINFO)'}
    if defect == 'flat-overlap':
        return {'exit': 3, 'exit_ok': [3], 'kind': 'flattened records overlap with different bytes'}
    if defect == 'flat-past-end':
        return {'exit': 3, 'exit_ok': [1, 3], 'kind': 'flattened record runs past the end of the '
                'stream (no end record)', 'partial_sections': ['vm', 'pool', 'bigpool', 'modules', 'suspects']}
    if defect == 'no-cr3':
        return {'exit': 3, 'exit_ok': [3], 'kind': 'no CPU notes, no header, top-level page '
                'table scrambled: no CR3 validates'}
    raise AssertionError(defect)


def truncate_elf(path, guest, facts, truth, src):
    """Cut inside the PT_LOAD holding most data, after the pages the kernel needs to be found
    (root table, KDBG, nt headers), losing later content pages."""
    loads = [(int(pa, 16), int(off, 16), int(sz, 16)) for pa, off, sz in facts['loads']]
    crit = [guest.root // PAGE]
    for va in (truth['kernel']['nt_base'], truth['kernel']['kdbg'], truth['kernel']['ps_loaded_module_list']):
        pa = guest.vtop(int(va, 16))
        if pa is not None:
            crit.append(pa // PAGE)

    def data_pages(pa, sz):
        return sorted(p for p in guest.pages if pa // PAGE <= p < (pa + sz) // PAGE)
    pa, off, sz = max(loads, key=lambda l: len(data_pages(l[0], l[2])))
    pages = data_pages(pa, sz)
    first_ok = max([p for p in crit if pa // PAGE <= p < (pa + sz) // PAGE] + [pages[0]])
    later = [p for p in pages if p > first_ok]
    cut_pfn = later[len(later) // 2] if later else (pa + sz) // PAGE - 1
    cut = off + (cut_pfn * PAGE - pa) + 0x321
    lost = sum(1 for p in guest.pages if page_file_off(loads, p) is not None
               and page_file_off(loads, p) + PAGE > cut)
    with open(path, 'r+b') as f:
        f.truncate(cut)
    return {'offset': hex(cut), 'pfn': hex(cut_pfn), 'content_pages_lost': lost}


def page_file_off(loads, pfn):
    for pa, off, sz in loads:
        if pa <= pfn * PAGE < pa + sz:
            return off + pfn * PAGE - pa
    return None


def write_raw(path, guest):
    end = raw_end(guest)
    with open(path, 'wb') as f:
        for p in sorted(guest.pages):
            if p * PAGE < end:
                f.seek(p * PAGE)
                f.write(guest.pages[p])
        f.truncate(end)


def check(path, kind, guest, src, defect=None):
    """Read the capture back with the independent readers and compare every non-zero page and
    the notes' CR3s; pages Windows runs hold must equal the MEMORY.DMP's (except the added
    self-map entry)."""
    if kind == 'vbox':
        r = V.VBoxReader(path)
        read = r.read_page
        notes = []
        for a, n in r.mmio:
            assert not in_blocks(guest.blocks, a // PAGE), 'MMIO range %#x holds guest pages' % a
    elif kind in VMW_KINDS:
        r = VM.VmwareReader(path)
        read = r.read_page
        notes = []
        assert bool(r.warnings) == (defect in VMW_FLAT), 'VMware reader warnings: %s' % r.warnings
    elif kind in ('elf', 'elf32'):
        r = E.ElfReader(path)
        read = r.read_page
        notes = r.notes
    elif kind == 'raw':
        end = os.path.getsize(path)
        f = open(path, 'rb')

        def read(p):
            if p * PAGE >= end:
                return None
            f.seek(p * PAGE)
            return f.read(PAGE)
        notes = []
    else:
        kp = path
        tmp = None
        if kind == 'kdump-flat':
            tmp = path + '.unflat.tmp'
            K.unflatten(path, tmp)
            kp = tmp
        r = K.KdumpReader(kp)
        read = r.read_page
        notes = r.notes
        for a, n in guest.blocks:
            for p in (a, a + n - 1):
                assert r.ram(p), 'kdump bitmap 1 misses pfn %x' % p
        if tmp:
            os.unlink(tmp)
    for p, pg in guest.pages.items():
        if not page_in_capture(kind, guest, p):
            continue
        got = read(p)
        if got != pg:
            raise AssertionError('%s: page %#x differs' % (path, p))
    # a few zero pages
    for a, n in guest.blocks:
        for p in (a, a + n // 2, a + n - 1):
            if p not in guest.pages and page_in_capture(kind, guest, p):
                assert read(p) == ZERO, 'page %#x not zero' % p
    # Windows RAM pages equal the source dump's, except the top table that got the self-map
    root_pages = {guest.root // PAGE}
    sm = guest.added.get('self_map')
    if sm:
        root_pages.add(int(sm['table'], 16) // PAGE)
        root_pages.update(int(x, 16) // PAGE for x in sm.get('pds', []))
    src_pages = src.nonzero_pages()
    for p, pg in src_pages.items():
        if p not in root_pages:
            assert read(p) == pg, 'page %#x differs from the MEMORY.DMP' % p
    for name, ntype, desc, _ in notes:
        if name == 'QEMU':
            v, sz = struct.unpack_from('<II', desc, 0)
            assert v == 1 and sz == 0x1B8 and len(desc) == sz
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description='forge: hypervisor captures of a forged MEMORY.DMP')
    ap.add_argument('--dump')
    ap.add_argument('--truth')
    ap.add_argument('--kind', choices=KINDS)
    ap.add_argument('--writer', choices=['own', 'makedumpfile'], default='own',
                    help='kdump / kdump-flat writer (default own)')
    ap.add_argument('--cpus-in-user', type=int, default=0, metavar='N',
                    help='the first N vCPUs are caught in user mode (user CR3, CS RPL 3)')
    ap.add_argument('--no-cpu-notes', action='store_true', help='drop the QEMU CPU-state notes')
    ap.add_argument('--vmcoreinfo', action='store_true',
                    help='add the VMCOREINFO note holding the DUMP_HEADER (virtio-win fwcfg)')
    ap.add_argument('--low-stub', action='store_true',
                    help='x64: write a PROCESSOR_START_BLOCK in the first MiB (off by default: VMs often lack it)')
    ap.add_argument('--no-bios', action='store_true', help='leave out the BIOS ROM block below 4 GiB')
    ap.add_argument('--vaddr-zero', action='store_true', help='ELF p_vaddr 0 (older QEMU)')
    ap.add_argument('--vbox-format', default='0x00010006', metavar='F',
                    help='vbox: VBCORE format 0x00010006 (DBGFCORECPU 0x2248, default), 0x00010005 / '
                         '0x00010004 (0x2240), 0x00010000 (raw CPUMCTX-like blob: registers not readable)')
    ap.add_argument('--vbox-machine', choices=['x86_64', '386'], default='x86_64',
                    help='vbox: e_machine of the VirtualBox *host* build (EM_X86_64 or EM_386), not the guest')
    ap.add_argument('--vmem-layout', choices=['one', 'hole', 'none'],
                    help='vmem/vmss-inline region table: one = [0, top below 4 GiB) (default), '
                         'hole = the .vmem also leaves out pfns 0xA0-0xFF, none = no region tags '
                         '(flat); RAM above 4 GiB is always a region of its own continuing in the image')
    ap.add_argument('--vmss-magic', choices=sorted(VM.MAGICS), default='bed2',
                    help='state-file magic: bed2 = 0xBED2BED2 (default), bad1 = 0xBAD1BAD1, bed3 = 0xBED3BED3')
    ap.add_argument('--vmss-ext', choices=['vmss', 'vmsn'], default='vmss',
                    help='vmem: the state file beside NAME.vmem is NAME.vmss (default) or NAME.vmsn')
    ap.add_argument('--vmss-region-bytes', type=int, choices=[4, 8], default=4,
                    help='size of the region tag values (default 4)')
    ap.add_argument('--vmss-cr-inline', action='store_true',
                    help='CR64[cpu][n] inline u64s instead of the 72-byte CR64[cpu] block')
    ap.add_argument('--defect', choices=sorted(DEFECTS))
    ap.add_argument('--seed', type=int)
    ap.add_argument('--out')
    ap.add_argument('--truth-out')
    ap.add_argument('--no-check', action='store_true', help='skip reading the capture back')
    ap.add_argument('--matrix', metavar='DIR')
    ap.add_argument('--verify', metavar='DIR', help='re-check a matrix: readers, readelf, '
                    'makedumpfile -R, libkdumpfile (if its python bindings exist)')
    a = ap.parse_args(argv)
    try:
        if a.matrix:
            import capture_matrix
            return capture_matrix.run(a.matrix)
        if a.verify:
            import capture_matrix
            return capture_matrix.verify(a.verify)
        for k in ('dump', 'truth', 'kind', 'out', 'truth_out'):
            if getattr(a, k) is None:
                raise Usage('--%s is required' % k.replace('_', '-'))
        build(a)
    except (Usage, DumpError) as e:
        print('capture: %s' % e, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
