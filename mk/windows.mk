# Windows: cross-compile dumpleak.exe with Debian's MinGW-w64 (issue 7).
#
#   make windows         build-win/dumpleak.exe (installs its packages when missing)
#   make check-windows   run it under Wine on the forged dumps, compare with the Linux build
#   make dist            build-win/dumpleak-VERSION-win64.zip: exe, man page as text, README, LICENSE
#
# zlib comes from libz-mingw-w64-dev; jansson, which Debian does not ship for
# MinGW, is built from Debian's own source package (apt-get source) into
# build-win/deps.  libkdumpfile does not exist for Windows: this build
# defines no HAVE_LIBKDUMPFILE.  The exe is linked statically and needs
# no DLL beside it.

WIN_BUILD ?= build-win
WIN_HOST := x86_64-w64-mingw32
WIN_CC ?= $(WIN_HOST)-gcc
WIN_AR ?= $(WIN_HOST)-ar
WIN_DEPS := $(WIN_BUILD)/deps
WIN_DEPS_ABS = $(abspath $(WIN_DEPS))
WIN_JANSSON := $(WIN_DEPS)/lib/libjansson.a
WIN_EXE := $(WIN_BUILD)/dumpleak.exe
WIN_DEB_PKGS := gcc-mingw-w64-x86-64 libz-mingw-w64-dev dpkg-dev cmake make
WIN_SRC_LIST := /etc/apt/sources.list.d/dumpleak-deb-src.sources

# C99 printf (%zu, %llx, %.1f) from MinGW's own stdio, not msvcrt's; Windows 7 API level.
WIN_CFLAGS ?= -O2 -g
WIN_CFLAGS += -std=c11 -D__USE_MINGW_ANSI_STDIO=1 -D_WIN32_WINNT=0x0601 -Wall -Wextra -Werror -Wshadow \
  -Wstrict-prototypes
WIN_LDFLAGS ?= -static
WIN_LIBS := -L$(WIN_DEPS)/lib -ljansson -lz -lshell32

WIN_LIB_OBJ := $(LIB_SRC:%.c=$(WIN_BUILD)/obj/%.o)
WIN_CMD_OBJ := $(CMD_SRC:%.c=$(WIN_BUILD)/obj/%.o)
WIN_LIB_A := $(WIN_BUILD)/libdumpleak.a

.PHONY: windows windows-tools check-windows dist clean-windows
windows: $(WIN_EXE)

# Packages first (as `make deps` does); apt-get update only when something is missing.
windows-tools:
	@missing=""; for p in $(WIN_DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && apt-get install -y --no-install-recommends $$missing) >/dev/null || exit 1; fi

# jansson for MinGW from Debian's source package: enable deb-src (a copy of
# the Debian deb822 entries with Types: deb-src) when apt has no source
# records yet, fetch, unpack with Debian's patches, build with its CMake
# files for the MinGW host (the Debian tarball has no generated configure).
$(WIN_JANSSON): | windows-tools
	@if ! apt-cache showsrc jansson 2>/dev/null | grep -q '^Package: jansson'; then \
	  echo "enabling deb-src in $(WIN_SRC_LIST)"; \
	  if [ -f /etc/apt/sources.list.d/debian.sources ]; then \
	    sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > $(WIN_SRC_LIST); \
	  elif [ -f /etc/apt/sources.list ]; then \
	    sed -n 's/^deb \(.*debian.*\)/deb-src \1/p' /etc/apt/sources.list > $(WIN_SRC_LIST:.sources=.list); \
	  fi; \
	  apt-get update -qq >/dev/null || exit 1; \
	fi
	rm -rf $(WIN_DEPS) && mkdir -p $(WIN_DEPS)/src
	cd $(WIN_DEPS)/src && apt-get source -qq -o APT::Sandbox::User=root jansson >/dev/null
	cd $(WIN_DEPS)/src/jansson-*/ && cmake -S . -B build -Wno-dev -DCMAKE_SYSTEM_NAME=Windows \
	  -DCMAKE_C_COMPILER=$(WIN_CC) -DCMAKE_FIND_ROOT_PATH=/usr/$(WIN_HOST) -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_C_FLAGS="-D__USE_MINGW_ANSI_STDIO=1" -DCMAKE_INSTALL_PREFIX=$(WIN_DEPS_ABS) \
	  -DJANSSON_BUILD_SHARED_LIBS=OFF -DJANSSON_BUILD_DOCS=OFF -DJANSSON_EXAMPLES=OFF \
	  -DJANSSON_WITHOUT_TESTS=ON >/dev/null
	cmake --build $(WIN_DEPS)/src/jansson-*/build --parallel 2 --target install >/dev/null
	@test -f $@

