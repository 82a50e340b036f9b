# Captures written by QEMU itself (issue 10): the forge's raw guest images
# loaded into a stopped QEMU guest, dumped by its own dump-guest-memory as
# an ELF core and kdump-compressed (flattened), then checked against the
# forge's truth.  `make check-qemu [SANITIZE=1]`.
QEMU_PKGS := qemu-system-x86

.PHONY: check-qemu
check-qemu: $(BIN) $(CAPTURES)/index.json
	@missing=""; for p in $(QEMU_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && apt-get install -y --no-install-recommends $$missing) >/dev/null || exit 1; fi
	python3 tests/qemu/qemu_captures.py --bin $(BIN) --captures $(CAPTURES) --work $(BUILD)/qemu
