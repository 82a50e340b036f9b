"""Issue-4 truth: how many pages of each loaded image the dump holds, and the expected
suspect candidates for a scenario's leak tags (pool-internals §4.3/§4.4).

The candidates are computed from what the *file* holds, not from the scenario's intent:
every resident, non-zero page of every loaded image is searched for the tag's 4 bytes; a hit
inside an executable section right after an immediate-operand opcode (x64 41 B8 / 41 B9 /
C7 44 24 xx, x86 68) is tag-in-code, any other hit outside executable sections tag-in-data.
The scenario's intended sites are then asserted to be exactly what the scan found.

Confidence (forge's rule, cli-contract leaves the scale to dumpleak): tag-in-code high;
tag-in-data medium; kmdf-default-tag medium; imports-allocator for `None` high when exactly one
module imports an untagged allocator, else medium; imports-allocator for `Ddk `/`Wdm ` low;
unloaded low.  A candidate's confidence is the best of its evidence."""
import bisect
import struct

PAGE = 0x1000
ZERO = bytes(PAGE)
EXEC = 0x20000000
RANK = {'high': 3, 'medium': 2, 'low': 1}
UNTAGGED = ('ExAllocatePool', 'ExAllocatePoolWithQuota')
TAGGED = ('ExAllocatePoolWithTag', 'ExAllocatePoolWithQuotaTag', 'ExAllocatePoolWithTagPriority',
          'ExAllocatePool2', 'ExAllocatePool3')


class Present:
    """pa -> is that page in the file (sorted, merged extents)."""
    def __init__(self, ext):
        self.ext = sorted((p, n) for p, n, _ in ext)
        self.starts = [p for p, _ in self.ext]

    def __call__(self, pa):
        pfn = pa >> 12
        i = bisect.bisect_right(self.starts, pfn) - 1
        return i >= 0 and pfn < self.ext[i][0] + self.ext[i][1]


def resident(m, mod, present):
    """[(rva, pa)] of the image pages whose translation is readable from the file."""
    out = []
    for off in range(0, mod.size, PAGE):
        e = m.pt.lookup(mod.base + off)
        if e and e[1] is not None and e[0] != 'pagefile' and present(e[1]):
            out.append((off, e[1]))
    return out


def image_pages(m, present):
    mods, rt, tt = {}, 0, 0
    for mod in m.modules:
        r = len(resident(m, mod, present))
        t = (mod.size + PAGE - 1) // PAGE
        mods[mod.name] = {'resident': r, 'total': t}
        rt += r
        tt += t
    return {'resident': rt, 'total': tt, 'modules': mods}


def _runs(m, mod, present):
    """Runs of consecutive resident non-zero pages: [(rva, bytes)]."""
    out, cur, start, last = [], [], None, None
    for off, pa in resident(m, mod, present):
        pg = m.phys.data.get(pa >> 12)
        if pg is None or bytes(pg) == ZERO:
            pg = None
        if pg is None or (last is not None and off != last + PAGE):
            if cur:
                out.append((start, b''.join(cur)))
            cur, start = [], None
        if pg is not None:
            if start is None:
                start = off
            cur.append(bytes(pg))
        last = off
    if cur:
        out.append((start, b''.join(cur)))
    return out


def _section(mod, rva):
    for name, a, sz, ch in mod.image.sections:
        if a <= rva < a + sz:
            return name, ch
    return 'headers', 0


def scan(m, present, keys):
    """{key_bytes: {module: [evidence...]}} for tag bytes in resident image pages."""
    found = {k: {} for k in keys}
    for mod in m.modules:
        for start, blob in _runs(m, mod, present):
            for k in keys:
                assert b'\0' not in k, 'tags with NUL bytes are not searched'
                i = blob.find(k)
                while i >= 0:
                    rva = start + i
                    sec, ch = _section(mod, rva)
                    form = None
                    if m.bits == 64:
                        if blob[max(0, i - 2):i] == b'\x41\xb8':
                            form = 'r8d'
                        elif blob[max(0, i - 2):i] == b'\x41\xb9':
                            form = 'r9d'
                        elif i >= 4 and blob[i - 4:i - 1] == b'\xc7\x44\x24':
                            form = 'rsp'
                    elif i >= 1 and blob[i - 1] == 0x68:
                        form = 'push'
                    ev = {'kind': None, 'address': hex(mod.base + rva), 'offset': hex(rva),
                          'section': sec}
                    if ch & EXEC and form:
                        ev.update(kind='tag-in-code', form=form)
                    elif ch & EXEC:
                        ev.update(kind='tag-in-data', ambiguous=True,
                                  detail='in an executable section, not an immediate operand')
                    else:
                        ev['kind'] = 'tag-in-data'
                    found[k].setdefault(mod.name, []).append(ev)
                    i = blob.find(k, i + 1)
    return found


def _importers(m, present, funcs):
    """{module: [evidence]} for modules whose resident IAT holds a resolved address of funcs."""
    out = {}
    for mod in m.modules:
        for fn in funcs:
            slot = getattr(mod, 'iat', {}).get(fn)
            if slot is None or fn not in m.nt_exports:
                continue
            e = m.pt.lookup(slot)
            if not e or e[1] is None or not present(e[1]):
                continue
            v = struct.unpack('<Q' if m.bits == 64 else '<I', m.phys.read(e[1], m.psz))[0]
            if v != m.nt_exports[fn]:
                continue
            out.setdefault(mod.name, []).append(
                {'kind': 'imports-allocator', 'address': hex(slot), 'offset': hex(slot - mod.base),
                 'detail': fn, 'resolved': hex(v)})
    return out


