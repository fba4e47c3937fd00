# shapes.py - a hot loop reached through frames of several kinds (a method,
# a generator, a closure, a lambda, a deep recursion), for pyflame's tests.
# Runs under Python 2.7 and 3.x.
#
#   <module> -> main -> Walker.method -> gen (generator) -> inner (closure)
#            -> <lambda> -> recurse x DEPTH -> Leaf.__init__ (hot loop, LINE:leaf_hot)
#
# Arguments (key=value, all optional):
#   seconds=S  run for S seconds after "ready", then exit (default 120)
#   depth=N    number of recurse frames (default 50)
#
# The tests find line numbers through the "# LINE:name" markers.
import sys
import time


class Leaf(object):
    # A Python __init__ called from a hot call site: 3.13 runs it under a
    # shim frame (_Py_InitCleanup) that must not show.
    def __init__(self, n):
        x = 0
        for i in range(n):  # LINE:leaf_hot
            x += i  # LINE:leaf_hot
        self.x = x


def recurse(k):
    if k > 1:
        return recurse(k - 1)  # LINE:recurse_self
    return Leaf(100000).x  # LINE:recurse_leaf


def gen(deadline, depth):
    def inner():
        f = lambda: recurse(depth)  # LINE:lambda_call
        return f()  # LINE:inner_call
    while time.time() < deadline:
        yield inner()  # LINE:gen_call


class Walker(object):
    def method(self, deadline, depth):
        total = 0
        for v in gen(deadline, depth):  # LINE:method_call
            total += v
        return total


def main():
    seconds = 120.0
    depth = 50
    for arg in sys.argv[1:]:
        if arg.startswith("seconds="):
            seconds = float(arg[len("seconds="):])
        elif arg.startswith("depth="):
            depth = int(arg[len("depth="):])
        else:
            raise SystemExit("shapes.py: unknown argument %r" % arg)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    Walker().method(time.time() + seconds, depth)  # LINE:main_call


if __name__ == "__main__":
    main()  # LINE:module_call
