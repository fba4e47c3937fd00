# src/perf.mk - make targets for the perf trampoline (--perf-on/--perf-off)
# and --native work (src/inject.c, src/remote_call.c, src/perf_native.c).
# The Makefile includes */module.mk only: add `-include src/perf.mk` to it.
#
#   make check-perf        tests/integration/test_perf alone (20 on/off cycles)
#   make check-perf-long   the same with 100 on/off cycles

.PHONY: check-perf check-perf-long
check-perf: $(PYFLAME_BIN) $(BUILD)/tests/integration/test_perf
	PYFLAME=$(CURDIR)/$(PYFLAME_BIN) $(BUILD)/tests/integration/test_perf

check-perf-long: $(PYFLAME_BIN) $(BUILD)/tests/integration/test_perf
	PYFLAME=$(CURDIR)/$(PYFLAME_BIN) PYFLAME_PERF_CYCLES=100 $(BUILD)/tests/integration/test_perf

# Not part of check / check-long for now: at the end of the first session its
# targets stopped printing "ready" on the development machine, for reasons not
# yet understood (it had passed 26/26 twice before).  Run it by hand.
