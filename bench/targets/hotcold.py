"""Benchmark target: two functions with the same body, given work 3:1.

    python hotcold.py WORK

`run` alternates hot(3*UNIT) and cold(UNIT) until WORK loop iterations have
been done in all, so `hot` has 75% of the work.  A sample shows

    <module>;main;run;hot   or   <module>;main;run;cold   (or, rarely, ...;run)
"""
import os
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
    os.write(1, b"ready\n")
    os.read(0, 64)
    rounds = max(1, work // (4 * UNIT))
    t0, c0 = time.perf_counter(), time.process_time()
    x = 0
    for _ in range(rounds):
        x ^= hot(3 * UNIT)
        x ^= cold(UNIT)
    t1, c1 = time.perf_counter(), time.process_time()
    os.write(1, b"WORK_SECONDS %.6f %.6f\n" % (t1 - t0, c1 - c0))
    os.read(0, 64)
    os._exit(0)


def main():
    run(int(sys.argv[1]))


if __name__ == "__main__":
    main()
