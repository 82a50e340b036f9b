#!/usr/bin/env python3
"""Write a fuzz_analysis input by hand: find bytes in a seed's hot pages and
patch them.  Turns a suspicion from code review into a reproducible input.

    patch_input.py SEEDDIR SEEDNAME OUT [--order N] PATCH...
    PATCH = FIND@DELTA=HEX   first occurrence of the hex string FIND in the
                             hot pages, DELTA bytes on (may be negative),
                             overwritten with HEX
          | PAGE:OFF=HEX     hot page PAGE (index), offset OFF
"""
import argparse
import os
import struct
import sys

PAGE = 4096


def hot_pages(path):
    out = []
    with open(path, 'rb') as f:
        off = 0
        while True:
            b = f.read(PAGE)
            if not b:
                break
            if any(b):
                out.append((off, b))
            off += len(b)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('seeddir')
    ap.add_argument('seed')
    ap.add_argument('out')
    ap.add_argument('--order', type=int, default=0)
    ap.add_argument('--dump', help='also write the patched dump (sparse) here')
    ap.add_argument('patch', nargs='+')
    a = ap.parse_args()
    names = sorted(n for n in os.listdir(a.seeddir) if n.startswith('analysis-') and n.endswith('.dmp'))
    idx = names.index(a.seed)
    hot = hot_pages(os.path.join(a.seeddir, a.seed))
    data = bytearray([idx | (a.order << 3)])
    edits = []
    for p in a.patch:
        where, val = p.split('=')
        val = bytes.fromhex(val)
        if '@' in where:
            find, delta = where.split('@')
            find = bytes.fromhex(find)
            for i, (_, b) in enumerate(hot):
                k = b.find(find)
                if k >= 0:
                    page, off = i, k + int(delta, 0)
                    break
            else:
                sys.exit('not found: %s' % find.hex())
        else:
            page, off = (int(x, 0) for x in where.split(':'))
        edits.append((hot[page][0] + off, val))
        while val:  # records carry at most 64 bytes and stay in their page
            n = min(len(val), 64, PAGE - off)
            data += struct.pack('<HHB', page, off, n - 1) + val[:n]
            val, off = val[n:], off + n
        print('patch hot page %d (file 0x%x) +0x%x' % (page, hot[page][0], off - len(val)), file=sys.stderr)
    with open(a.out, 'wb') as f:
        f.write(data)
    if a.dump:
        size = os.path.getsize(os.path.join(a.seeddir, a.seed))
        with open(a.dump, 'wb') as f:
            f.truncate(size)
            for off, b in hot:
                f.seek(off)
                f.write(b)
            for off, b in edits:
                f.seek(off)
                f.write(b)


if __name__ == '__main__':
    main()
