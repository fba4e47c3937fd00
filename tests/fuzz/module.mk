# tests/fuzz/module.mk - libFuzzer targets for the parsers of untrusted bytes.
#
#   make fuzz          build and run every fuzzer for FUZZ_SECONDS (default 60) each
#   make fuzz-smoke    the same for FUZZ_SMOKE_SECONDS (default 10) each
#   make fuzz-build    only build them ($(BUILD)/fuzz/fuzz_NAME)
#   make fuzz-corpus   regenerate the seed corpora in tests/fuzz/corpus/ (needs gcc, python3)
#
# Fuzzers (tests/fuzz/fuzz_NAME.c): elf (src/elffile.c), linetable
# (abi/linetable.c, every format), pystring (abi/pystring.c), collapsed
# (flamegraph/ fg_add_collapsed + fg_write_svg), pyversion (src/pyversion.c).
# Built with clang -fsanitize=fuzzer,address,undefined (Debian: apt-get install
# clang; the fuzzer runtime comes with libclang-rt-14-dev).  New inputs go to
# $(BUILD)/fuzz/corpus/NAME (the committed seeds are only read); a crash is
# saved as $(BUILD)/fuzz/artifacts/NAME-crash-* and reproduced with
#   $(BUILD)/fuzz/fuzz_NAME $(BUILD)/fuzz/artifacts/NAME-crash-...
# FUZZ_ONLY="elf linetable" runs a subset.
#
# The guard lets this file be read twice (the top-level include plus
# `make -f Makefile -f tests/fuzz/module.mk`, which tests/long/fuzz_smoke.sh
# uses in case the top-level wildcard does not reach tests/fuzz/).
ifndef PYFLAME_FUZZ_MK
PYFLAME_FUZZ_MK := 1

FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_NAMES         := elf linetable pystring collapsed pyversion
FUZZ_ONLY          ?= $(FUZZ_NAMES)
FUZZ_DIR           := $(BUILD)/fuzz
FUZZ_SAN           := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                      -fno-omit-frame-pointer
FUZZ_CFLAGS        := -std=c11 -D_GNU_SOURCE -DPYFLAME_VERSION='"$(VERSION)"' -g -O1 \
                      -Wall -Wextra -Wno-unused-parameter -I. -Isrc -Iabi -Iflamegraph $(FUZZ_SAN)

FUZZ_SRC_elf       := src/elffile.c
FUZZ_SRC_linetable := abi/linetable.c
FUZZ_SRC_pystring  := abi/pystring.c
FUZZ_SRC_collapsed := $(filter-out flamegraph/main.c,$(wildcard flamegraph/*.c))
FUZZ_SRC_pyversion := src/pyversion.c
FUZZ_LIBS_elf      := -lelf -lz
FUZZ_LIBS_collapsed := -lm
FUZZ_BINS          := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-corpus fuzz-check-clang

fuzz-check-clang:
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' | \
	    $(FUZZ_CC) -fsanitize=fuzzer,address,undefined -x c - -o /dev/null >/dev/null 2>&1 || { \
	    echo "pyflame: the fuzzers need clang with its fuzzer runtime ($(FUZZ_CC) -fsanitize=fuzzer)." >&2; \
	    echo "    sudo apt-get install -y clang libclang-rt-14-dev" >&2; exit 1; }

# Library sources instrumented for coverage (no libFuzzer main).
$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

define FUZZ_template
$(FUZZ_DIR)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $(FUZZ_SRC_$(1):%.c=$(FUZZ_DIR)/obj/%.o) | fuzz-check-clang
	@mkdir -p $$(dir $$@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $$^ $(FUZZ_LIBS_$(1))
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_template,$(n))))

fuzz-build: $(FUZZ_BINS)

# $(1): seconds per fuzzer.  Every fuzzer runs even when one fails; the
# failures are listed at the end with their reproduction command.
define FUZZ_run
	@fail=""; for n in $(FUZZ_ONLY); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$n $(FUZZ_DIR)/artifacts; \
	    printf '== fuzz_%s for %s s (seeds: tests/fuzz/corpus/%s, %s files) ... ' $$n $(1) $$n \
	        "$$(ls tests/fuzz/corpus/$$n 2>/dev/null | wc -l)"; \
	    t0=$$(date +%s); \
	    if $(FUZZ_DIR)/fuzz_$$n -max_total_time=$(1) -timeout=25 -rss_limit_mb=2048 \
	        -artifact_prefix=$(FUZZ_DIR)/artifacts/$$n- -print_final_stats=1 \
	        $(FUZZ_DIR)/corpus/$$n tests/fuzz/corpus/$$n >$(FUZZ_DIR)/fuzz_$$n.log 2>&1; then \
	        echo "ok ($$(( $$(date +%s) - t0 )) s, $$(grep -ao 'stat::number_of_executed_units: *[0-9]*' \
	            $(FUZZ_DIR)/fuzz_$$n.log | grep -o '[0-9]*$$') runs, corpus $$(ls $(FUZZ_DIR)/corpus/$$n | wc -l))"; \
	    else \
	        echo "FAILED"; tail -n 60 $(FUZZ_DIR)/fuzz_$$n.log; \
	        art=$$(grep -ao "Test unit written to [^ ]*" $(FUZZ_DIR)/fuzz_$$n.log | tail -n 1 | cut -d' ' -f5); \
	        echo "reproduce: $(FUZZ_DIR)/fuzz_$$n $$art"; fail="$$fail $$n"; \
	    fi; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: FAILED:$$fail (logs in $(FUZZ_DIR)/fuzz_NAME.log)"; exit 1; fi; \
	echo "fuzz: all fuzzers ran clean"
endef

fuzz: fuzz-build
	$(call FUZZ_run,$(FUZZ_SECONDS))

fuzz-smoke: fuzz-build
	$(call FUZZ_run,$(FUZZ_SMOKE_SECONDS))

fuzz-corpus:
	bash tests/fuzz/make_corpus.sh


endif