$(WIN_BUILD)/obj/%.o: %.c | $(WIN_JANSSON)
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_CFLAGS) -Ilib -I$(WIN_DEPS)/include -MMD -MP -c $< -o $@

$(WIN_LIB_A): $(WIN_LIB_OBJ)
	rm -f $@ && $(WIN_AR) rcs $@ $^

$(WIN_EXE): $(WIN_CMD_OBJ) $(WIN_LIB_A)
	$(WIN_CC) $(WIN_LDFLAGS) -o $@ $(WIN_CMD_OBJ) $(WIN_LIB_A) $(WIN_LIBS)

# Compared with the Linux binary and forged matrix of WIN_LINUX_BUILD (its
# own directory by default; CI may pass WIN_LINUX_BUILD=build to reuse the
# binary and matrix that `make check` already made), and with the raw and
# VMware captures of its capture matrix when it has one.
WIN_LINUX_BUILD ?= build-lin
# CI machines have 2 cores: the builds use both.
check-windows:
	$(MAKE) -j2 windows
	$(MAKE) deps
	$(MAKE) -j2 BUILD=$(WIN_LINUX_BUILD) $(WIN_LINUX_BUILD)/dumpleak $(WIN_LINUX_BUILD)/matrix/index.json
	COMPARE_CAPTURES=$(WIN_LINUX_BUILD)/captures sh tests/windows/compare.sh --exe $(WIN_EXE) \
	  --linux $(WIN_LINUX_BUILD)/dumpleak --matrix $(WIN_LINUX_BUILD)/matrix --work $(WIN_BUILD)/compare

# Release zip: the stripped exe, the man page as plain text (no overstrikes),
# README and LICENSE.
DIST_VERSION := $(shell sed -n 's/^\#define DL_VERSION "\(.*\)"/\1/p' lib/dumpleak.h)
DIST_NAME := dumpleak-$(DIST_VERSION)-win64
DIST_ZIP := $(WIN_BUILD)/$(DIST_NAME).zip
DIST_MAN ?= man/dumpleak.1
DIST_DOCS ?= README.md LICENSE
dist: $(WIN_EXE)
	@for f in $(DIST_MAN) $(DIST_DOCS); do test -f $$f || { echo "make dist: $$f is missing" >&2; exit 1; }; done
	@missing=""; for p in zip groff-base; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && apt-get install -y --no-install-recommends $$missing) >/dev/null || exit 1; fi
	rm -rf $(WIN_BUILD)/dist $(DIST_ZIP) && mkdir -p $(WIN_BUILD)/dist/$(DIST_NAME)
	cp $(WIN_EXE) $(DIST_DOCS) $(WIN_BUILD)/dist/$(DIST_NAME)/
	$(WIN_HOST)-strip $(WIN_BUILD)/dist/$(DIST_NAME)/dumpleak.exe
	groff -t -man -rHY=0 -Tascii -P-cbou $(DIST_MAN) > $(WIN_BUILD)/dist/$(DIST_NAME)/dumpleak.txt
	cd $(WIN_BUILD)/dist && zip -q -X -r ../$(DIST_NAME).zip $(DIST_NAME)
	@echo "$(DIST_ZIP)"

clean-windows:
	rm -rf $(WIN_BUILD)

-include $(WIN_LIB_OBJ:.o=.d) $(WIN_CMD_OBJ:.o=.d)
