# cpu.py - a CPU-bound call chain with known stacks, for pyflame's tests.
# Runs under Python 2.7 and 3.x.
#
#   <module> -> main -> outer -> middle -> leaf (hot loop on the LINE:leaf_hot lines)
#
# Arguments (key=value, all optional):
#   seconds=S  run for S seconds after "ready", then exit (default 120: a safety
#              limit, the tests kill it long before)
#   exit=N     exit status (default 0)
#   signal=N   at the end, kill itself with signal N instead of exiting
#   quiet      do not print "ready" (for pyflame -t, whose stdout is the profile)
#
# The tests find line numbers through the "# LINE:name" markers: keep them on
# the lines they name.
import os
import sys
import time


def parse_args(argv):
    opts = {"seconds": 120.0, "exit": 0, "quiet": False, "signal": 0}
    for arg in argv:
        if arg == "quiet":
            opts["quiet"] = True
        elif arg.startswith("seconds="):
            opts["seconds"] = float(arg[len("seconds="):])
        elif arg.startswith("exit="):
            opts["exit"] = int(arg[len("exit="):])
        elif arg.startswith("signal="):
            opts["signal"] = int(arg[len("signal="):])
        else:
            raise SystemExit("cpu.py: unknown argument %r" % arg)
    return opts


def leaf(n):
    x = 0
    i = 0
    while i < n:  # LINE:leaf_hot
        x += i  # LINE:leaf_hot
        i += 1  # LINE:leaf_hot
    return x


def middle(deadline, quiet):
    if not quiet:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    while time.time() < deadline:
        leaf(200000)  # LINE:middle_call


def outer(deadline, quiet):
    middle(deadline, quiet)  # LINE:outer_call


def main():
    opts = parse_args(sys.argv[1:])
    deadline = time.time() + opts["seconds"]
    outer(deadline, opts["quiet"])  # LINE:main_call
    if opts["signal"]:
        os.kill(os.getpid(), opts["signal"])
        time.sleep(10)
    return opts["exit"]


if __name__ == "__main__":
    sys.exit(main())  # LINE:module_call
