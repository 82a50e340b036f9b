# Fuzzing (issue 5): libFuzzer targets in tests/fuzz/, built with clang,
# ASan and UBSan into build-fuzz/.
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="open xlat analysis"]
#                        run each target in turn for FUZZ_SECONDS
#   make fuzz-smoke      each target for about a minute (CI): fails on any
#                        crash, leak, timeout or out-of-memory
#   make fuzz-build      build the targets only
#   make check-regress   the regular build/dumpleak over testdata/regress/,
#                        exit codes as testdata/regress/EXPECT lists them
#
# Corpora grow in build-fuzz/work-TARGET (never committed), seeded from
# build-fuzz/corpus-TARGET, which make_seeds.py builds from the forge;
# crash inputs land in build-fuzz/artifacts/.  One fuzzer at a time, one
# job each (-jobs=1): the machine is shared.

FUZZ_CC ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 60
FUZZ_TARGETS ?= open xlat analysis
FUZZ_DEB_PKGS := clang libclang-rt-14-dev
# UBSan recoverable so a suppression list can name known findings; the
# targets set halt_on_error=1, so an unlisted report still stops the run.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fsanitize-recover=undefined \
  -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -pthread -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
  $(FUZZ_SAN) -Ilib -DFUZZ_SEED_DIR='"$(abspath $(FUZZ_BUILD))/seeds"'
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
# The CLI's formatters, for fuzz_analysis (main() and argv hooks left out).
FUZZ_CMD_OBJ := $(filter-out %/main.o %/args_posix.o %/args_win.o,$(CMD_SRC:%.c=$(FUZZ_BUILD)/obj/%.o))
FUZZ_SEEDS := $(FUZZ_BUILD)/seeds/.done
# Per target: input size cap.  open: header, bitmap or run list and a few
# pages; xlat: 16 control bytes + 16 pages; analysis: ~128 patches.
FUZZ_MAXLEN_open := 65536
FUZZ_MAXLEN_xlat := 65552
FUZZ_MAXLEN_analysis := 4096
# FUZZ_KNOWN=1: suppress the UBSan findings listed in tests/fuzz/known.supp
# (reported in FINDINGS.md, not fixed yet) to fuzz past them.  CI leaves it
# unset: a known finding fails the smoke run until it is fixed.
FUZZ_KNOWN ?=
FUZZ_ENV = UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1$(if $(FUZZ_KNOWN),:suppressions=$(abspath tests/fuzz/known.supp))
FUZZ_OPTS = -timeout=10 -rss_limit_mb=2048 -max_len=$(FUZZ_MAXLEN_$(1)) -print_final_stats=1 \
  -artifact_prefix=$(abspath $(FUZZ_BUILD))/artifacts/$(1)/

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-seeds fuzz-tools check-regress clean-fuzz
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
.SECONDARY: $(FUZZ_LIB_OBJ) $(FUZZ_CMD_OBJ)

fuzz-tools:
	@missing=""; for p in $(FUZZ_DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && apt-get install -y --no-install-recommends $$missing) >/dev/null || exit 1; fi

# lib/ and cmd/ are -Werror clean under gcc (the regular build); clang's
# extra warnings show here but do not stop fuzzing.  The targets stay -Werror.
# suspect.c compares every byte of every module image with the wanted tags:
# comparison tracing there costs most of fuzz_analysis's time and finds
# nothing (the tags come from the pool table, not from constants).
$(FUZZ_BUILD)/obj/lib/suspect.o: FUZZ_OBJ_FLAGS := -fno-sanitize-coverage=trace-cmp
$(FUZZ_BUILD)/obj/%.o: %.c | fuzz-tools
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_OBJ_FLAGS) -Wno-error -fsanitize=fuzzer-no-link $$(pkg-config --cflags $(PKGS)) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_LIB_OBJ) $(FUZZ_CMD_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Icmd -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) \
	  $(if $(filter %analysis,$*),$(FUZZ_CMD_OBJ)) $$(pkg-config --libs $(PKGS))

# Seeds and starting corpora; regenerated when the forge changes.
fuzz-seeds: $(FUZZ_SEEDS)
$(FUZZ_SEEDS): $(wildcard tests/forge/*.py) tests/fuzz/make_seeds.py
	rm -rf $(FUZZ_BUILD)/seeds $(FUZZ_BUILD)/corpus-* $(FUZZ_BUILD)/matrix
	python3 tests/fuzz/make_seeds.py --forge tests/forge/forge.py --out $(FUZZ_BUILD)
	rm -rf $(FUZZ_BUILD)/matrix
	touch $@

# One target for $(2) seconds; prints its executions, fails on any finding.
# -jobs=1 runs the fuzzer as a child logging to fuzz-0.log in the run dir.
define fuzz_run
	@mkdir -p $(FUZZ_BUILD)/work-$(1) $(FUZZ_BUILD)/artifacts/$(1) $(FUZZ_BUILD)/run-$(1)
	@echo "fuzz_$(1): $(2) s"
	@cd $(FUZZ_BUILD)/run-$(1) && rm -f fuzz-0.log && \
	  $(FUZZ_ENV) ../fuzz_$(1) -jobs=1 -max_total_time=$(2) $(call FUZZ_OPTS,$(1)) ../work-$(1) ../corpus-$(1) >/dev/null 2>&1; \
	  rc=$$?; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' fuzz-0.log | tail -1); \
	  echo "fuzz_$(1): $${execs:-?} executions in $(2) s, exit $$rc"; \
	  if [ $$rc -ne 0 ]; then grep -E -A40 '^==[0-9]+==ERROR|runtime error|invariant failed|ALARM|out-of-memory|SUMMARY' \
	    fuzz-0.log | head -80; ls ../artifacts/$(1)/; exit 1; fi

endef

fuzz: fuzz-build $(FUZZ_SEEDS)
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),$(FUZZ_SECONDS)))

fuzz-smoke: fuzz-build $(FUZZ_SEEDS)
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),$(FUZZ_SMOKE_SECONDS)))

# Every file in testdata/regress/ (a dump, gzip-wrapped when large) must
# end with the exit code EXPECT gives it, within REGRESS_TIMEOUT seconds:
# no crash, no hang.  Each is a small file that a sound build analyses in
# well under a second.  `make check-regress SANITIZE=1` uses build-san/.
REGRESS_DIR := testdata/regress
REGRESS_TIMEOUT ?= 5
check-regress: $(BIN)
	@fail=0; n=0; for f in $(REGRESS_DIR)/*; do b=$$(basename $$f); \
	  case $$b in EXPECT|*.md) continue;; esac; n=$$((n+1)); \
	  want=$$(awk -v f="$$b" '$$1 == f {print $$2}' $(REGRESS_DIR)/EXPECT); \
	  if [ -z "$$want" ]; then echo "check-regress: $$b has no line in EXPECT"; fail=1; continue; fi; \
	  timeout $(REGRESS_TIMEOUT) ./$(BIN) --no-cache --json $$f >/dev/null 2>&1; rc=$$?; \
	  [ $$rc -eq 124 ] && echo "check-regress: $$b: no result within $(REGRESS_TIMEOUT) s"; \
	  if [ $$rc -ne $$want ]; then echo "check-regress: $$b: exit $$rc, expected $$want"; fail=1; fi; \
	done; echo "check-regress: $$n inputs"; exit $$fail

clean-fuzz:
	rm -rf $(FUZZ_BUILD)

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_CMD_OBJ:.o=.d)