def build(m, scen, present, pool, unloaded, pages):
    """truth['suspects'] for scen['suspect_tags']."""
    tags = [t if isinstance(t, bytes) else t.encode('latin1') for t in scen.get('suspect_tags', ())]
    if not tags or not pool:
        return None
    hits = scan(m, present, tags)
    by_key = {e['key']: e for e in pool['tags'] if e['key']}
    pooltag = {}
    for line in scen.get('pooltag', ()):
        t, b, d = [x.strip() for x in line.split(' - ', 2)]
        pooltag[t] = (b, d)
    order = {mod.name: i for i, mod in enumerate(m.modules)}
    out = []
    for t in tags:
        key = '0x%08x' % struct.unpack('<I', t)[0]
        tname = t.decode('latin1')
        cands = {}
        for name, evs in hits[t].items():
            cands.setdefault(name, []).extend(evs)
        if tname == 'None':
            imp = _importers(m, present, UNTAGGED)
            conf = 'high' if len(imp) == 1 else 'medium'
            for name, evs in imp.items():
                for e in evs:
                    e['confidence'] = conf
                cands.setdefault(name, []).extend(evs)
        elif tname in ('Ddk ', 'Wdm '):
            for name, evs in _importers(m, present, TAGGED).items():
                for e in evs:
                    e['confidence'] = 'low'
                cands.setdefault(name, []).extend(evs)
        for mod in m.modules:
            libs = [x.upper() for x in getattr(mod, 'libs', ())]
            if 'WDF01000.SYS' in libs and mod.name[:4].encode('latin1') == t:
                wslot = min(v for k, v in mod.iat.items() if k.startswith('Wdf'))
                cands.setdefault(mod.name, []).append(
                    {'kind': 'kmdf-default-tag', 'address': hex(wslot), 'offset': hex(wslot - mod.base),
                     'detail': 'imports WDF01000.SYS; tag = first 4 characters of %s' % mod.name})
        ranked = []
        for name, evs in cands.items():
            best = 'low'
            for e in evs:
                c = e.pop('confidence', None) or {'tag-in-code': 'high', 'tag-in-data': 'medium',
                                                  'kmdf-default-tag': 'medium'}.get(e['kind'], 'low')
                if e.get('ambiguous'):
                    c = 'low'
                if RANK[c] > RANK[best]:
                    best = c
            ncode = sum(1 for e in evs if e['kind'] == 'tag-in-code')
            ranked.append({'module': name, 'confidence': best,
                           'kinds': sorted(set(e['kind'] for e in evs)), 'evidence': evs,
                           '_k': (-RANK[best], -ncode, order.get(name, 0))})
        ranked.sort(key=lambda c: c['_k'])
        found = bool(hits[t])
        ordered = True
        tied = [c['module'] for c in ranked if ranked and c['_k'][:2] == ranked[0]['_k'][:2]]
        if len(tied) > 1:
            ordered = False                # equally strong leads: no single top candidate
        for c in ranked:
            del c['_k']
        if not ranked and unloaded:
            # nothing loaded holds the tag: the unloaded drivers are the leads (no order implied)
            ordered = False
            for u in sorted(unloaded, key=lambda u: u['time'] or '', reverse=True):
                ranked.append({'module': u['name'], 'confidence': 'low', 'kinds': ['unloaded'],
                               'evidence': [{'kind': 'unloaded', 'address': u['base'],
                                             'detail': 'unloaded %s' % u['time']}]})
        e = by_key.get(key)
        ent = {'tag': tname, 'key': key,
               'nonpaged_bytes': e['nonpaged']['bytes'] if e else 0,
               'paged_bytes': e['paged']['bytes'] if e else 0,
               'top': ranked[0]['module'] if ranked and ordered else None,
               'top_confidence': ranked[0]['confidence'] if ranked and ordered else None,
               'top_kinds': ranked[0]['kinds'] if ranked and ordered else [],
               'ordered': ordered, 'tied': tied if len(tied) > 1 else [], 'candidates': ranked,
               'tag_search': {'found': found, 'resident_pages': pages['resident'],
                              'total_pages': pages['total'],
                              'absent_pages': pages['total'] - pages['resident']},
               'pooltag': None, 'with_pooltag_top': None}
        if tname in pooltag:
            b, d = pooltag[tname]
            ent['pooltag'] = {'binary': b, 'description': d}
            ent['with_pooltag_top'] = ent['top'] or b
        hidden = [(mod.name, s) for mod in m.modules for s in getattr(mod, 'absent_sites', ()) if s[0] == t]
        if hidden:
            name, (_, va, sec) = hidden[0]
            mod = [x for x in m.modules if x.name == name][0]
            ent['hidden'] = {'module': name, 'address': hex(va), 'offset': hex(va - mod.base),
                             'section': sec, 'note': 'the only site of the tag; its page is not in this dump'}
        out.append(ent)
    _assert_sites(m, hits)
    return out


def _assert_sites(m, hits):
    """The scenario's intended sites are exactly what the scan sees."""
    for mod in m.modules:
        for t, va, form, sec in getattr(mod, 'code_sites', ()):
            if t in hits:
                evs = hits[t].get(mod.name, [])
                assert any(e['address'] == hex(va) and e['kind'] == 'tag-in-code' for e in evs), \
                    ('code site not found', mod.name, t, hex(va))
        for t, va, sec in getattr(mod, 'data_sites', ()):
            if t in hits:
                evs = hits[t].get(mod.name, [])
                assert any(e['address'] == hex(va) and e['kind'] == 'tag-in-data' for e in evs), \
                    ('data site not found', mod.name, t, hex(va))
        for t, va, sec in getattr(mod, 'absent_sites', ()):
            if t in hits:
                assert not any(e['address'] == hex(va) for e in hits[t].get(mod.name, [])), \
                    ('absent site visible', mod.name, t)
