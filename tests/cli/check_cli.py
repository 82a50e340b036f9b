#!/usr/bin/env python3
"""CLI contract tests: run the dumpleak binary over the forged matrix and
compare its --json output and exit codes with the forge's truth, plus the
golden text outputs in testdata/. Prints 'N passed, N failed'."""
import argparse
import json
import os
import subprocess
import sys

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def run(binary, *args):
    p = subprocess.run([binary, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def compare(got, want, path, what):
    """Exact comparison of the members the truth names."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            check(False, f"{path}: {what} is {got!r}, expected an object")
            return
        for k, v in want.items():
            compare(got.get(k, "<missing>"), v, path, f"{what}.{k}")
    else:
        check(got == want, f"{path}: {what} = {got!r}, expected {want!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--matrix", required=True)
    ap.add_argument("--testdata", required=True)
    a = ap.parse_args()
    index = json.load(open(os.path.join(a.matrix, "index.json")))
    entries = index if isinstance(index, list) else index["dumps"]
    good = []
    for e in entries:
        dump = os.path.join(a.matrix, e["dump"])
        truth = json.load(open(os.path.join(a.matrix, e["truth"])))
        defect = truth.get("defect")
        want_exit = truth.get("expect", {}).get("exit", 0)
        if defect:
            if want_exit >= 3:
                code, out, err = run(a.bin, "info", dump)
                check(code == want_exit, f"{dump} ({defect}): exit {code}, expected {want_exit}")
                lines = err.strip().split("\n")
                check(len(lines) == 1 and lines[0].startswith(f"dumpleak: {dump}: "),
                      f"{dump}: stderr is not one 'dumpleak: FILE: ...' line: {err!r}")
                check(out == "", f"{dump}: stdout not empty for a failed file")
                code, out, err = run(a.bin, "--json", "info", dump)
                obj = json.loads(out)
                check(obj.get("error", {}).get("code") == want_exit, f"{dump}: JSON error member {out!r}")
            else:
                code, out, err = run(a.bin, "--json", "modules", dump)
                check(code in (0, 1), f"{dump} ({defect}): modules exit {code}: {err}")
                check(len(out.strip().split("\n")) == 1, f"{dump}: one JSON line")
            continue
        good.append(dump)
        code, out, err = run(a.bin, "--json", "info", dump)
        check(code == 0, f"{dump}: info exit {code}: {err}")
        obj = json.loads(out)
        for k in ("schema", "file", "source", "format", "os", "bugcheck", "warnings"):
            check(k in obj, f"{dump}: info lacks {k}")
        compare(obj, truth["info"], dump, "info")
        if "modules" in truth:
            code, out, err = run(a.bin, "--json", "modules", dump)
            obj = json.loads(out)
            compare(obj.get("modules"), truth["modules"], dump, "modules")
    # Several dumps per call: one line each, in argument order.
    if len(good) >= 3:
        code, out, err = run(a.bin, "--json", "info", *good[:3], "/nonexistent.dmp")
        lines = out.strip().split("\n")
        check(len(lines) == 4, "batch: one JSON line per dump")
        check([json.loads(l)["file"] for l in lines] == good[:3] + ["/nonexistent.dmp"], "batch: argument order")
        check(code == 3, f"batch: exit is the highest code, got {code}")
    # Usage errors.
    for args in ([], ["--bogus", "x"], ["--top", "x", "y"], ["--sort", "size", "y"]):
        code, out, err = run(a.bin, *args)
        check(code == 2, f"usage {args}: exit {code}")
    code, out, err = run(a.bin, "--version")
    check(code == 0 and out.startswith("dumpleak "), "--version")
    # Golden text outputs of the bundled sample.
    golden = os.path.join(a.testdata, "golden")
    if os.path.isdir(golden):
        for name in sorted(os.listdir(golden)):
            if not name.endswith(".cmd"):
                continue
            args = open(os.path.join(golden, name)).read().split()
            want = open(os.path.join(golden, name[:-4] + ".out")).read()
            code, out, err = run(a.bin, *args)
            check(out == want, f"golden {name}: output differs (regenerate with tests/cli/update_golden.sh if intended)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
