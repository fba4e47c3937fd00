#!/bin/bash
# fuzz_smoke.sh - run every libFuzzer target of tests/fuzz/ for ~10 s each
# (`make fuzz-smoke`) when clang and its fuzzer runtime are installed; print
# SKIP otherwise.  Exits non-zero when a fuzzer finds a crash (the input and
# the reproduction command are printed by make).
set -u
cd "$(dirname "$0")/../.."
CC_FUZZ=${FUZZ_CC:-clang}
if ! command -v "$CC_FUZZ" >/dev/null 2>&1; then
    echo "SKIP fuzz_smoke: $CC_FUZZ not found (apt-get install -y clang libclang-rt-14-dev)"
    exit 0
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$probe/p.c"
if ! "$CC_FUZZ" -fsanitize=fuzzer,address,undefined -o "$probe/p" "$probe/p.c" >/dev/null 2>&1; then
    echo "SKIP fuzz_smoke: $CC_FUZZ has no fuzzer runtime (apt-get install -y libclang-rt-14-dev)"
    exit 0
fi
echo "fuzz_smoke: make fuzz-smoke (FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-10} per fuzzer)"
start=$(date +%s)
# tests/fuzz/module.mk is named explicitly: it has an include guard, so this
# works whether or not the top-level Makefile's */module.mk wildcard reads it.
make --no-print-directory -f Makefile -f tests/fuzz/module.mk fuzz-smoke \
    FUZZ_CC="$CC_FUZZ" ${FUZZ_SMOKE_SECONDS:+FUZZ_SMOKE_SECONDS=$FUZZ_SMOKE_SECONDS}
rc=$?
echo "fuzz_smoke: $( [ $rc = 0 ] && echo PASS || echo FAIL ) after $(( $(date +%s) - start )) s"
exit $rc
