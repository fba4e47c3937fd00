"""Benchmark target: a call chain of a known depth, CPU-bound work in the leaf.

    python chain.py DEPTH WORK

Recurses until `leaf` is frame number DEPTH (counting <module> as 1):

    <module>;main;level x (DEPTH-3);leaf

then does WORK calls of `step` (a fixed amount of work) in the leaf, so a
sample shows either that chain or that chain plus one `step` frame.  The
frames below the leaf never change while the work runs.  See proto.py for the
ready / go / WORK_SECONDS protocol.
"""
import sys
import time

import proto


def step(x):
    return (x * 31 + 7) & 0xFFFF


def leaf(work):
    proto.report_stack(sys._getframe(), extend=["step"])
    proto.ready()
    t0 = time.perf_counter()
    x = 0
    for _ in range(work):
        x = step(x)
    t1 = time.perf_counter()
    proto.done(t1 - t0)
    return x


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
