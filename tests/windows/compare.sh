#!/bin/sh
# Run the Windows build under Wine on every forged dump and compare its
# stdout and exit code, byte for byte, with the Linux build's (issue 7).
#
#   tests/windows/compare.sh [--exe build-win/dumpleak.exe] [--linux build-lin/dumpleak]
#                            [--matrix DIR] [--work DIR]
#
# The matrix is made with `python3 tests/forge/forge.py --matrix DIR` when
# DIR has no index.json.  Every file in it (except *.json) is a dump, plus a
# few probes for the platform layer: a path with spaces, a non-ASCII path,
# an empty file, a directory, a missing file, Windows-style paths (and the
# dumps in testdata/ with COMPARE_TESTDATA=1).  Each run (`--json info`,
# `--json modules`, the default report in text, in JSON and with -j 2,
# `suspect` with driver files) takes a batch of dumps, so Wine starts a
# handful of times, not once per dump; each dump's own exit code is then
# checked once.  Both programs get the same relative paths (Wine maps the
# Unix cwd), so the `file` members agree.  Wine's stderr is noise: only
# stdout and the exit code count; a difference on stderr is printed as a
# note.  COMPARE_TIMEOUT (300 s) limits each run.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EXE=build-win/dumpleak.exe
LIN=build-lin/dumpleak
MATRIX=build-lin/matrix
WORK=build-win/compare
while [ $# -gt 0 ]; do
    case $1 in
    --exe) EXE=$2; shift 2 ;;
    --linux) LIN=$2; shift 2 ;;
    --matrix) MATRIX=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) echo "usage: $0 [--exe EXE] [--linux BIN] [--matrix DIR] [--work DIR]" >&2; exit 2 ;;
    esac
done

now() { date +%s.%N; }
T0=$(now)
stage_start=$T0
stage() { # print the time of the stage that just ended
    t=$(now)
    awk -v a="$stage_start" -v b="$t" -v s="$1" 'BEGIN { printf "compare: %-28s %6.1fs\n", s, b - a }'
    stage_start=$t
}

for f in "$EXE" "$LIN"; do
    [ -x "$f" ] || { echo "compare: $f is missing (make windows; make BUILD=build-lin)" >&2; exit 2; }
done
EXE=$(realpath "$EXE")
LIN=$(realpath "$LIN")
if [ -d "${COMPARE_CAPTURES:-}" ]; then COMPARE_CAPTURES=$(realpath "$COMPARE_CAPTURES"); fi

# --- Wine (Debian's wine64 puts its loader in /usr/lib/wine) --------------
find_wine() {
    for w in wine64 /usr/lib/wine/wine64 wine; do
        command -v "$w" >/dev/null 2>&1 && { command -v "$w"; return 0; }
    done
    return 1
}
if ! WINE=$(find_wine); then
    echo "compare: installing wine64"
    (apt-get update -qq && apt-get install -y --no-install-recommends wine64) >/dev/null
    WINE=$(find_wine) || { echo "compare: wine64 did not install" >&2; exit 2; }
fi
WINESERVER=$(dirname "$WINE")/wineserver
[ -x "$WINESERVER" ] || WINESERVER=$(command -v wineserver || echo /usr/lib/wine/wineserver)
stage "wine64 present"

# A private prefix, no Mono/Gecko prompts, no debug channels.
mkdir -p "$WORK"
WORK=$(realpath "$WORK")
export WINEPREFIX="$WORK/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" WINEARCH=win64
unset DISPLAY WAYLAND_DISPLAY
# Arguments reach Wine as UTF-8 only in a UTF-8 locale.
export LC_ALL=C.UTF-8
# Each build gets its own empty index cache (Wine sees $HOME and
# $XDG_CACHE_HOME too): the Windows run writes and reads its own.
rm -rf "$WORK/cache-lin" "$WORK/cache-win"
# A hang must fail the run, not eat CI's 90 minutes: every run has a limit
# (exit 124 when it strikes).
LIMIT=${COMPARE_TIMEOUT:-300}
lin() { XDG_CACHE_HOME="$WORK/cache-lin" timeout -k 5 "$LIMIT" "$LIN" "$@"; }
win() { XDG_CACHE_HOME="$WORK/cache-win" timeout -k 5 "$LIMIT" "$WINE" "$EXE" "$@"; }
trap '"$WINESERVER" -k >/dev/null 2>&1 || true' EXIT

win --version >"$WORK/version.out" 2>"$WORK/version.err" || {
    echo "compare: FAIL: dumpleak.exe --version exited $?" >&2; cat "$WORK/version.err" >&2; exit 1; }
