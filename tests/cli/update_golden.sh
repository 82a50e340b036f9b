#!/bin/sh
# Rewrite testdata/golden/*.out from the current build (after an intended output change).
set -e
cd "$(dirname "$0")/../.."
for c in testdata/golden/*.cmd; do
    ./build/dumpleak $(cat "$c") > "${c%.cmd}.out" || true
done
