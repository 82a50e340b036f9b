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


def tags_by_name(section):
    """Tags with a non-zero counter, keyed by their spelling."""
    out = {}
    for t in section["tags"]:
        c = [t[p][k] for p in ("nonpaged", "paged") for k in ("allocs", "frees", "bytes")]
        if any(c):
            out[t["tag"]] = {p: {k: t[p][k] for k in ("allocs", "frees", "diff", "bytes")} for p in ("nonpaged", "paged")}
    return out


def check_pool_sections(binary, dump, truth, partial):
    expect = truth.get("expect", {})
    code, out, err = run(binary, "--json", dump)
    obj = json.loads(out)
    check(code in expect.get("exit_ok", [expect.get("exit", 0)]),
          f"{dump}: main job exit {code}, expected {expect.get('exit_ok')} ({err.strip()[:200]})")
    for sec in expect.get("null_sections", []):
        check(obj.get(sec, "<missing>") is None, f"{dump}: section {sec} should be null")
    if truth.get("vm") and "vm" not in partial:
        code, out, err = run(binary, "--json", "vm", dump)
        compare(json.loads(out).get("vm"), truth["vm"], dump, "vm")
    if truth.get("pool") and "pool" not in partial:
        code, out, err = run(binary, "--json", "pool", dump)
        got = json.loads(out).get("pool")
        if got is None:
            check(False, f"{dump}: pool is null: {json.loads(out).get('warnings')}")
        else:
            check(got["processors_summed"] == truth["pool"]["processors_summed"],
                  f"{dump}: processors_summed {got['processors_summed']} vs {truth['pool']['processors_summed']}")
            compare(got["totals"], truth["pool"]["totals"], dump, "pool.totals")
            g, w = tags_by_name(got), tags_by_name(truth["pool"])
            missing = sorted(set(w) - set(g))
            extra = sorted(set(g) - set(w))
            check(not missing and not extra, f"{dump}: pool tags missing {missing[:8]} extra {extra[:8]}")
            wrong = [k for k in w if k in g and g[k] != w[k]]
            check(not wrong, f"{dump}: pool counts differ for {wrong[:5]}: " +
                  "; ".join(f"{k}: {g[k]} vs {w[k]}" for k in wrong[:2]))
    if truth.get("bigpool") and "bigpool" not in partial:
        code, out, err = run(binary, "--json", "bigpool", dump)
        got = json.loads(out).get("bigpool")
        if got is None:
            check(False, f"{dump}: bigpool is null: {json.loads(out).get('warnings')}")
        else:
            keyf = lambda e: (e["va"], e["tag"], e["bytes"], e["pool"], e["free"])
            g = sorted(map(keyf, got["entries"]))
            w = sorted(map(keyf, truth["bigpool"]["entries"]))
            check(g == w, f"{dump}: bigpool differs: {len(g)} vs {len(w)} entries; first diff " +
                  str(next(((x, y) for x, y in zip(g, w) if x != y), None)))


