"""Target for tests/integration/test_perf.c (pyflame --perf-on / --perf-off).

usage: perf_checksum.py MAIN_MODE STOPFILE [EXTRA_THREADS] [MAX_SECONDS]

A worker thread computes a checksum in Python, round after round (calling
chunk() -> inner(), and every 50 rounds a freshly compiled function, so new
perf-map entries keep appearing while the trampoline is on), until STOPFILE
exists (or MAX_SECONDS, default 120, pass).  Another thread sleeps in
time.sleep.  EXTRA_THREADS more threads (default 0) compute a plain checksum
the same way.  The main thread, meanwhile:
  read       blocks in libc read() on a pipe (raw, through ctypes: an EINTR
             would show) until the worker is done
  nanosleep  loops in libc nanosleep(300 ms) (raw: an EINTR would show)
  sleep      loops in time.sleep(0.5)
  busy       computes too (runs bytecode all the time)
Prints "ready" when the threads are started (they begin right after it); at the end "checksum ok" (or BAD),
"main MODE ret=R errno=E" and "done".
"""
import ctypes
import os
import sys
import threading
import time

MOD = (1 << 61) - 1


def inner(k):
    return (k * k + 7) % 1000003


def chunk(i):
    s = 0
    base = i % 97
    for k in range(base, base + 200):
        s += inner(k)
    return s


def checksum(stop, fresh):
    acc = 1
    ns = {}
    i = 0
    while True:
        if i % 50 == 0 and stop():
            return i, acc
        acc = (acc * 31 + chunk(i)) % MOD
        if fresh and i % 50 == 0:
            exec(compile("def gen_%d(x):\n    return x + 1\n" % i, "<gen_%d>" % i, "exec"), ns)
            acc = ns["gen_%d" % i](acc) % MOD
        i += 1


def expected(rounds, fresh):
    acc = 1
    for i in range(rounds):
        base = i % 97
        acc = (acc * 31 + sum((k * k + 7) % 1000003 for k in range(base, base + 200))) % MOD
        if fresh and i % 50 == 0:
            acc = (acc + 1) % MOD
    return acc


def main():
    mode = sys.argv[1]
    stopfile = sys.argv[2]
    nextra = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    deadline = time.time() + (float(sys.argv[4]) if len(sys.argv) > 4 else 120.0)
    libc = ctypes.CDLL(None, use_errno=True)
    rfd, wfd = os.pipe()
    results = {}
    finished = threading.Event()

    def should_stop():
        return os.path.exists(stopfile) or time.time() > deadline

    # The threads wait for `go` until "ready" is out: a thread that computes
    # can starve the main thread of the GIL for seconds (seen with 3.12 and
    # 3.13 on a 2-CPU machine), and "ready" would come late.
    go = threading.Event()

    def worker():
        go.wait()
        results["sum"] = checksum(should_stop, True)
        finished.set()
        os.write(wfd, b"x")

    def sleeper():
        while not finished.is_set():
            time.sleep(0.05)

    def extra(n):
        go.wait()
        results["extra%d" % n] = checksum(should_stop, False)

    threads = [threading.Thread(target=worker, name="worker"),
               threading.Thread(target=sleeper, name="sleeper")]
    threads += [threading.Thread(target=extra, args=(n,), name="extra%d" % n)
                for n in range(nextra)]
    for t in threads:
        t.start()
    print("ready\n", end="", flush=True)  # one write, even when unbuffered
    go.set()

    ret, err = 0, 0
    if mode == "read":
        buf = ctypes.create_string_buffer(1)
        ret = libc.read(rfd, buf, 1)
        err = ctypes.get_errno()
    elif mode == "nanosleep":
        class timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]
        while not finished.is_set():
            req = timespec(0, 300 * 1000 * 1000)
            ret = libc.nanosleep(ctypes.byref(req), None)
            err = ctypes.get_errno()
            if ret != 0:
                break
    elif mode == "sleep":
        while not finished.is_set():
            time.sleep(0.5)
    elif mode == "busy":
        while not finished.is_set():
            chunk(3)
    for t in threads:
        t.join()
    rounds, value = results["sum"]
    ok = value == expected(rounds, True)
    for n in range(nextra):
        r, v = results["extra%d" % n]
        ok = ok and v == expected(r, False)
    print("checksum %s rounds=%d" % ("ok" if ok else "BAD", rounds))
    print("main %s ret=%d errno=%d" % (mode, ret, err))
    print("done", flush=True)


if __name__ == "__main__":
    main()
