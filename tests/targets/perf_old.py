"""Target for test_perf.c on interpreters without the perf trampoline
(2.7 - 3.11): computes and sleeps for SECONDS (default 30), prints "ready"
first and "old ok" at the end.  Python 2 compatible."""
import sys
import time


def work(n):
    return sum(i * i for i in range(n))


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        total += work(1000)
        time.sleep(0.01)
    sys.stdout.write("old ok %d\n" % (total > 0))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
