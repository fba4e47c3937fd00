"""Benchmark target: a call chain of a known depth, CPU-bound work in the leaf.

    python chain.py DEPTH WORK

Recurses until `leaf` is frame number DEPTH (counting <module> as 1):

    <module>;main;level x (DEPTH-3);leaf

then does WORK calls of `step` (a fixed amount of work) in the leaf, so a
sample shows either that chain or that chain plus one `step` frame.  The
frames below the leaf never change while the work runs.  See proto.py for the
ready / go / WORK_SECONDS protocol.
"""
import os
import sys
import time

import proto


def step(x):
    return (x * 31 + 7) & 0xFFFF


def leaf(work):
    proto.report_stack(sys._getframe(), extend=["step"])
    os.write(1, b"ready\n")
    os.read(0, 64)
    t0, c0 = time.perf_counter(), time.process_time()
    x = 0
    for _ in range(work):
        x = step(x)
    t1, c1 = time.perf_counter(), time.process_time()
    os.write(1, b"WORK_SECONDS %.6f %.6f\n" % (t1 - t0, c1 - c0))
    os.read(0, 64)
    os._exit(0)


def level(n, work):
    if n > 0:
        return level(n - 1, work)
    return leaf(work)


def main():
    depth = int(sys.argv[1])
    work = int(sys.argv[2])
    if depth < 4:
        sys.exit("chain.py: DEPTH must be at least 4")
    sys.setrecursionlimit(max(1000, depth + 100))
    level(depth - 4, work)


if __name__ == "__main__":
    main()
