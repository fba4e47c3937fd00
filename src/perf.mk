# src/perf.mk - make targets for the perf trampoline (--perf-on/--perf-off)
# and --native work (src/inject.c, src/remote_call.c, src/perf_native.c).
# (Included by the Makefile, with every */*.mk.)
#
#   make check-perf        tests/integration/test_perf alone (20 on/off cycles)
#   make check-perf-long   the same with 100 on/off cycles

.PHONY: check-perf check-perf-long
check-perf: $(PYFLAME_BIN) $(BUILD)/tests/integration/test_perf
	PYFLAME=$(CURDIR)/$(PYFLAME_BIN) $(BUILD)/tests/integration/test_perf

check-perf-long: $(PYFLAME_BIN) $(BUILD)/tests/integration/test_perf
	PYFLAME=$(CURDIR)/$(PYFLAME_BIN) PYFLAME_PERF_CYCLES=100 $(BUILD)/tests/integration/test_perf

# test_perf is also part of `make check` (20 cycles); check-long runs check-perf-long.
