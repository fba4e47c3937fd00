# robust_atexit.py - a target that spends its time in interpreter shutdown,
# for pyflame's tests (attaching to an interpreter that is finalizing).
# Runs under Python 2.7 and 3.x.
#
#   1. main() returns at once; the atexit handler prints "ready" and spins
#      for `seconds` in spin_at_exit (# LINE:atexit_spin);
#   2. then, during finalization (module globals being cleared), the
#      __del__ of a module-level object writes "finalizing" to the file
#      `marker` (created empty at start) and spins
#      for `seconds` in spin_in_del (# LINE:del_spin).
# It exits 0.
#
# Arguments (key=value): seconds=S (default 2), marker=PATH (default: none).
import atexit
import os
import sys
import time


def spin_at_exit(seconds):
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    end = time.time() + seconds
    x = 0
    while time.time() < end:  # LINE:atexit_spin
        x += 1
    return x


def spin_in_del(seconds, now):
    end = now() + seconds
    x = 0
    while now() < end:  # LINE:del_spin
        x += 1
    return x


class Finalizer(object):
    # Everything it needs is bound now: module globals may be gone by then.
    def __init__(self, seconds, marker):
        self.seconds = seconds
        self.fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 420) if marker else -1
        self.write = os.write
        self.spin = spin_in_del
        self.now = time.time

    def __del__(self):
        if self.fd >= 0:
            self.write(self.fd, b"finalizing\n")
        self.spin(self.seconds, self.now)


def main():
    seconds = 2.0
    marker = None
    for arg in sys.argv[1:]:
        if arg.startswith("seconds="):
            seconds = float(arg[len("seconds="):])
        elif arg.startswith("marker="):
            marker = arg[len("marker="):]
        else:
            raise SystemExit("robust_atexit.py: unknown argument %r" % arg)
    atexit.register(spin_at_exit, seconds)
    return Finalizer(seconds, marker)


if __name__ == "__main__":
    keep = main()  # LINE:module_call
