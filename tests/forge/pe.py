"""Minimal PE/PE32+ image builder (PE/COFF spec; pool-internals.md §4.4 for the
import/IAT facts).  Produces the *loaded* (memory) layout: RVA == offset."""
import struct

SCN_CODE = 0x60000020       # CODE | EXECUTE | READ
SCN_DATA = 0xC0000040       # INITIALIZED_DATA | READ | WRITE
SCN_RDATA = 0x40000040      # INITIALIZED_DATA | READ
SCN_INIT = 0xE2000020       # CODE | DISCARDABLE | EXECUTE | READ | WRITE


class Image:
    """sections: list of (name, rva, size, characteristics). Content written
    into self.buf (bytearray of SizeOfImage)."""

    def __init__(self, base, size, bits, machine, timestamp):
        self.base, self.size, self.bits, self.machine = base, size, bits, machine
        self.timestamp = timestamp
        self.buf = bytearray(size)
        self.sections = []
        self.dirs = {}            # index -> (rva, size)
        self.discard = set()      # section names whose pages are not resident
        self.checksum = 0

    def add_section(self, name, rva, size, ch):
        self.sections.append((name, rva, size, ch))

    def sec(self, name):
        for s in self.sections:
            if s[0] == name:
                return s
        raise KeyError(name)

    def put(self, rva, data):
        self.buf[rva:rva + len(data)] = data

    def ptr(self, v):
        return struct.pack('<Q' if self.bits == 64 else '<I', v)

    def finish_headers(self):
        b = self.buf
        b[0:2] = b'MZ'
        lfanew = 0xE8 if self.bits == 64 else 0xD8
        struct.pack_into('<I', b, 0x3C, lfanew)
        b[0x40:0x40 + 39] = b'This program cannot be run in DOS mode.'
        o = lfanew
        b[o:o + 4] = b'PE\0\0'
        opt_size = 0xF0 if self.bits == 64 else 0xE0
        chars = 0x22 if self.bits == 64 else 0x102
        struct.pack_into('<HHIIIHH', b, o + 4, self.machine, len(self.sections),
                         self.timestamp, 0, 0, opt_size, chars)
        oh = o + 24
        code = sum(s[2] for s in self.sections if s[3] & 0x20)
        idata = sum(s[2] for s in self.sections if s[3] & 0x40)
        text = self.sections[0][1]
        hdr_size = 0x400
        if self.bits == 64:
            struct.pack_into('<HBBIIIII', b, oh, 0x20B, 14, 0, code, idata, 0, text, text)
            struct.pack_into('<QII', b, oh + 24, self.base, 0x1000, 0x200)
            struct.pack_into('<HHHHHHI', b, oh + 40, 10, 0, 10, 0, 10, 0, 0)
            struct.pack_into('<IIIHH', b, oh + 56, self.size, hdr_size, self.checksum, 1, 0x160)
            struct.pack_into('<QQQQII', b, oh + 72, 0x40000, 0x1000, 0x100000, 0x1000, 0, 16)
            dd = oh + 112
        else:
            struct.pack_into('<HBBIIIIII', b, oh, 0x10B, 9, 0, code, idata, 0, text, text,
                             self.sections[1][1] if len(self.sections) > 1 else 0)
            struct.pack_into('<III', b, oh + 28, self.base, 0x1000, 0x200)
            struct.pack_into('<HHHHHHI', b, oh + 40, 5, 2, 5, 2, 5, 2, 0)
            struct.pack_into('<IIIHH', b, oh + 56, self.size, hdr_size, self.checksum, 1, 0x400)
            struct.pack_into('<IIIIII', b, oh + 72, 0x40000, 0x1000, 0x100000, 0x1000, 0, 16)
            dd = oh + 96
        for i, (rva, sz) in self.dirs.items():
            struct.pack_into('<II', b, dd + 8 * i, rva, sz)
        sh = oh + opt_size
        raw = hdr_size
        for name, rva, size, ch in self.sections:
            struct.pack_into('<8sIIIIIIHHI', b, sh, name.encode(), size, rva,
                             (size + 0x1FF) & ~0x1FF, raw, 0, 0, 0, 0, ch)
            raw += (size + 0x1FF) & ~0x1FF
            sh += 40

    def add_exports(self, rva, dllname, exports):
        """exports: dict name -> rva. Export directory written at rva.
        Returns the end rva."""
        names = sorted(exports)
        n = len(names)
        d = rva
        funcs = d + 40
        namep = funcs + 4 * n
        ords = namep + 4 * n
        strs = ords + 2 * n
        p = strs
        dll_rva = p
        self.put(p, dllname.encode() + b'\0')
        p += len(dllname) + 1
        for i, nm in enumerate(names):
            struct.pack_into('<I', self.buf, funcs + 4 * i, exports[nm])
            struct.pack_into('<I', self.buf, namep + 4 * i, p)
            struct.pack_into('<H', self.buf, ords + 2 * i, i)
            self.put(p, nm.encode() + b'\0')
            p += len(nm) + 1
        struct.pack_into('<IIHHIIIIIII', self.buf, d, 0, self.timestamp, 0, 0, dll_rva, 1,
                         n, n, funcs, namep, ords)
        self.dirs[0] = (d, p - d)
        return p

    def add_imports(self, rva, iat_rva, libs):
        """libs: list of (dllname, [(funcname, resolved_va)]).
        Descriptors + ILT + hint/name at rva; IAT at iat_rva (directory 12).
        Returns {funcname: iat entry va}."""
        psz = 8 if self.bits == 64 else 4
        ndesc = len(libs) + 1
        p = rva + 20 * ndesc
        iat = iat_rva
        slots = {}
        for k, (dll, funcs) in enumerate(libs):
            ilt = p
            p += psz * (len(funcs) + 1)
            first_iat = iat
            name_rva = p
            self.put(p, dll.encode() + b'\0')
            p = (p + len(dll) + 2) & ~1
            for j, (fn, va) in enumerate(funcs):
                hn = p
                self.put(p, struct.pack('<H', j) + fn.encode() + b'\0')
                p = (p + 3 + len(fn) + 1) & ~1
                self.put(ilt + psz * j, self.ptr(hn))
                self.put(iat + psz * j, self.ptr(va))     # resolved address in loaded image
                slots[fn] = self.base + iat + psz * j
            iat += psz * (len(funcs) + 1)
            struct.pack_into('<IIIII', self.buf, rva + 20 * k, ilt, 0, 0, name_rva, first_iat)
        self.dirs[1] = (rva, 20 * ndesc)
        self.dirs[12] = (iat_rva, iat - iat_rva)
        return slots, p
