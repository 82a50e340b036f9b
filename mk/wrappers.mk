# Compressed wrappers (gzip, ZIP, CAB/MSZIP) read through zlib.
PKGS += zlib
# The unit tests link the library, which now needs zlib.
$(TEST_BIN): LDFLAGS += $$(pkg-config --libs zlib)

WRAP_PKGS := gzip zip gcab

.PHONY: check-wrappers bench-wrappers
check-wrappers: $(BIN)
	@missing=""; for p in $(WRAP_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && apt-get install -y --no-install-recommends $$missing) >/dev/null || exit 1; fi
	python3 tests/wrappers/check_wrappers.py --bin $(BIN) --work $(BUILD)/wrappers

bench-wrappers: $(BIN)
	sh tests/wrappers/bench.sh $(BIN)
