#!/usr/bin/env python3
"""Captures written by QEMU itself, not by our forge (issue 10: "checked with
captures the project did not write").

Each forged raw guest image (x86, PAE, x64, x64 with an encoded KDBG) is
loaded into the RAM of a stopped QEMU guest (`-device loader`, the vCPUs
never run: they hold their reset state, so CR3 must come from the memory),
and QEMU's own `dump-guest-memory` writes it as an ELF core and in every
kdump-compressed format it offers (libvirt's --format kdump-*: makedumpfile's
flattened stream).  The outputs get the raw image's truth, with the input
kind and page count that QEMU's layout gives, and go through
tests/cli/check_cli.py: info, modules, pool, bigpool, vm and suspects must
be what the forge says of the same memory.

  qemu_captures.py --bin build/dumpleak --captures build/captures --work DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

# The forge's raw images of good guests, one per paging mode.
SOURCES = ["x86_2600_raw", "pae_7601_raw", "x64_19041_raw", "x64_9600_enc_raw", "x64_26100_enc_raw"]
INPUT_NAME = {"elf": "elf", "kdump-zlib": "kdump-flattened", "kdump-lzo": "kdump-flattened",
              "kdump-snappy": "kdump-flattened"}
EXT = {"elf": "elf", "kdump-zlib": "kdz", "kdump-lzo": "kdl", "kdump-snappy": "kds"}


class Qmp:
    """QMP over QEMU's stdio, one command at a time."""

    def __init__(self, args):
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.read()  # greeting
        self.cmd("qmp_capabilities")

    def read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("QEMU closed its QMP channel")
        return json.loads(line)

    def cmd(self, name, **arguments):
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()
        while True:
            r = self.read()
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error']}")
            if "return" in r:
                return r["return"]

    def close(self):
        try:
            self.cmd("quit")
        except RuntimeError:
            pass
        self.p.wait(timeout=30)


def dump_with_qemu(raw, mem_mb, cpus, work, stem):
    """Load raw at PA 0 of a stopped guest; QEMU writes every format it has."""
    q = Qmp(["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", f"{mem_mb}M", "-smp", str(cpus),
             "-S", "-nodefaults", "-display", "none", "-qmp", "stdio",
             "-device", f"loader,file={raw},addr=0,force-raw=on"])
    try:
        formats = q.cmd("query-dump-guest-memory-capability")["formats"]
        out = []
        for fmt in ("elf", "kdump-zlib", "kdump-lzo", "kdump-snappy"):
            if fmt not in formats:
                continue
            name = f"{stem}_qemu.{EXT[fmt]}"
            path = os.path.join(work, name)
            args = {"paging": False, "protocol": f"file:{path}"}
            if fmt != "elf":
                args["format"] = fmt
            q.cmd("dump-guest-memory", **args)  # returns when written; fails with an error
            out.append((fmt, name))
        return out
    finally:
        q.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--captures", required=True, help="the forge's capture matrix (tests/forge/capture.py --matrix)")
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    if not shutil.which("qemu-system-x86_64"):
        print("qemu_captures: qemu-system-x86_64 not installed")
        return 1
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    index = {e["capture"]: e for e in json.load(open(os.path.join(a.captures, "index.json")))}
    entries = []
    for stem in SOURCES:
        e = index[stem + ".raw"]
        truth = json.load(open(os.path.join(a.captures, e["truth"])))
        raw = os.path.abspath(os.path.join(a.captures, e["capture"]))
        mem_mb = (os.path.getsize(raw) + (1 << 20) - 1) // (1 << 20) + 16
        cpus = truth["info"]["os"]["processors"]
        t0 = time.time()
        made = dump_with_qemu(raw, mem_mb, cpus, a.work, stem)
        print(f"qemu_captures: {stem}: {', '.join(f for f, _ in made)} in {time.time() - t0:.1f} s")
        for fmt, name in made:
            t = json.loads(json.dumps(truth))
            t["info"]["source"]["input"] = INPUT_NAME[fmt]
            # QEMU's layout: all its RAM blocks (zero beyond the image), its ROMs.
            t["capture"]["info_loose"] = sorted(set(t["capture"].get("info_loose", [])) | {"format.pages_present"})
            t["capture"]["writer"] = "qemu"
            tname = name + ".json"
            json.dump(t, open(os.path.join(a.work, tname), "w"))
            entries.append(dict(e, capture=name, truth=tname, kind=fmt, writer="qemu", files=[name]))
    json.dump(entries, open(os.path.join(a.work, "index.json"), "w"), indent=1)
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.call([sys.executable, os.path.join(here, "..", "cli", "check_cli.py"), "--bin", a.bin,
                            "--matrix", a.work, "--testdata", "/nonexistent"])


if __name__ == "__main__":
    sys.exit(main())
