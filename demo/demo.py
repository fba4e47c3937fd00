"""A small program with a known shape, for `make demo`.

Most of its time goes to parse_records() (and tokenize() under it), the rest
to summarize(); a worker thread sleeps most of the time.  Runs for the number
of seconds given (default 3).
"""
import sys
import threading
import time


def tokenize(line):
    return [int(x) for x in line.split(",")]


def parse_records(n):
    total = 0
    for i in range(n):
        total += sum(tokenize("%d,%d,%d" % (i, i * 2, i * 3)))
    return total


def summarize(n):
    acc = 0.0
    for i in range(n):
        acc += (i % 7) ** 0.5
    return acc


def background():
    while True:
        time.sleep(0.05)


def main():
    t = threading.Thread(target=background, name="background")
    t.daemon = True
    t.start()
    deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 3)
    while time.time() < deadline:
        parse_records(30000)
        summarize(40000)


if __name__ == "__main__":
    main()