grep -q '^dumpleak ' "$WORK/version.out" || { echo "compare: FAIL: --version printed:" >&2; cat "$WORK/version.out" >&2; exit 1; }
stage "wine prefix + --version"

# --- The dumps --------------------------------------------------------------
if [ ! -f "$MATRIX/index.json" ]; then
    rm -rf "$MATRIX" && mkdir -p "$MATRIX"
    python3 "$ROOT/tests/forge/forge.py" --matrix "$MATRIX" >/dev/null
    stage "forge --matrix"
fi
MATRIX=$(realpath "$MATRIX")

# Work in $WORK: m -> the matrix, probe/ for the platform cases.
cd "$WORK"
rm -rf m td c probe out batch.* && mkdir -p probe out
ln -s "$MATRIX" m
(cd m && find . -type f ! -name '*.json' | sed 's|^\./||' | LC_ALL=C sort) | sed 's|^|m/|' >dumps.txt
first=$(head -n 1 dumps.txt)
[ -n "$first" ] || { echo "compare: no dumps in $MATRIX" >&2; exit 2; }
ln -s "../$first" "probe/with space.dmp"
ln -s "../$first" "probe/dümp-日本.dmp"
: >probe/empty.dmp
mkdir probe/dir.dmp
mkdir -p probe/drv/sub.sys
for n in zeta alpha Mid ünï beta; do printf 'xxxxtnv7yyyyFMslzzzzLeakVad ' >"probe/drv/$n.sys"; done
printf 'tnv7' >probe/drv/notes.txt
printf 'Leak' >probe/drv/UPPER.SYS
printf 'tnv7 - foo.sys - Test tag\nLeak - myfault.sys - Leaky\n' >probe/pooltag.txt
{
    echo "probe/with space.dmp"
    echo "probe/dümp-日本.dmp"
    echo "probe/empty.dmp"
    echo "probe/dir.dmp"
    echo "probe/missing.dmp"
    cat dumps.txt
} >all.txt
# The dumps in testdata/ (samples, regressions; not the golden outputs) on
# request: some are slow on purpose (tens of seconds per run).
if [ "${COMPARE_TESTDATA:-0}" = 1 ] && [ -d "$ROOT/testdata" ]; then
    ln -s "$ROOT/testdata" td
    (cd td && find . -type f ! -name '*.json' ! -name '*.md' ! -path './golden/*' | sed 's|^\./||' | LC_ALL=C sort) |
        sed 's|^|td/|' >>all.txt
fi
# Hypervisor captures the Windows build reads with its own code (raw
# images, VMware .vmem with its state file, state files), from
# COMPARE_CAPTURES, a `capture.py --matrix` directory; ELF and kdump files
# need libkdumpfile, which the Windows build lacks.  Guests above 1 GiB are
# left out (sparse giants, slow under Wine).
if [ -n "${COMPARE_CAPTURES:-}" ] && [ -f "$COMPARE_CAPTURES/index.json" ]; then
    ln -s "$(realpath "$COMPARE_CAPTURES")" c
    python3 -c 'import json, sys
for e in json.load(open(sys.argv[1])):
    f = e["capture"]
    if f.rsplit(".", 1)[-1] in ("raw", "vmem", "vmss", "vmsn") and e.get("phys_mb", 0) <= 1024:
        print("c/" + f)' "$COMPARE_CAPTURES/index.json" | LC_ALL=C sort -u >>all.txt
fi
ndumps=$(wc -l <all.txt)
# Batches: well under Windows' 32767-character command line.
split -l 60 -d -a 3 all.txt batch.
stage "dump list ($ndumps inputs)"

