# dumpleak build.  `make demo` and `make check` work on a fresh Debian
# machine: both install missing packages first (make deps).
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
SANITIZE ?=

PKGS := jansson
HAVE_KDUMP := $(shell pkg-config --exists libkdumpfile 2>/dev/null && echo 1)
ifeq ($(HAVE_KDUMP),1)
PKGS += libkdumpfile
CFLAGS_KDUMP := -DHAVE_LIBKDUMPFILE
endif
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_POSIX_C_SOURCE=200809L -pthread -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
ifeq ($(SANITIZE),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
BUILD := $(BUILD)-san
export LSAN_OPTIONS := suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
endif

LIB_SRC := $(wildcard lib/*.c)
CMD_SRC := $(wildcard cmd/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_OBJ := $(CMD_SRC:%.c=$(BUILD)/%.o)
LIB_A := $(BUILD)/libdumpleak.a
EXE := $(if $(filter Windows_NT,$(OS)),.exe)
BIN := $(BUILD)/dumpleak$(EXE)
TEST_SRC := $(wildcard tests/unit/*.c)
TEST_BIN := $(BUILD)/unit-tests

DEB_PKGS := zlib1g-dev libkdumpfile-dev libcriterion-dev libjansson-dev pkg-config gzip makedumpfile
SAMPLE := testdata/sample-x64-19041.dmp.gz

.PHONY: all deps check demo install clean unit cli-tests format
all: $(BIN)

deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && apt-get install -y --no-install-recommends $$missing) >/dev/null || exit 1; fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CFLAGS_KDUMP) -Ilib -Icmd $$(pkg-config --cflags $(PKGS)) -MMD -MP -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	ar rcs $@ $^

$(BIN): $(CMD_OBJ) $(LIB_A)
	$(CC) $(LDFLAGS) -pthread -o $@ $(CMD_OBJ) $(LIB_A) $$(pkg-config --libs $(PKGS))

$(TEST_BIN): $(TEST_SRC) $(LIB_A)
	$(CC) $(CFLAGS) -Wno-missing-field-initializers -Ilib -Itests/unit $(TEST_SRC) $(LIB_A) -o $@ $(LDFLAGS) \
	  $$(pkg-config --cflags --libs criterion libaddrxlat $(PKGS))

# Forged dumps for the tests: regenerated when the forge changes.
MATRIX := $(BUILD)/matrix
$(MATRIX)/index.json: $(wildcard tests/forge/*.py)
	rm -rf $(MATRIX) && mkdir -p $(MATRIX)
	python3 tests/forge/forge.py --matrix $(MATRIX)

unit: $(TEST_BIN) $(MATRIX)/index.json
	DUMPLEAK_MATRIX=$(MATRIX) ./$(TEST_BIN) --jobs 2

# Hypervisor captures (ELF, kdump, flattened, VirtualBox, VMware, raw) of
# forged dumps; the sanitized suite leaves out the 4.5 GiB guests.
CAPTURES := $(BUILD)/captures
$(CAPTURES)/index.json: $(wildcard tests/forge/*.py)
	rm -rf $(CAPTURES) && mkdir -p $(CAPTURES)
	python3 tests/forge/capture.py --matrix $(CAPTURES)

cli-tests: $(BIN) $(MATRIX)/index.json $(CAPTURES)/index.json
	python3 tests/cli/check_cli.py --bin $(BIN) --matrix $(MATRIX) --testdata testdata
	python3 tests/cli/check_cli.py --bin $(BIN) --matrix $(CAPTURES) --testdata /nonexistent \
	  $(if $(filter 1,$(SANITIZE)),--max-phys-mb 1024)

check: deps
	$(MAKE) unit cli-tests

demo: deps
	$(MAKE) $(BIN)
	./$(BIN) $(SAMPLE)

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/dumpleak$(EXE)
	install -m 644 man/dumpleak.1 $(DESTDIR)$(PREFIX)/share/man/man1/dumpleak.1

format:
	clang-format -i lib/*.c lib/*.h cmd/*.c cmd/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c tests/fuzz/*.h

clean:
	rm -rf build build-san

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d)

# Feature fragments (fuzzing, Windows cross-build, bench) live in mk/.
-include $(wildcard mk/*.mk)
