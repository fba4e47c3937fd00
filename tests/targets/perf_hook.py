"""Target for test_perf.c: installs a foreign PEP 523 frame-evaluation hook
(the default evaluator itself, written straight into
PyInterpreterState.eval_frame, so behaviour is unchanged) and then computes.
Activating the perf trampoline must then be refused ("a custom eval frame is
already present") and the program must go on unharmed.

usage: perf_hook.py [SECONDS]      (3.12 / 3.13 only)
Prints "ready", and "hook ok N" at the end.
"""
import ctypes
import sys
import time

# sizeof(PyInterpreterState) (abi/offsets_table.c): only read, never written past.
SIZES = {(3, 12): 383552, (3, 13): 194968}


def install_hook():
    api = ctypes.pythonapi
    api.PyInterpreterState_Get.restype = ctypes.c_void_p
    interp = api.PyInterpreterState_Get()
    size = SIZES[sys.version_info[:2]]
    before = ctypes.string_at(interp, size)
    sys.activate_stack_trampoline("perf")
    during = ctypes.string_at(interp, size)
    sys.deactivate_stack_trampoline()
    after = ctypes.string_at(interp, size)
    zero = b"\0" * 8
    offs = [o for o in range(0, size, 8)
            if before[o:o + 8] == zero and during[o:o + 8] != zero and after[o:o + 8] == zero]
    if len(offs) != 1:
        raise SystemExit("cannot find eval_frame: candidates %r" % offs)
    default = ctypes.cast(api._PyEval_EvalFrameDefault, ctypes.c_void_p).value
    ctypes.c_void_p.from_address(interp + offs[0]).value = default
    assert not sys.is_stack_trampoline_active()


def work(n):
    return sum(i * i for i in range(n))


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    install_hook()
    print("ready\n", end="", flush=True)  # one write, even when unbuffered
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        total += work(1000)
        time.sleep(0.01)
    print("hook ok %d" % (total > 0), flush=True)


if __name__ == "__main__":
    main()