# --- Run and compare ------------------------------------------------------------
fail=0
notes=0
run_cmd() { # name, then the options before the dumps
    name=$1
    shift
    for b in batch.*; do
        tag="$name.${b#batch.}"
        # One argument per line of the batch file: split on newlines only, no globbing.
        set +e
        (set -f; IFS='
'; lin "$@" $(cat "$b")) >"out/$tag.lin" 2>"out/$tag.lin.err"
        lrc=$?
        (set -f; IFS='
'; win "$@" $(cat "$b")) >"out/$tag.win" 2>"out/$tag.win.err"
        wrc=$?
        set -e
        if [ "$lrc" != "$wrc" ] || ! cmp -s "out/$tag.lin" "out/$tag.win"; then
            fail=1
            echo "compare: FAIL: $name ($b): exit $lrc (linux) vs $wrc (wine)$([ "$lrc" = 124 ] || [ "$wrc" = 124 ] && echo ', 124 = timed out')"
            diff "out/$tag.lin" "out/$tag.win" | head -n 20 || true
            if [ "$name" != text ]; then # NDJSON: line k is dump k
                awk 'NR==FNR { d[FNR]=$0; next } FILENAME ~ /\.lin$/ { l[FNR]=$0; next } { if (l[FNR] != $0) print "compare:   differs: " d[FNR] }' \
                    "$b" "out/$tag.lin" "out/$tag.win" | head -n 20
            fi
        fi
        # Wine's own lines on stderr are noise; anything else that differs is a note.
        grep -v -E '^(wine|[0-9a-f]{4}:(err|fixme|warn|trace)):' "out/$tag.win.err" >"out/$tag.win.err2" || true
        if ! cmp -s "out/$tag.lin.err" "out/$tag.win.err2"; then
            notes=$((notes + 1))
            echo "compare: note: stderr of $name ($b) differs:"
            diff "out/$tag.lin.err" "out/$tag.win.err2" | head -n 6 || true
        fi
    done
}
run_cmd info --json info
stage "--json info"
run_cmd modules --json modules
stage "--json modules"
run_cmd text
stage "default command (text)"
run_cmd main --json
stage "default command (--json)"
run_cmd main-j2 --json -j 2
stage "default command (--json -j 2)"
# Driver files and a pooltag.txt: directory listing (non-ASCII names, a
# .SYS in capitals, a subdirectory called .sys, a non-driver) and mapping.
run_cmd suspect --json suspect --drivers probe/drv --pooltag probe/pooltag.txt
stage "suspect --drivers --pooltag"

# Batches only show the highest exit code: check each dump's own code once,
# with the command that has the widest range of them (0, 1, 3, 4).
set +e
while IFS= read -r f; do
    lin --json modules "$f" >/dev/null 2>&1
    lrc=$?
    win --json modules "$f" >/dev/null 2>out/one.err </dev/null
    wrc=$?
    if [ "$lrc" != "$wrc" ]; then
        # Once in a few hundred starts Wine itself fails: ask again before calling it a difference.
        win --json modules "$f" >/dev/null 2>out/one.err </dev/null
        wrc2=$?
        if [ "$lrc" != "$wrc2" ]; then
            fail=1
            echo "compare: FAIL: --json modules $f: exit $lrc (linux) vs $wrc, then $wrc2 (wine)"
            grep -v -E '^(wine|[0-9a-f]{4}:(err|fixme|warn|trace)):' out/one.err | head -n 3 || true
        else
            notes=$((notes + 1))
            echo "compare: note: --json modules $f: wine exited $wrc once, then $wrc2 like linux"
        fi
    fi
done <all.txt
set -e
stage "per-dump exit codes"

# Windows spellings of a path: backslashes, and an absolute drive path (Wine's
# Z: is /).  Only the `file` member may differ from the Linux run.
win_rel=$(printf '%s' "$first" | tr '/' '\\')
win_abs="Z:$(printf '%s' "$MATRIX/${first#m/}" | tr '/' '\\')"
lin --json info "$first" >out/winpath.lin 2>/dev/null || true
win --json info "$win_rel" "$win_abs" >out/winpath.win 2>/dev/null || true
if ! python3 - out/winpath.lin out/winpath.win "$win_rel" "$win_abs" <<'PY'
import json, sys
lin = json.loads(open(sys.argv[1]).read())
wins = [json.loads(l) for l in open(sys.argv[2])]
ok = len(wins) == 2
for w, path in zip(wins, sys.argv[3:]):
    ok = ok and w.get('file') == path and dict(w, file=lin['file']) == lin
sys.exit(0 if ok else 1)
PY
then
    fail=1
    echo "compare: FAIL: Windows-style paths ($win_rel, $win_abs) do not give the Linux result"
fi
stage "Windows-style paths"

# Both builds should have written the same index files to their caches.
# Names and keys differ: the key holds the file's mtime, which Windows has
# in 100 ns units and Linux in ns.  Compare how many and how big.
cache_sizes() { find "$1" -type f -name '*.zidx' -exec wc -c {} + 2>/dev/null | awk '$2 != "total" { print $1 }' | sort -n; }
if [ "$(cache_sizes cache-lin)" != "$(cache_sizes cache-win)" ]; then
    notes=$((notes + 1))
    echo "compare: note: the index caches differ: linux $(cache_sizes cache-lin | tr '\n' ' '), wine $(cache_sizes cache-win | tr '\n' ' ')"
fi

"$WINESERVER" -k >/dev/null 2>&1 || true
total=$(awk -v a="$T0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
if [ $fail -ne 0 ]; then
    echo "compare: FAIL: the Windows build differs from the Linux build (outputs in $WORK/out) [${total}s]"
    exit 1
fi
echo "compare: OK: $ndumps inputs x 6 runs, stdout and exit codes identical; per-dump exit codes and Windows paths agree ($notes notes) [${total}s]"
