#!/usr/bin/env python3
"""Wrapped dumps analyse like plain ones.

Every forged dump is wrapped with the system's gzip and zip and Debian's
`gcab -c -z` (MSZIP); `dumpleak --json` of each command must equal the
plain dump's output apart from file, source and warnings (the members
that name the container), exit code included.  Then corrupt, truncated
and unsupported wrappers must fail cleanly: exit 3 (or 4), one line on
stderr, and the index cache must survive damage."""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys

IGNORED = ("file", "source", "warnings")
COMMANDS = (["info"], ["modules"], [])  # [] is the main job
MAX_PLAIN = 256 << 20  # larger dumps belong to the bench


def run(argv, env=None, check=True):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if check and p.returncode != 0:
        sys.exit("command failed: %s\n%s" % (" ".join(argv), p.stderr.decode(errors="replace")))
    return p


class Checker:
    def __init__(self, binary, work):
        self.bin = binary
        self.work = work
        self.env = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, "cache"))
        self.failures = []
        self.notes = set()

    def fail(self, msg):
        self.failures.append(msg)

    def analyse(self, path, cmd, extra=()):
        p = run([self.bin, "--json"] + list(extra) + cmd + [path], env=self.env, check=False)
        objs = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
        return p.returncode, objs

    @staticmethod
    def strip(obj):
        return {k: v for k, v in obj.items() if k not in IGNORED}

    def compare(self, plain, wrapped, kind):
        for cmd in COMMANDS:
            rc0, o0 = self.analyse(plain, cmd)
            rc1, o1 = self.analyse(wrapped, cmd)
            name = "%s %s (%s)" % (" ".join(cmd) or "main", os.path.basename(plain), kind)
            if rc0 != rc1:
                self.fail("%s: exit %d, plain %d: %s" % (name, rc1, rc0, o1))
                continue
            if len(o0) != 1 or len(o1) != 1:
                self.fail("%s: expected one JSON object each, got %d and %d" % (name, len(o0), len(o1)))
                continue
            if self.strip(o0[0]) != self.strip(o1[0]):
                self.fail("%s: output differs from the plain dump's\n  plain:   %s\n  wrapped: %s"
                          % (name, json.dumps(self.strip(o0[0]))[:400], json.dumps(self.strip(o1[0]))[:400]))
            w = (o1[0].get("source") or {}).get("wrapper")
            if "error" not in o1[0] and w != kind:
                if w is None:
                    self.notes.add("source.wrapper is null for wrapped dumps (cmd/json.c does not print dl_info.wrapper)")
                else:
                    self.fail("%s: source.wrapper is %r" % (name, w))

    def expect_error(self, path, code, what):
        p = run([self.bin, "info", path], env=self.env, check=False)
        err = p.stderr.decode(errors="replace")
        lines = err.splitlines()
        if p.returncode != code or len(lines) != 1 or not lines[0].startswith("dumpleak: "):
            self.fail("%s: want exit %d and one line on stderr, got exit %d and %r" % (what, code, p.returncode, err))
        if p.stdout:
            self.fail("%s: wrote to stdout: %r" % (what, p.stdout[:200]))
        return lines[0] if lines else ""


def wrap(plain, out_dir):
    """The plain dump as .gz, multi-member .gz, .zip, ZIP64 .zip, stored
    .zip and MSZIP .cab."""
    base = os.path.basename(plain)
    d = os.path.join(out_dir, base + ".d")
    os.makedirs(d, exist_ok=True)
    dump = os.path.join(d, "MEMORY.DMP")
    if not os.path.exists(dump):
        os.link(plain, dump) if os.stat(plain).st_dev == os.stat(d).st_dev else shutil.copy(plain, dump)
    # A second, smaller member, which the reader must pass over, beside a
    # real dump; a non-dump (a defect) goes alone, as it could not be told
    # from the note.
    with open(plain, "rb") as f:
        is_dump = f.read(8) in (b"PAGEDUMP", b"PAGEDU64")
    note = os.path.join(d, "notes.txt")
    with open(note, "w") as f:
        f.write("customer upload\n")
    members = [note, dump] if is_dump else [dump]
    out = {}
    gz = os.path.join(d, base + ".gz")
    with open(gz, "wb") as f:
        f.write(run(["gzip", "-c", dump]).stdout)
    out["gzip"] = gz
    # Two members, split at an odd offset.
    mm = os.path.join(d, base + ".mm.gz")
    data = open(dump, "rb").read()
    cut = len(data) // 3 + 12345 if len(data) > 20000 else len(data) // 2
    with open(mm, "wb") as f:
        for part in (data[:cut], data[cut:]):
            f.write(subprocess.run(["gzip", "-c"], input=part, stdout=subprocess.PIPE, check=True).stdout)
    out["gzip-multi"] = mm
    for tag, flags in (("zip", []), ("zip64", ["-fz"]), ("zip-stored", ["-0"])):
        z = os.path.join(d, "%s.%s.zip" % (base, tag))
        if os.path.exists(z):
            os.remove(z)
        run(["zip", "-q", "-j"] + flags + [z] + members)
        out[tag] = z
    cab = os.path.join(d, base + ".cab")
    if os.path.exists(cab):
        os.remove(cab)
    run(["gcab", "-c", "-z", "-n", cab] + members)
    out["cab"] = cab
    return out


