"""Benchmark target: two functions with the same body, given work 3:1.

    python hotcold.py WORK

`run` alternates hot(3*UNIT) and cold(UNIT) until WORK loop iterations have
been done in all, so `hot` has 75% of the work.  A sample shows

    <module>;main;run;hot   or   <module>;main;run;cold   (or, rarely, ...;run)
"""
import sys
import time

import proto

UNIT = 2000


def hot(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


def cold(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


def run(work):
    proto.report_stack(sys._getframe(), extend=["hot", "cold"])
    proto.ready()
    rounds = max(1, work // (4 * UNIT))
    t0 = time.perf_counter()
    x = 0
    for _ in range(rounds):
        x ^= hot(3 * UNIT)
        x ^= cold(UNIT)
    t1 = time.perf_counter()
    proto.done(t1 - t0)
    return x


def main():
    run(int(sys.argv[1]))


if __name__ == "__main__":
    main()
