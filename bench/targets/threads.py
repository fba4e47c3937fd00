"""Benchmark target: 4 threads, each at a known depth, sharing CPU-bound work.

    python threads.py DEPTH WORK

Each worker thread (started with _thread, so no threading.py frames) recurses
until `leaf` is its frame number DEPTH:

    worker;level x (DEPTH-2);leaf          (plus, at times, one `step` frame)

and then, after "go", does WORK calls of `step`; the GIL serialises them.  The
main thread waits in `main` (one lock acquire, GIL released).  Finished
workers block in their leaf until the process exits, so no sample sees a
stack unwind.  A STACK line is printed for every thread, main last.
"""
import _thread
import json
import os
import sys
import time

import proto

NTHREADS = 4

counter = _thread.allocate_lock()
all_done = _thread.allocate_lock()
never = _thread.allocate_lock()
go = []
stacks = [None] * NTHREADS
counts = {"ready": 0, "done": 0}


def step(x):
    return (x * 31 + 7) & 0xFFFF


def leaf(idx, work):
    stacks[idx] = proto.stack_of(sys._getframe(), ["step"])
    with counter:
        counts["ready"] += 1
    go[idx].acquire()
    x = 0
    for _ in range(work):
        x = step(x)
    with counter:
        counts["done"] += 1
        if counts["done"] == NTHREADS:
            all_done.release()
    never.acquire()


def level(n, idx, work):
    if n > 0:
        return level(n - 1, idx, work)
    return leaf(idx, work)


def worker(idx, depth, work):
    level(depth - 3, idx, work)


def main():
    depth = int(sys.argv[1])
    work = int(sys.argv[2])
    if depth < 3:
        sys.exit("threads.py: DEPTH must be at least 3")
    sys.setrecursionlimit(max(1000, depth + 100))
    all_done.acquire()
    never.acquire()
    for i in range(NTHREADS):
        lk = _thread.allocate_lock()
        lk.acquire()
        go.append(lk)
    for i in range(NTHREADS):
        _thread.start_new_thread(worker, (i, depth, work))
    while counts["ready"] < NTHREADS:
        time.sleep(0.001)
    for s in stacks:
        proto.emit("STACK " + json.dumps(s))
    proto.report_stack(sys._getframe())
    os.write(1, b"ready\n")
    os.read(0, 64)
    t0, c0 = time.perf_counter(), time.process_time()
    for lk in go:
        lk.release()
    all_done.acquire()
    t1, c1 = time.perf_counter(), time.process_time()
    os.write(1, b"WORK_SECONDS %.6f %.6f\n" % (t1 - t0, c1 - c0))
    os.read(0, 64)
    os._exit(0)


if __name__ == "__main__":
    main()
