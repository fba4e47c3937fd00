# robust_names.py - a target whose file names, function names and thread
# name are hostile to every output format, for pyflame's tests
# (tests/integration/test_robust_names.c).  Runs under Python 2.7 and 3.x.
#
# A chain of functions is built with compile(src, HOSTILE_FILENAME, 'exec')
# and renamed to hostile co_name values (code.replace on 3.8+, the
# types.CodeType constructor before; co_qualname too on 3.11+):
#   <module> -> main -> chain[0] -> ... -> chain[-1] (spins)
# The names hold ';', ' ', newlines, '<', '&', '"', "'", control bytes,
# invalid UTF-8 (raw bytes on 2.7, lone surrogates on 3.x), a NUL byte,
# "]]>", a backslash, U+2028, non-ASCII in UCS1/UCS2/UCS4 and 3000-character
# names.  A second thread runs the same chain; it renames itself (its
# /proc comm) to a hostile name too.
#
# Once both threads spin it prints "depths main=D1 worker=D2" and "ready": the number of
# Python frames on each thread's stack from the leaf of the chain to the root
# (a sample may also catch the two small helpers the leaf calls: D + 2).
#
# Arguments: seconds=S (default 120).
import sys
import threading
import time
import types

PY3 = sys.version_info[0] >= 3

if PY3:
    BAD_UTF8_NAME = "bad\udcff\udc80utf8"        # lone surrogates (surrogateescape'd bytes)
    BAD_UTF8_FILE = "bad-\udcfe\udcc3(.py"
else:
    BAD_UTF8_NAME = "bad\xff\x80utf8"              # raw invalid UTF-8 bytes
    BAD_UTF8_FILE = "bad-\xfe\xc3(.py"

if PY3:
    UNI_NAME = "\u00fcn\u00efc\u00f8d\u00e9_\u51fd\u6570_\U0001F600"
    UNI_FILE = "uni-\u00fc-\u51fd\u6570-\U0001F600.py"
    LS = "\u2028"
else:
    UNI_NAME = u"\u00fcn\u00efc\u00f8d\u00e9_\u51fd\u6570_\U0001F600".encode("utf-8")
    UNI_FILE = u"uni-\u00fc-\u51fd\u6570-\U0001F600.py".encode("utf-8")
    LS = u"\u2028".encode("utf-8")

# (file name, function name); the first must keep "semi" and "colon" apart
# by a ';' (the test looks for them).
HOSTILE = [
    ("/tmp/evil;dir/file;1.py", "semi;colon"),
    ("new\nline.py", "new\nline\r\n"),
    ("</svg><script>alert(1)</script>.py", '<tag a="q">&amp; \'x\' </tag>'),
    ("tab\there\x1b[31m.py", "ctl\x01\x02\x1b[31m\x7f\x08"),
    (BAD_UTF8_FILE, BAD_UTF8_NAME),
    ("sp ace 12.py", "f 99"),
    (UNI_FILE, UNI_NAME),
    ("]]>--><!--%s.py" % LS, "back\\slash" + LS + "]]>"),
    ("x" * 3000 + ".py", "y" * 3000),
    ("quote\".py", "nul\x00byte"),
]

LEAF = "def f(deadline, now):\n    x = 0\n    while now() < deadline:\n        x += 1\n    return x\n"
LINK = "def f(deadline, now):\n    return NEXT(deadline, now)\n"


def rename(code, name):
    if hasattr(code, "replace"):
        kw = {"co_name": name}
        if hasattr(code, "co_qualname"):
            kw["co_qualname"] = "Q." + name
        return code.replace(**kw)
    if not PY3:
        return types.CodeType(code.co_argcount, code.co_nlocals, code.co_stacksize, code.co_flags,
                              code.co_code, code.co_consts, code.co_names, code.co_varnames,
                              code.co_filename, name, code.co_firstlineno, code.co_lnotab,
                              code.co_freevars, code.co_cellvars)
    return types.CodeType(code.co_argcount, code.co_kwonlyargcount, code.co_nlocals,
                          code.co_stacksize, code.co_flags, code.co_code, code.co_consts,
                          code.co_names, code.co_varnames, code.co_filename, name,
                          code.co_firstlineno, code.co_lnotab, code.co_freevars, code.co_cellvars)


def build_chain():
    nxt = None
    for i in range(len(HOSTILE) - 1, -1, -1):
        filename, name = HOSTILE[i]
        ns = {"NEXT": nxt}
        exec(compile(LEAF if nxt is None else LINK, filename, "exec"), ns)
        fn = ns["f"]
        code = rename(fn.__code__, name)
        nxt = types.FunctionType(code, ns, name if isinstance(name, str) else "f")
    return nxt


DEPTHS = {}


def now_and_count(skip=1):
    # The first call on each thread records its depth: the frames from the
    # leaf of the chain (skip frames up) to the root.
    me = threading.current_thread().name
    if me not in DEPTHS:
        n = 0
        f = sys._getframe(skip)
        while f is not None:
            n += 1
            f = f.f_back
        DEPTHS[me] = n
    return time.time()


def worker(chain, deadline):
    try:
        with open("/proc/self/task/%d/comm" % thread_id(), "w") as f:
            f.write("t;<&>\"x y\x01z")
    except (IOError, OSError, AttributeError):
        pass
    chain(deadline, now_and_count)


def thread_id():
    import ctypes
    return ctypes.CDLL(None).syscall(186)   # gettid on x86-64


def main():
    seconds = 120.0
    for arg in sys.argv[1:]:
        if arg.startswith("seconds="):
            seconds = float(arg[len("seconds="):])
        else:
            raise SystemExit("robust_names.py: unknown argument %r" % arg)
    chain = build_chain()
    deadline = time.time() + seconds
    t = threading.Thread(target=worker, args=(chain, deadline), name="worker")
    t.daemon = True
    t.start()

    def announce(d, now):
        while "worker" not in DEPTHS:
            time.sleep(0.005)
        sys.stdout.write("depths main=%d worker=%d\nready\n" % (DEPTHS["MainThread"], DEPTHS["worker"]))
        sys.stdout.flush()
        return now()
    state = {"told": False}

    def now_main():
        t0 = now_and_count(2)
        if not state["told"] and "MainThread" in DEPTHS:
            state["told"] = True
            announce(deadline, time.time)
        return t0
    chain(deadline, now_main)  # LINE:main_call
    t.join()


if __name__ == "__main__":
    main()  # LINE:module_call
