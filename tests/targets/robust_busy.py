# robust_busy.py - a busy multi-threaded target that checks its own results,
# for pyflame's robustness tests (fault injection, kill stress).  Runs under
# Python 2.7 and 3.x.
#
#   <module> -> main -> spin -> work  (main thread and each worker thread)
#   waiter thread: select() / sleep() / pipe reads in a loop
#
# Before "ready" it computes reference results; every thread then recomputes
# them over and over and counts a mismatch as an error (a register or memory
# clobbered by the profiler would show up here).  The waiter thread counts
# blocking calls that fail with EINTR (Python 2.7 does not retry them: a
# stop/resume by the profiler that interrupts a blocking call is seen there).
#
# Arguments (key=value, all optional):
#   threads=N  worker threads besides the main thread (default 3)
#   seconds=S  run for S seconds after "ready" (default 120: a safety limit)
#   stop=PATH  stop as soon as PATH exists (checked every round)
#   quiet      do not print "ready"
# At the end it prints "result rounds=R errors=E eintr=K checksum=C" and exits
# 0 when E and K are 0, else 3.  C is the same for every run (it only depends
# on the reference computation).
import errno
import math
import os
import select
import sys
import threading
import time

STOP = {"flag": False}
COUNTS = {"rounds": 0, "errors": 0, "eintr": 0}
LOCK = threading.Lock()


def work(seed):
    h = seed
    for i in range(1500):  # LINE:work_loop
        h = (h * 1103515245 + 12345 + i) & 0xffffffff
    d = {}
    for i in range(100):
        d[i] = str(h ^ i)
    s = 0
    for k in sorted(d):
        s = (s * 31 + len(d[k]) + k) & 0xffffffff
    f = 0.0
    for i in range(200):
        f += math.sqrt(i + seed % 7) * 1.5
    return (h ^ s, repr(f))


def spin(seed, ref, deadline, stop):
    rounds = 0
    errors = 0
    while not STOP["flag"]:
        if work(seed) != ref:  # LINE:spin_call
            errors += 1
        rounds += 1
        if time.time() > deadline or (stop and rounds % 4 == 0 and os.path.exists(stop)):
            STOP["flag"] = True
    LOCK.acquire()
    COUNTS["rounds"] += rounds
    COUNTS["errors"] += errors
    LOCK.release()


def waiter():
    r, w = os.pipe()
    eintr = 0
    n = 0
    while not STOP["flag"]:
        try:
            os.write(w, b"x")
            ready = select.select([r], [], [], 0.01)[0]
            if ready:
                os.read(r, 1)
            time.sleep(0.002)
            select.select([], [], [], 0.003)
        except (OSError, IOError, select.error) as e:
            code = getattr(e, "errno", None)
            if code is None and e.args:
                code = e.args[0]
            if code == errno.EINTR:
                eintr += 1
            else:
                raise
        n += 1
    os.close(r)
    os.close(w)
    LOCK.acquire()
    COUNTS["eintr"] += eintr
    LOCK.release()


def main():
    opts = {"threads": 3, "seconds": 120.0, "stop": None, "quiet": False}
    for arg in sys.argv[1:]:
        if arg == "quiet":
            opts["quiet"] = True
        elif arg.startswith("threads="):
            opts["threads"] = int(arg[len("threads="):])
        elif arg.startswith("seconds="):
            opts["seconds"] = float(arg[len("seconds="):])
        elif arg.startswith("stop="):
            opts["stop"] = arg[len("stop="):]
        else:
            raise SystemExit("robust_busy.py: unknown argument %r" % arg)
    refs = [work(i) for i in range(opts["threads"] + 1)]
    checksum = 0
    for h, f in refs:
        checksum = (checksum * 131 + h + len(f)) & 0xffffffff
    deadline = time.time() + opts["seconds"]
    threads = [threading.Thread(target=waiter, name="waiter")]
    for i in range(opts["threads"]):
        threads.append(threading.Thread(target=spin, name="worker-%d" % (i + 1),
                                        args=(i + 1, refs[i + 1], deadline, opts["stop"])))
    for t in threads:
        t.daemon = True
        t.start()
    if not opts["quiet"]:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    spin(0, refs[0], deadline, opts["stop"])  # LINE:main_call
    for t in threads:
        t.join()
    sys.stdout.write("result rounds=%d errors=%d eintr=%d checksum=%d\n"
                     % (COUNTS["rounds"], COUNTS["errors"], COUNTS["eintr"], checksum))
    sys.stdout.flush()
    return 0 if COUNTS["errors"] == 0 and COUNTS["eintr"] == 0 else 3


if __name__ == "__main__":
    sys.exit(main())  # LINE:module_call
