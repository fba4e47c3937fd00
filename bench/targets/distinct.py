"""Benchmark target: 1,000 distinct stacks, for pyflame's memory use.

    python distinct.py [NFUNCS]

Generates NFUNCS (default 1000) one-line functions f0..f999 (file
"<distinct>") and, after "go", calls them in turn forever:

    <module>;main;fK        (K = 0..NFUNCS-1; the time is spent in sum())

The harness kills it when pyflame is done.
"""
import os
import sys


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    src = "".join("def f%d(n): return sum(range(n))\n" % i for i in range(n))
    ns = {}
    exec(compile(src, "<distinct>", "exec"), ns)
    funcs = [ns["f%d" % i] for i in range(n)]
    os.write(1, b"ready\n")
    os.read(0, 64)
    while True:
        for f in funcs:
            f(2000)


if __name__ == "__main__":
    main()
