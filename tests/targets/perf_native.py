"""Target for the --native test: Python functions that spend their time in C
(zlib.compress, hashlib.sha256) while the main thread sleeps.

usage: perf_native.py SECONDS
Prints "ready" when running and "done" at the end.
"""
import hashlib
import sys
import threading
import time
import zlib

DATA = bytes(range(256)) * 4096


def compress_loop(deadline):
    n = 0
    while time.time() < deadline:
        n += len(zlib.compress(DATA, 9))
    return n


def hash_loop(deadline):
    h = 0
    while time.time() < deadline:
        h ^= hashlib.sha256(DATA).digest()[0]
    return h


def main():
    seconds = float(sys.argv[1])
    deadline = time.time() + seconds
    out = {}

    def hasher():
        # re-entered every 0.2 s: frames entered after activation get a trampoline
        while time.time() < deadline:
            out["h"] = hash_loop(min(deadline, time.time() + 0.2))

    t = threading.Thread(target=hasher, name="hasher")
    t.start()
    print("ready\n", end="", flush=True)  # one write, even when unbuffered
    while time.time() < deadline:
        out["c"] = compress_loop(min(deadline, time.time() + 0.2))
    t.join()
    print("done", flush=True)


if __name__ == "__main__":
    main()
