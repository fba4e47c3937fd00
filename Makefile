# pyflame - a sampling profiler for CPython.  Plain make, no autotools.
#
#   make            build ./pyflame and ./flamegraph
#   make check      build and run every test (unit + integration)
#   make check-long soak / stress / fuzz runs (CI runs it too)
#   make deps       install the build dependencies (apt, as root) or print the command
#   make demo       profile the bundled demo program (demo/demo.py)
#   make bench      the benchmark (bench/)
#   make abi-tables regenerate abi/offsets_table.c from the CPython headers present
#   make install PREFIX=/usr/local
#
# Each directory may add targets through a fragment `*/module.mk`, included below.

.DEFAULT_GOAL := all

VERSION   := 0.1.0
PREFIX    ?= /usr/local
CC        ?= cc
PKG_CONFIG ?= pkg-config

BUILD     ?= build
# The programs; the sanitizer build puts its own under $(BUILD).
PYFLAME_BIN    ?= pyflame
FLAMEGRAPH_BIN ?= flamegraph/flamegraph
WARN      := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes
CFLAGS    ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DPYFLAME_VERSION='"$(VERSION)"' $(WARN) \
             -I. -Isrc -Iabi -Iflamegraph $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_BASE = -lelf -lz -lm

# Missing build dependencies are named exactly instead of failing with a wall of errors.
DEPS_DEB := libelf-dev zlib1g-dev check pkg-config
DEPS_OK  := $(shell printf '\043include <libelf.h>\n\043include <gelf.h>\n\043include <zlib.h>\n' | \
                $(CC) -E -x c - >/dev/null 2>&1 && echo yes)

LIB_SRC   := $(filter-out src/main.c,$(wildcard src/*.c)) $(wildcard abi/*.c) \
             $(filter-out flamegraph/main.c,$(wildcard flamegraph/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB       := $(BUILD)/libpyflame.a

.PHONY: check-valgrind
# The unit tests under Valgrind (no fork, so Valgrind sees every test).
check-valgrind: $(FLAMEGRAPH_BIN) utils/flamechart2chrome $(UNIT_BIN)
	@if ! command -v valgrind >/dev/null; then echo "SKIP check-valgrind: valgrind not installed"; \
	else set -e; for t in $(UNIT_BIN); do echo "== valgrind $$t"; \
	    FLAMEGRAPH=$(CURDIR)/$(FLAMEGRAPH_BIN) CK_FORK=no PYFLAME_OFFLINE=1 PYFLAME_NO_TIMING=1 valgrind -q --error-exitcode=1 \
	        --leak-check=full --errors-for-leak-kinds=definite $$t; done; fi

.PHONY: all check check-unit check-integration check-long deps demo bench install \
        clean abi-tables check-deps check-test-deps
all: check-deps $(PYFLAME_BIN) $(FLAMEGRAPH_BIN) utils

check-deps:
ifneq ($(DEPS_OK),yes)
	@echo "pyflame: missing build dependencies. Run 'make deps' (as root), or:" >&2
	@echo "    sudo apt-get install -y $(DEPS_DEB)" >&2
	@exit 1
endif

deps:
	@if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEPS_DEB); \
	else \
	    echo "Run as root, or:  sudo apt-get install -y $(DEPS_DEB)"; \
	fi

# `make V=1` shows the full commands.
Q := $(if $(V),,@)
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(PYFLAME_BIN): $(BUILD)/src/main.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS_BASE)

$(FLAMEGRAPH_BIN): $(BUILD)/flamegraph/main.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS_BASE)

# ---- tests -----------------------------------------------------------------
# Every tests/unit/test_*.c and tests/integration/test_*.c is its own Check
# program.  Integration programs also link tests/integration/harness.c.
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lpthread -lm)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:%.c=$(BUILD)/%)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
INTEG_BIN := $(INTEG_SRC:%.c=$(BUILD)/%)
HARNESS_OBJ := $(BUILD)/tests/integration/harness.o

check-test-deps:
	@printf '\043include <check.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 || { \
	    echo "pyflame: the tests need Check. Run 'make deps' (as root), or:" >&2; \
	    echo "    sudo apt-get install -y check" >&2; exit 1; }

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS_BASE) $(CHECK_LIBS)

$(BUILD)/tests/integration/%: tests/integration/%.c $(HARNESS_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(HARNESS_OBJ) $(LIB) $(LDFLAGS) $(LDLIBS_BASE) $(CHECK_LIBS)

check: all check-test-deps check-unit check-integration
	@echo "pyflame: all tests passed"

check-unit: $(FLAMEGRAPH_BIN) utils/flamechart2chrome $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; \
	    FLAMEGRAPH=$(CURDIR)/$(FLAMEGRAPH_BIN) CK_FORK=yes $$t; done
	@echo "== tests/unit/test_flamegraph_browser.sh"
	@FLAMEGRAPH=$(CURDIR)/$(FLAMEGRAPH_BIN) sh tests/unit/test_flamegraph_browser.sh

# flamegraph.pl, where a Debian package ships one (libdevel-nytprof-perl does)
FLAMEGRAPH_PL ?= $(firstword $(shell command -v flamegraph.pl 2>/dev/null) \
                   $(wildcard /usr/share/perl5/Devel/NYTProf/flamegraph.pl))

# Every suite runs, even after one fails; the target fails if any did.
check-integration: $(PYFLAME_BIN) $(FLAMEGRAPH_BIN) $(INTEG_BIN)
	@failed=""; for t in $(INTEG_BIN); do echo "== $$t"; \
	    PYFLAME=$(CURDIR)/$(PYFLAME_BIN) FLAMEGRAPH=$(CURDIR)/$(FLAMEGRAPH_BIN) \
	    FLAMEGRAPH_PL=$(FLAMEGRAPH_PL) $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi

# ---- demo, install, clean ----------------------------------------------------
demo: all
	@command -v $${PYTHON:-python3} >/dev/null || { echo "make demo needs python3 (or PYTHON=...)" >&2; exit 1; }
	@echo "== profiling demo/demo.py for 3 seconds with $${PYTHON:-python3}"
	./$(PYFLAME_BIN) -o demo.txt -t $${PYTHON:-python3} demo/demo.py 3
	./$(FLAMEGRAPH_BIN) --title "pyflame demo" -o demo.svg demo.txt
	@echo "== demo.txt (collapsed stacks), the hottest:"
	@sort -t' ' -k2 -nr demo.txt | head -n 5
	@echo "== demo.svg: an interactive flame graph, open it in a browser"

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 pyflame $(DESTDIR)$(PREFIX)/bin/pyflame
	install -m 755 flamegraph/flamegraph $(DESTDIR)$(PREFIX)/bin/pyflame-flamegraph

clean:
	rm -rf build build-asan pyflame flamegraph/flamegraph demo.txt demo.svg

-include $(wildcard */*.mk */*/*.mk)
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- long runs ---------------------------------------------------------------
# Soak / stress / fuzz suites live in tests/long/ (run by `make check-long`),
# plus the whole suite built with AddressSanitizer and UBSan in build-asan/.
LONG_SCRIPTS := $(wildcard tests/long/*.sh)
check-long: all check-valgrind check-perf-long
	@set -e; for t in $(LONG_SCRIPTS); do echo "== $$t"; PYFLAME=$(CURDIR)/pyflame bash $$t; done
	$(MAKE) --no-print-directory BUILD=build-asan PYFLAME_BIN=build-asan/bin/pyflame \
	    FLAMEGRAPH_BIN=build-asan/bin/flamegraph check \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined"
