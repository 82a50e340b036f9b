"""Reference CR3 finder for the checks (vm-captures.md §7.1): the hypervisor's CPU state —
QEMU notes, VirtualBox VBCPU notes (capture_vbox.VBoxReader.cpu_states), the VMware `cpu`
group (capture_vmware.StateFile.cpu_states) — kernel-mode vCPU first, then every vCPU; the
VMCOREINFO header, the x64 low stub, the self-map scan. Each candidate is validated by
translating the kernel base (MZ) — the truth's nt_base."""
import struct

PAGE = 0x1000
ZERO = bytes(PAGE)


class Mem:
    def __init__(self, read_page):
        self.read_page = read_page
        self.cache = {}

    def page(self, pfn):
        if pfn not in self.cache:
            self.cache[pfn] = self.read_page(pfn) or ZERO
        return self.cache[pfn]

    def q(self, pa):
        return struct.unpack_from('<Q', self.page(pa // PAGE), pa % PAGE)[0]

    def d(self, pa):
        return struct.unpack_from('<I', self.page(pa // PAGE), pa % PAGE)[0]


def vtop(mem, arch, root, va):
    if arch == 'x64':
        t = root
        for sh in (39, 30, 21, 12):
            e = mem.q(t + ((va >> sh) & 0x1FF) * 8)
            if not e & 1:
                return None
            fr = e & 0x000FFFFFFFFFF000
            if sh in (30, 21) and e & 0x80:
                return (fr & ~((1 << sh) - 1)) | (va & ((1 << sh) - 1))
            t = fr
        return t | (va & 0xFFF)
    if arch == 'x86-pae':
        e = mem.q(root + ((va >> 30) & 3) * 8)
        if not e & 1:
            return None
        t = e & 0x000FFFFFFFFFF000
        for sh in (21, 12):
            e = mem.q(t + ((va >> sh) & 0x1FF) * 8)
            if not e & 1:
                return None
            fr = e & 0x000FFFFFFFFFF000
            if sh == 21 and e & 0x80:
                return (fr & ~0x1FFFFF) | (va & 0x1FFFFF)
            t = fr
        return t | (va & 0xFFF)
    e = mem.d(root + ((va >> 22) & 0x3FF) * 4)
    if not e & 1:
        return None
    if e & 0x80:
        return (e & 0xFFC00000) | (va & 0x3FFFFF)
    e = mem.d((e & 0xFFFFF000) + ((va >> 12) & 0x3FF) * 4)
    return (e & 0xFFFFF000) | (va & 0xFFF) if e & 1 else None


def mask(arch, cr3):
    return cr3 & (0x000FFFFFFFFFF000 if arch == 'x64' else 0xFFFFFFE0 if arch == 'x86-pae' else 0xFFFFF000)


def valid(mem, arch, root, nt_base):
    pa = vtop(mem, arch, root, nt_base)
    return pa is not None and mem.page(pa // PAGE)[:2] == b'MZ'


def qemu_states(notes):
    """[(source, cr3, cs selector, gs base)] of the QEMU notes (QEMUCPUState, §2)."""
    return [('qemu-note', struct.unpack_from('<Q', d, 0x1A0)[0], struct.unpack_from('<I', d, 0x98)[0],
             struct.unpack_from('<Q', d, 0x108)[0]) for n, t, d, _ in notes if n == 'QEMU' and len(d) >= 0x1B0]


def find(mem, arch, notes, nonzero, nt_base, vmcoreinfo=None, states=None):
    """-> (source, root) or (None, None). nonzero: pfns of the capture's non-zero pages.
    states: the CPU-state candidates [(source, cr3, cs, gs base)]; default: the QEMU notes."""
    if states is None:
        states = qemu_states(notes)
    kern = [s for s in states if (s[2] & 3) == 0 or (arch == 'x64' and s[3] >> 63)]
    for s in kern + [s for s in states if s not in kern]:
        root = mask(arch, s[1])
        if valid(mem, arch, root, nt_base):
            return s[0], root
    if vmcoreinfo and vmcoreinfo[:8] in (b'PAGEDU64', b'PAGEDUMP'):
        dtb = struct.unpack_from('<Q' if vmcoreinfo[4:8] == b'DU64' else '<I', vmcoreinfo, 0x10)[0]
        if valid(mem, arch, mask(arch, dtb), nt_base):
            return 'vmcoreinfo', mask(arch, dtb)
    if arch == 'x64':
        for p in range(1, 0xA0):
            pg = mem.page(p)
            q0, lm, cr3 = (struct.unpack_from('<Q', pg, o)[0] for o in (0, 0x70, 0xA0))
            if (q0 & 0xFFFFFFFFFFFF00FF) == 0x00000001000600E9 and \
                    (lm & 0xFFFFF80000000003) == 0xFFFFF80000000000 and \
                    (cr3 & 0xFFFFFF0000000FFF) == 0 and valid(mem, arch, cr3, nt_base):
                return 'low-stub', cr3
    found = []
    for p in nonzero:
        pa = p * PAGE
        pg = mem.page(p)
        if arch == 'x64':
            for i in range(0x100, 0x200):
                if (struct.unpack_from('<Q', pg, 8 * i)[0] & 0x0000FFFFFFFFF083) == pa | 3:
                    found.append(pa)
                    break
        elif arch == 'x86':
            if (struct.unpack_from('<I', pg, 4 * 0x300)[0] & 0xFFFFF083) == pa | 3:
                found.append(pa)
        else:
            e = struct.unpack_from('<4Q', pg, 0)
            if (e[3] & 0x000FFFFFFFFFF083) == pa | 3 and all(x & 1 for x in e):
                frames = [x & 0x000FFFFFFFFFF000 for x in e]
                # the PDPT: 32-byte slot whose 4 entries point to the same PDs
                for q in nonzero:
                    pq = mem.page(q)
                    for o in range(0, PAGE, 32):
                        s = struct.unpack_from('<4Q', pq, o)
                        # PDPTEs: P set, bits 1-2 and 5-8 reserved (0) - this also keeps PD3's
                        # own first four entries (flags 0x63) from passing as a PDPT
                        if all(x & 1 and not x & 0x1E6 for x in s) and \
                                [x & 0x000FFFFFFFFFF000 for x in s] == frames:
                            found.append(q * PAGE + o)
    ok = [r for r in found if valid(mem, arch, r, nt_base)]
    if ok:
        return 'self-map-scan', ok[0]
    return None, None