def check_suspects(binary, dump, truth, pooltag):
    """The top candidate, its confidence and evidence kinds, and the honest
    page counts when nothing is found."""
    for want in truth.get("suspects") or []:
        args = ["--json", "suspect", "--tag", want["tag"], dump]
        if pooltag and want.get("with_pooltag_top") is not None:
            args[1:1] = ["--pooltag", pooltag]
        code, out, err = run(binary, *args)
        obj = json.loads(out)
        got = (obj.get("suspects") or [None])[0]
        if got is None:
            check(False, f"{dump}: no suspects for {want['tag']}: {obj.get('warnings')}")
            continue
        cands = got["candidates"]
        loaded = [c for c in cands if any(e["kind"] != "unloaded" for e in c["evidence"])]
        top = want.get("with_pooltag_top") if pooltag and want.get("with_pooltag_top") else want["top"]
        if top is None:
            check(not loaded, f"{dump}: {want['tag']}: expected no loaded candidate, got {[c['module'] for c in loaded]}")
            ts = want.get("tag_search") or {}
            if ts:
                check(got["image_pages"] == {"resident": ts["resident_pages"], "total": ts["total_pages"]},
                      f"{dump}: {want['tag']}: image pages {got['image_pages']} vs {ts}")
            continue
        ok_top = [top] + list(want.get("tied") or [])
        check(bool(cands) and cands[0]["module"] in ok_top,
              f"{dump}: {want['tag']}: top {cands[0]['module'] if cands else None}, expected {ok_top}")
        if cands and cands[0]["module"] in ok_top and not (pooltag and want.get("with_pooltag_top")):
            check(cands[0]["confidence"] == want["top_confidence"],
                  f"{dump}: {want['tag']}: confidence {cands[0]['confidence']}, expected {want['top_confidence']}")
            kinds = {e["kind"] for e in cands[0]["evidence"]}
            check(set(want["top_kinds"]) <= kinds, f"{dump}: {want['tag']}: kinds {kinds}, expected {want['top_kinds']}")
            for e in (want["candidates"][0].get("evidence") or []):
                if e.get("address") and e["kind"] in ("tag-in-code", "tag-in-data", "imports-allocator"):
                    check(any(x.get("address") == e["address"] and x["kind"] == e["kind"] for x in cands[0]["evidence"]),
                          f"{dump}: {want['tag']}: evidence {e['kind']} at {e['address']} missing")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--matrix", required=True)
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--max-phys-mb", type=int, default=0,
                    help="leave out entries of guests with more RAM (the sanitized suite's reduced matrix)")
    a = ap.parse_args()
    index = json.load(open(os.path.join(a.matrix, "index.json")))
    entries = index if isinstance(index, list) else index["dumps"]
    good = []
    if a.max_phys_mb:
        entries = [e for e in entries if e.get("phys_mb", 0) <= a.max_phys_mb]
    for e in entries:
        dump = os.path.join(a.matrix, e.get("dump") or e["capture"])
        truth = json.load(open(os.path.join(a.matrix, e["truth"])))
        want_exit = truth.get("expect", {}).get("exit", 0)
        defect = truth.get("defect") or truth.get("capture", {}).get("defect") or (want_exit >= 3 and "expected-failure")
        if defect in ("gzip", "zip", "cab"):
            code, out, err = run(a.bin, "--json", "info", dump)
            obj = json.loads(out)
            check(code == 0 and obj["source"]["wrapper"] == defect, f"{dump}: wrapped dump not read: {err.strip()}")
            continue
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
        want = json.loads(json.dumps(truth["info"]))
        loose = list(truth.get("capture", {}).get("info_loose", []))
        if truth.get("capture") and obj.get("os", {}).get("checked") is None:
            loose.append("os.checked")  # no header: known only when the build lab says fre/chk
        for path in loose:
            node = want
            *parents, leaf = path.split(".")
            for p in parents:
                node = node.get(p, {})
            node.pop(leaf, None)
        compare(obj, want, dump, "info")
        partial = set(truth.get("expect", {}).get("partial_sections", []))
        if "modules" in truth and "modules" not in partial:
            code, out, err = run(a.bin, "--json", "modules", dump)
            obj = json.loads(out)
            compare(obj.get("modules"), truth["modules"], dump, "modules")
        check_pool_sections(a.bin, dump, truth, partial)
        if "suspects" not in partial:
            pt = e.get("pooltag")
            check_suspects(a.bin, dump, truth, os.path.join(a.matrix, pt) if pt else None)
    # Several dumps per call: one line each, in argument order.
    if len(good) >= 3:
        code, out, err = run(a.bin, "--json", "info", *good[:3], "/nonexistent.dmp")
        lines = out.strip().split("\n")
        check(len(lines) == 4, "batch: one JSON line per dump")
        check([json.loads(l)["file"] for l in lines] == good[:3] + ["/nonexistent.dmp"], "batch: argument order")
        check(code == 3, f"batch: exit is the highest code, got {code}")
    # --drivers DIR: a driver file on disk that holds a tag as `push imm32`.
    sample = os.path.join(a.testdata, "sample-x64-19041.dmp.gz")
    if os.path.exists(sample):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "ondisk.sys"), "wb") as f:
                f.write(b"\0" * 100 + b"\x68QzQz" + b"\0" * 100)
            with open(os.path.join(tmp, "notes.txt"), "wb") as f:
                f.write(b"QzQz")
            code, out, err = run(a.bin, "--json", "--no-cache", "suspect", "--tag", "QzQz", "--drivers", tmp, sample)
            cands = json.loads(out)["suspects"][0]["candidates"]
            check(len(cands) >= 1 and cands[0]["module"] == "ondisk.sys" and
                  any(e["kind"] == "driver-file" and e["offset"] == "0x65" for e in cands[0]["evidence"]),
                  f"--drivers: expected ondisk.sys with driver-file evidence at 0x65, got {cands[:1]}")
            check(all(c["module"] != "notes.txt" for c in cands), "--drivers searched a file that is not a .sys")
    # -j N: same bytes as one at a time, in argument order.
    batch = [os.path.join(a.matrix, e.get("dump") or e["capture"]) for e in entries][:60]
    one = run(a.bin, "--json", "-j", "1", *batch)
    two = run(a.bin, "--json", "-j", "2", *batch)
    check(one[1] == two[1] and one[0] == two[0], "-j 2 output differs from -j 1")
    check(len(one[1].strip().split("\n")) == len(batch), "-j: one line per dump")
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
