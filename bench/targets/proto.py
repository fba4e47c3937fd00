"""The line protocol shared by the benchmark targets (stdlib only, Python 3.x).

A target prints, on stdout, one line per event:

    STACK <json>        a stack that will be sampled (see stack_of); one per
                        thread
    ready               set up; waiting for a line ("go") on stdin
    WORK_SECONDS <s> <c>  the timed work phase is over; <s> is its wall time
                        (time.perf_counter), <c> the process's CPU time in it
                        (time.process_time)
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


# The work frames themselves say "ready", wait for "go" and report the time,
# with C calls only (os.write, os.read, os._exit), so that no Python frame of
# the protocol ever sits on top of the stack that is sampled:
#
#     os.write(1, b"ready\n")
#     os.read(0, 64)                      # "go"; blocks with the GIL released
#     t0, c0 = time.perf_counter(), time.process_time()
#     ... the work ...
#     t1, c1 = time.perf_counter(), time.process_time()
#     os.write(1, b"WORK_SECONDS %.6f %.6f\n" % (t1 - t0, c1 - c0))
#     os.read(0, 64)                      # "exit", or EOF
#     os._exit(0)