def damage(c, plain, work):
    """Corrupt, truncated and unsupported wrappers fail cleanly."""
    d = os.path.join(work, "damaged")
    os.makedirs(d, exist_ok=True)
    w = wrap(plain, d)
    def write(name, data):
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(data)
        return p
    gz = open(w["gzip"], "rb").read()
    zp = open(w["zip"], "rb").read()
    cb = open(w["cab"], "rb").read()
    c.expect_error(write("trunc.gz", gz[: len(gz) // 2]), 3, "truncated gzip")
    c.expect_error(write("notrailer.gz", gz[:-4]), 3, "gzip without its trailer")
    c.expect_error(write("header.gz", gz[:5]), 3, "gzip cut in its header")
    flip = bytearray(gz)
    flip[len(flip) // 2] ^= 0x55
    c.expect_error(write("flip.gz", bytes(flip)), 3, "gzip with a flipped byte")
    bad = bytearray(gz)
    bad[2] = 7
    c.expect_error(write("method.gz", bytes(bad)), 4, "gzip with an unknown method")
    c.expect_error(write("trunc.zip", zp[: len(zp) // 2]), 3, "truncated zip")
    cd = zp.rfind(b"PK\x01\x02")
    bad = bytearray(zp)
    bad[cd : cd + 4] = b"PK\x09\x09"
    c.expect_error(write("cd.zip", bytes(bad)), 3, "zip with a damaged central directory")
    c.expect_error(write("trunc.cab", cb[: len(cb) // 2]), 3, "truncated cab")
    ck = cb.find(b"CK")
    bad = bytearray(cb)
    bad[ck : ck + 2] = b"XX"
    c.expect_error(write("ck.cab", bytes(bad)), 3, "cab block without 'CK'")
    bad = bytearray(cb)
    bad[36 + 6] = 3  # first CFFOLDER's typeCompress: LZX
    msg = c.expect_error(write("lzx.cab", bytes(bad)), 4, "LZX cab")
    if "unsupported compression LZX" not in msg:
        c.fail("LZX cab: message %r does not name LZX" % msg)
    enc = os.path.join(d, "enc.zip")
    if os.path.exists(enc):
        os.remove(enc)
    run(["zip", "-q", "-j", "-P", "secret", enc, os.path.join(d, os.path.basename(plain) + ".d", "MEMORY.DMP")])
    c.expect_error(enc, 4, "encrypted zip")
    bz = os.path.join(d, "bz.zip")
    if os.path.exists(bz):
        os.remove(bz)
    if run(["zip", "-q", "-j", "-Z", "bzip2", bz, plain], check=False).returncode == 0:
        msg = c.expect_error(bz, 4, "bzip2 zip")
        if "unsupported compression bzip2" not in msg:
            c.fail("bzip2 zip: message %r does not name bzip2" % msg)
    # The index cache: a damaged or stale index is rebuilt, never trusted.
    cache = os.path.join(work, "cache", "dumpleak")
    rc0, o0 = c.analyse(plain, ["modules"])
    c.analyse(w["gzip"], ["modules"])
    for f in os.listdir(cache):
        p = os.path.join(cache, f)
        blob = bytearray(open(p, "rb").read())
        blob[len(blob) // 2] ^= 0xFF
        open(p, "wb").write(bytes(blob))
    rc1, o1 = c.analyse(w["gzip"], ["modules"])
    if rc0 != rc1 or c.strip(o0[0]) != c.strip(o1[0]):
        c.fail("a damaged cached index changed the output")
    before = sorted(os.listdir(cache))
    c.analyse(w["gzip-multi"], ["info"], extra=["--no-cache"])
    if sorted(os.listdir(cache)) != before:
        c.fail("--no-cache wrote to the cache directory")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", default="build/dumpleak")
    ap.add_argument("--work", default="build/wrappers")
    ap.add_argument("--matrix", help="forged dumps (default: forge them into WORK/matrix)")
    ap.add_argument("--limit", type=int, default=0, help="check only the first N dumps")
    a = ap.parse_args()
    for tool in ("gzip", "zip", "gcab"):
        if not shutil.which(tool):
            sys.exit("check_wrappers: %s is missing (apt-get install %s)" % (tool, tool))
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    matrix = a.matrix
    if not matrix:
        matrix = os.path.join(a.work, "matrix")
        here = os.path.dirname(os.path.abspath(__file__))
        run([sys.executable, os.path.join(here, "..", "forge", "forge.py"), "--matrix", matrix])
    dumps = sorted(os.path.join(matrix, f) for f in os.listdir(matrix) if f.endswith(".dmp"))
    dumps = [p for p in dumps if os.path.getsize(p) <= MAX_PLAIN]
    if a.limit:
        dumps = dumps[: a.limit]
    if not dumps:
        sys.exit("check_wrappers: no dumps in %s" % matrix)
    c = Checker(os.path.abspath(a.bin), a.work)
    wrapped_dir = os.path.join(a.work, "wrapped")

    def one(plain):
        w = wrap(plain, wrapped_dir)
        for kind, path in w.items():
            c.compare(plain, path, kind.split("-")[0].replace("zip64", "zip"))
        shutil.rmtree(os.path.join(wrapped_dir, os.path.basename(plain) + ".d"))
        return plain

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        for done in ex.map(one, dumps):
            pass
    good = [p for p in dumps if c.analyse(p, ["info"])[0] == 0]
    damage(c, (good or dumps)[0], a.work)
    for n in sorted(c.notes):
        print("check_wrappers: note: " + n)
    for f in c.failures:
        print("FAIL " + f)
    print("check_wrappers: %d dumps x 6 wrappers x %d commands, %d failures"
          % (len(dumps), len(COMMANDS), len(c.failures)))
    sys.exit(1 if c.failures else 0)


if __name__ == "__main__":
    main()
