# lifecycle.py - targets for pyflame's process-lifecycle tests.  Runs under
# Python 2.7 and 3.x.  The first argument picks the behaviour; each prints
# "ready" when it starts its work and a result line when it is done:
#
#   fork_chain   forks a child, which forks a grandchild; each computes and
#                exits 0; the parent waits for its child. Prints "result N".
#   sigchld      starts a short-lived child process every 100 ms while it
#                computes (so it gets SIGCHLD all the time).  Prints
#                "result STARTED REAPED".
#   setuid       threads compute while the main thread calls os.setuid() to
#                its own uid (glibc signals every thread to do it).  Prints
#                "result N".
#   checksum     four threads compute the same checksum over and over until
#                `seconds` pass or SIGUSR2 arrives, and check every answer.
#                Prints "result OK" (or "result BAD n").
#   pool         a multiprocessing pool of 3 workers runs pool_work().
#
# Options after it: seconds=S (how long to work, default 1.5), quiet (no
# "ready" line, for pyflame -t whose stdout is the profile).
import os
import signal
import subprocess
import sys
import threading
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
SECONDS = 1.5
QUIET = False
for arg in sys.argv[2:]:
    if arg.startswith("seconds="):
        SECONDS = float(arg[len("seconds="):])
    elif arg == "quiet":
        QUIET = True


def say(text):
    if not QUIET or text.startswith("result"):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def compute(n):
    total = 0
    for i in range(n):
        total = (total * 31 + i) % 1000003  # LINE:compute
    return total


def work_for(seconds):
    end = time.time() + seconds
    rounds = 0
    while time.time() < end:
        compute(20000)
        rounds += 1
    return rounds


def fork_chain():
    say("ready")
    pid = os.fork()
    if pid == 0:
        grand = os.fork()
        if grand == 0:
            work_for(SECONDS / 3)
            os._exit(0)
        work_for(SECONDS / 3)
        os.waitpid(grand, 0)
        os._exit(0)
    work_for(SECONDS / 3)
    _, status = os.waitpid(pid, 0)
    say("result %d" % (compute(50000) if status == 0 else -1))


def sigchld():
    say("ready")
    started = reaped = 0
    end = time.time() + SECONDS
    children = []
    while time.time() < end:
        children.append(subprocess.Popen(["true"]))
        started += 1
        t = time.time() + 0.1
        while time.time() < t:
            compute(2000)
        for c in children[:]:
            if c.poll() is not None:
                children.remove(c)
                reaped += 1
    for c in children:
        c.wait()
        reaped += 1
    say("result %d %d" % (started, reaped))


def threaded_compute(results, i, n):
    results[i] = sum(compute(5000) for _ in range(n))


def run_threads(rounds, also=None):
    results = [0] * 4
    threads = [threading.Thread(target=threaded_compute, args=(results, i, rounds)) for i in range(4)]
    for t in threads:
        t.start()
    if also:
        also(threads)
    for t in threads:
        t.join()
    return sum(results)


def setuid():
    say("ready")

    def keep_setting_uid(threads):
        while any(t.is_alive() for t in threads):
            os.setuid(os.getuid())
            time.sleep(0.02)

    say("result %d" % run_threads(int(40 * SECONDS), keep_setting_uid))


def checksum():
    stop = []
    signal.signal(signal.SIGUSR2, lambda signum, frame: stop.append(1))
    reference = compute(5000)
    bad = [0]
    end = time.time() + SECONDS

    def check():
        while not stop and time.time() < end:
            if compute(5000) != reference:
                bad[0] += 1

    threads = [threading.Thread(target=check) for _ in range(4)]
    for t in threads:
        t.start()
    say("ready")
    while any(t.is_alive() for t in threads):
        time.sleep(0.01)
    say("result OK" if bad[0] == 0 else "result BAD %d" % bad[0])


def pool_work(seconds):
    return work_for(seconds)  # LINE:pool_work


def pool():
    import multiprocessing
    say("ready")
    p = multiprocessing.Pool(3)
    rounds = p.map(pool_work, [SECONDS] * 3)
    p.close()
    p.join()
    say("result %d" % len(rounds))


if __name__ == "__main__":
    {"fork_chain": fork_chain, "sigchld": sigchld, "setuid": setuid, "checksum": checksum,
     "pool": pool}[MODE]()
