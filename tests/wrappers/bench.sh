#!/bin/sh
# First-run and cached-run time of `dumpleak info` on a gzipped dump,
# against `zcat | wc -c` (the floor: one plain inflate of the stream).
# usage: bench.sh [BIN] [DUMP.gz]   (default: forge a 4 GiB dump and gzip it)
# Not run in CI: it needs ~2 minutes and a few GiB of sparse disk.
set -eu
BIN=${1:-build/dumpleak}
GZ=${2:-}
WORK=${BENCH_WORK:-build/bench-wrappers}
mkdir -p "$WORK"
if [ -z "$GZ" ]; then
    GZ=$WORK/big.dmp.gz
    if [ ! -s "$GZ" ]; then
        echo "forging a 4 GiB dump..."
        python3 tests/forge/forge.py --arch x64 --type 1 --build 19041 --phys-mb 4096 --out "$WORK/big.dmp" --truth "$WORK/big.json" >/dev/null
        gzip -c "$WORK/big.dmp" > "$GZ"
        rm -f "$WORK/big.dmp"
    fi
fi
secs() { # seconds taken by "$@", output discarded
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    e=$(date +%s.%N)
    echo "$s $e" | awk '{printf "%.2f", $2 - $1}'
}
size=$(zcat "$GZ" | wc -c)
floor=$(secs sh -c "zcat '$GZ' | wc -c")
cache=$WORK/cache
rm -rf "$cache"
first=$(XDG_CACHE_HOME=$cache secs "$BIN" info "$GZ")
cached=$(XDG_CACHE_HOME=$cache secs "$BIN" info "$GZ")
index=$(du -k "$cache/dumpleak" | awk '{print $1}')
echo "input: $GZ ($(wc -c < "$GZ") bytes, $size inflated)"
echo "zcat | wc -c:          ${floor} s"
echo "dumpleak info, first:  ${first} s (builds the index)"
echo "dumpleak info, cached: ${cached} s (index: ${index} KiB)"
