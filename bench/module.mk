# bench/module.mk - pyflame's benchmark (issue 7; see bench/README.rst).
#
#   make bench        the full run (a few minutes): prints the table of figures
#                     against their goals and writes bench/results.json
#   make bench-smoke  the --quick run (about a minute); JSON in $(BUILD)/bench/
#
#   make bench BENCH_ARGS='--all-pythons'        options of bench/run.py
#   make bench BENCH_ARGS="--vs 'py-spy record --nonblocking -r {rate} -d {seconds} -p {pid} -f raw -o {out}'"
#   (every option: python3 bench/run.py --help)

BENCH_PYTHON ?= python3
BENCH_ARGS   ?=
BENCH_TOOLS  := $(BUILD)/bench/ptrace_cost $(BUILD)/bench/rusage
BENCH_RUN     = $(BENCH_PYTHON) bench/run.py --pyflame $(PYFLAME_BIN) \
                --ptrace-cost $(BUILD)/bench/ptrace_cost --rusage $(BUILD)/bench/rusage

.PHONY: bench bench-smoke

$(BUILD)/bench/ptrace_cost: bench/ptrace_cost.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $<

$(BUILD)/bench/rusage: bench/rusage.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $<

bench: $(PYFLAME_BIN) $(BENCH_TOOLS)
	$(BENCH_RUN) $(BENCH_ARGS)

bench-smoke: $(PYFLAME_BIN) $(BENCH_TOOLS)
	$(BENCH_RUN) --quick -o $(BUILD)/bench/results-quick.json $(BENCH_ARGS)
