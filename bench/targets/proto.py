"""The line protocol shared by the benchmark targets (stdlib only, Python 3.x).

A target prints, on stdout, one line per event:

    STACK <json>        the stack that will be sampled (see stack_of)
    ready               set up; waiting for a line ("go") on stdin
    WORK_SECONDS <s>    the timed work phase is over; <s> is its wall time,
                        measured here with time.perf_counter
and then waits for one more line (or EOF) on stdin before it exits, with
os._exit, from inside the work stack: no sample ever sees it unwind.
"""
import json
import os
import sys


def stack_of(frame, extend=()):
    """The stack of FRAME, root first, as pyflame prints it (co_filename,
    co_name, line); the line of FRAME itself is left out (null): it changes as
    the work runs.  EXTEND names the functions that may appear as one more frame
    on top (e.g. a helper that the leaf calls in its loop)."""
    frames = []
    f = frame
    while f is not None:
        frames.append([f.f_code.co_filename, f.f_code.co_name, f.f_lineno])
        f = f.f_back
    frames.reverse()
    frames[-1][2] = None
    return {"frames": frames, "extend": list(extend)}


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def report_stack(frame, extend=()):
    emit("STACK " + json.dumps(stack_of(frame, extend)))


def ready():
    """Prints "ready" and blocks (GIL released) until the harness says go."""
    emit("ready")
    if not sys.stdin.readline():
        os._exit(3)


def done(seconds):
    """Reports the work phase and exits once the harness has read it."""
    emit("WORK_SECONDS %.6f" % seconds)
    sys.stdin.readline()
    os._exit(0)
