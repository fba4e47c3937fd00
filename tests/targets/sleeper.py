# sleeper.py - an idle target: the main thread sleeps in time.sleep, for
# pyflame's tests.  Runs under Python 2.7 and 3.x.
#
#   <module> -> main -> sleeper (time.sleep on the LINE:sleep_call line)
#
# Arguments (key=value, all optional):
#   seconds=S  sleep S seconds after "ready", then exit (default 120)
#   quiet      do not print "ready"
import sys
import time


def sleeper(seconds):
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(max(0.0, end - time.time()))  # LINE:sleep_call


def main():
    seconds = 120.0
    quiet = False
    for arg in sys.argv[1:]:
        if arg == "quiet":
            quiet = True
        elif arg.startswith("seconds="):
            seconds = float(arg[len("seconds="):])
        else:
            raise SystemExit("sleeper.py: unknown argument %r" % arg)
    if not quiet:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    sleeper(seconds)  # LINE:main_call


if __name__ == "__main__":
    main()  # LINE:module_call
