#!/bin/bash
# make_corpus.sh - (re)generate the seed corpora of the fuzzers in
# tests/fuzz/corpus/NAME from real data: small ELF files built here with gcc
# (a libpython-like .so with a SONAME, Py_Version, _PyRuntime in .PyRuntime
# and version strings in .rodata; a static executable), the line tables of
# tests/fixtures/linetable, strings, collapsed lines, version strings.
# Run from the repository root (make fuzz-corpus).
set -euo pipefail
cd "$(dirname "$0")/../.."
C=tests/fuzz/corpus
PY=${PYTHON:-python3}
rm -rf "$C"
mkdir -p "$C"/{elf,linetable,pystring,collapsed,pyversion}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- elf -------------------------------------------------------------------
cat >"$tmp/libpy.c" <<'SRC'
const unsigned long Py_Version = 0x030b07f0UL;
char _PyRuntime[64] __attribute__((section(".PyRuntime"))) = "xdebugpy";
const char version_string[] = "3.11.7 (main, Jan  1 2024, 00:00:00) [GCC 12.2.0]";
const char other_strings[] = "libpython3.11.so.1.0\0Python %s\0";
void *_PyThreadState_Current;
int PyThreadState_Get(void) { return 42; }
SRC
flags="-Os -g0 -fno-asynchronous-unwind-tables -nostdlib -Wl,--build-id=none -Wl,-z,norelro \
 -Wl,-z,max-page-size=0x1000 -Wl,-z,noseparate-code -Wl,--hash-style=gnu"
gcc $flags -fPIC -shared -Wl,-soname,libpython3.11.so.1.0 -o "$C/elf/libpython-tiny.so" "$tmp/libpy.c"
cat >"$tmp/exe.c" <<'SRC'
const unsigned long Py_Version = 0x020712f0UL;
const char version_string[] = "2.7.18 (default, Jan  1 2024)";
char interp_head[16];
void _start(void) { for (;;) ; }
SRC
gcc $flags -static -o "$C/elf/static-tiny" "$tmp/exe.c"
# Stripped (no .symtab), truncated, header-only and 32-bit-class variants.
strip -o "$C/elf/libpython-tiny-stripped.so" "$C/elf/libpython-tiny.so"
head -c 64 "$C/elf/libpython-tiny.so" >"$C/elf/header-only"
head -c 700 "$C/elf/libpython-tiny.so" >"$C/elf/truncated"
cp "$C/elf/libpython-tiny.so" "$C/elf/class32"
printf '\001' | dd of="$C/elf/class32" bs=1 seek=4 conv=notrunc status=none

# ---- linetable ---------------------------------------------------------------
# Header: byte 0 format (0 U8, 1 lnotab, 2 3.10, 3 3.11+), int32 co_firstlineno,
# uint16 offset (the start of the code object's middle run); then the table.
"$PY" - "$C/linetable" tests/fixtures/linetable/py*.txt <<'PYSRC'
import struct, sys, os
out = sys.argv[1]
for path in sys.argv[2:]:
    fmt = None; code = None; runs = []; n = 0
    def flush():
        global n
        if code is None or code[2] is None:
            return
        name, first, table = code
        off = runs[len(runs) // 2][0] if runs else 0
        data = struct.pack('<BiH', fmt, first, off & 0xffff) + table
        base = os.path.basename(path)[:-4]
        with open(os.path.join(out, '%s-%02d' % (base, n)), 'wb') as f:
            f.write(data)
        n += 1
    for line in open(path):
        w = line.split()
        if not w or w[0].startswith('#'):
            continue
        if w[0] == 'python':
            major, minor = int(w[1]), int(w[2])
            fmt = 0 if (major, minor) < (3, 6) else 1 if minor < 10 else 2 if minor == 10 else 3
        elif w[0] == 'code':
            code = [w[1], int(w[2]), None]; runs = []
        elif w[0] == 'table':
            code[2] = b'' if w[1] == '-' else bytes(bytearray.fromhex(w[1]))
        elif w[0] == 'run':
            runs.append((int(w[1]), int(w[2]), int(w[3])))
        elif w[0] == 'end':
            if n < 12:      # a dozen code objects per interpreter is plenty
                flush()
            code = None
PYSRC

# ---- pystring ------------------------------------------------------------------
# byte 0 kind, byte 1 output capacity, then the characters.
"$PY" - "$C/pystring" <<'PYSRC'
import sys, os
out = sys.argv[1]
seeds = {
    'ucs1-ascii': (1, 64, 'hello.py'.encode('latin-1')),
    'ucs1-latin1': (1, 16, u'caf\xe9 na\xefve'.encode('latin-1')),
    'ucs2-cjk': (2, 32, u'\u4e2d\u6587 \u540d\u5b57.py'.encode('utf-16-le')),
    'ucs2-surrogate': (2, 20, b'\x00\xd8\x41\x00\xff\xdf'),
    'ucs4-emoji': (4, 9, u'\U0001F600\U0001F4A9x'.encode('utf-32-le')),
    'ucs4-invalid': (4, 40, b'\x00\x00\x11\x00\xff\xff\xff\xff\x00\xd8\x00\x00'),
    'ucs2-nul': (2, 8, b'a\x00\x00\x00b\x00'),
    'bad-kind': (3, 32, b'abcdef'),
    'tiny-cap': (4, 2, u'\u00e9'.encode('utf-32-le')),
}
for name, (kind, cap, data) in seeds.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(bytearray([kind, cap]) + data)
PYSRC

# ---- collapsed -------------------------------------------------------------------
printf '(idle) 12\n(failed) 1\napp.py:<module>:40;app.py:main:31;app.py:work:12 85\n' >"$C/collapsed/basic"
printf 'a;b;c 10 12\nthread main (1234);x.py:f:1 3\nprocess 42 python3;y.py:g:2 7\n' >"$C/collapsed/differential"
printf 'a;b 12.5\r\n;; 3\n 4\nno-count\n\na;;b 18446744073709551615\na;;b 18446744073709551615\n' >"$C/collapsed/edge"
printf '<x>:&amp;:"q" 1\n\xff\xfe;\xc3\x28 2\n' >"$C/collapsed/hostile"
[ -f demo.txt ] && head -n 20 demo.txt >"$C/collapsed/demo" || true

# ---- pyversion -------------------------------------------------------------------
for s in 3.11.7 2.7.18+ 3.13.0rc1 3.6.15 3.99.99 libpython3.11.so.1.0 libpython2.7.so \
         libpython3.13d.so.1.0 libpython3.so 4.0.0 3.12; do
    printf '%s' "$s" >"$C/pyversion/$s"
done
printf '\xf0\x07\x0b\x03\x00\x00\x00\x00' >"$C/pyversion/hex-3.11.7"

echo "seed corpora in $C:"
for d in "$C"/*; do echo "  $(basename "$d"): $(ls "$d" | wc -l) files, $(du -sk "$d" | cut -f1) KiB"; done
