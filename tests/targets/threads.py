# threads.py - several threads, each at a known depth in its own known
# function, for pyflame's thread tests.  Runs under Python 2.7 and 3.x.
#
#   spin_a, spin_b  pure-Python busy loops (they take turns holding the GIL)
#   sleeper         time.sleep in a loop
#   blocked         waiting on a lock that is never released
#   hasher          hashing big buffers (holds the GIL, but hashlib releases it)
#   main thread     sleeping in main()
#
# Every worker reaches its function through a chain of `depth` frames named
# chain (depth=N, default 50).  Arguments: depth=N, seconds=S (default 120),
# churn (also start and join short-lived threads all the time).
import hashlib
import os
import sys
import threading
import time

DEPTH = 50
SECONDS = 120.0
CHURN = False
for arg in sys.argv[1:]:
    if arg.startswith("depth="):
        DEPTH = int(arg[len("depth="):])
    elif arg.startswith("seconds="):
        SECONDS = float(arg[len("seconds="):])
    elif arg == "churn":
        CHURN = True
    else:
        raise SystemExit("threads.py: unknown argument %r" % arg)

started = []
started_lock = threading.Lock()
all_there = threading.Event()
expected = [0]
never = threading.Lock()
never.acquire()


def arrived():
    with started_lock:
        started.append(1)
        if len(started) == expected[0]:
            all_there.set()


# Python 2's GIL lets two spinning threads starve every other thread for
# seconds on a multi-core machine; a short sleep now and then (it releases the
# GIL) keeps the others going.  On Python 3 it changes nothing that matters.
YIELD = sys.version_info[0] < 3


def spin_a():
    arrived()
    x = 0
    while True:
        x += 1  # LINE:spin_a
        if YIELD and x % 2000 == 0:
            time.sleep(0.0002)


def spin_b():
    arrived()
    x = 0
    while True:
        x += 1  # LINE:spin_b
        if YIELD and x % 2000 == 0:
            time.sleep(0.0002)


def sleeper():
    arrived()
    while True:
        time.sleep(0.05)  # LINE:sleeper


def blocked():
    arrived()
    never.acquire()  # LINE:blocked


def hasher():
    arrived()
    data = b"x" * (4 << 20)
    while True:
        hashlib.sha256().update(data)  # LINE:hasher (update() releases the GIL on 3.x)
        if YIELD:
            time.sleep(0.0002)   # Python 2 hashes with the GIL held


def chain(n, leaf):
    if n > 1:
        return chain(n - 1, leaf)  # LINE:chain
    return leaf()  # LINE:chain_leaf


def short_lived():
    x = 0
    for i in range(2000):
        x += i


def churn():
    arrived()
    while True:
        t = threading.Thread(target=short_lived)
        t.start()
        t.join()  # LINE:churn


def main():
    workers = [spin_a, spin_b, sleeper, blocked, hasher]
    if CHURN:
        workers.append(churn)
    expected[0] = len(workers)
    for f in workers:
        t = threading.Thread(target=chain, args=(DEPTH, f), name=f.__name__)
        t.daemon = True
        t.start()
    # Block (no polling): a polling main thread fights for the GIL.
    all_there.wait()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    end = time.time() + SECONDS
    while time.time() < end:
        time.sleep(0.05)  # LINE:main_sleep
    sys.stdout.flush()
    os._exit(0)   # no daemon-thread noise at shutdown (Python 2)


main()
