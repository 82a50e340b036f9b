# Benchmark (issue 6): forged sparse dumps of 4/16/64 GiB into build-bench/,
# timings, peak RSS, batch throughput; prints a table and writes
# build-bench/results.json.  Not part of `make check` or CI: it takes
# minutes and drops the page cache for the cold runs (as root).
#
#   make bench [BENCH_ARGS="--runs 3 --sizes 4,16 --no-cold"]
#   DUMPLEAK_PEER=/path/to/kdmp-parser/parser make bench   # side by side
#
# Without DUMPLEAK_PEER the bench says "peer unavailable" and compares with
# dd reading the pages dumpleak reads.
BENCH_DIR ?= build-bench
BENCH_ARGS ?=
# GNU time: peak RSS of the command itself (see bench.py, run_once).
BENCH_DEB_PKGS := time

.PHONY: bench bench-tools clean-bench
bench-tools:
	@missing=""; for p in $(BENCH_DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && apt-get install -y --no-install-recommends $$missing) >/dev/null || exit 1; fi

bench: deps bench-tools
	$(MAKE) $(BIN)
	python3 tests/bench/bench.py --bin $(BIN) --out $(BENCH_DIR) $(BENCH_ARGS)

clean-bench:
	rm -rf $(BENCH_DIR)
