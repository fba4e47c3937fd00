/*
 * inject.h - switching CPython's perf trampoline (3.12+) on and off inside a
 * running process, from outside: `pyflame --perf-on -p PID`, `--perf-off`.
 *
 * With the trampoline on, every Python function entered afterwards gets its
 * own small native trampoline and a line `ADDR SIZE py::qualname:filename` in
 * /tmp/perf-<pid>.map (pid and /tmp as the target sees them), so `perf` can
 * name Python frames.  The code run inside the target is exactly
 *     sys.activate_stack_trampoline('perf')    /  sys.deactivate_stack_trampoline()
 * guarded by sys.is_stack_trampoline_active(), in a private namespace (it
 * binds nothing in __main__), with every Exception caught; its outcome comes
 * back as a result word in a page pyflame maps into the target.
 *
 * HOW (3.12, 3.13; see remote_call.h for the ptrace safety recipe):
 *   0. Nothing is touched unless the target is a CPython 3.12/3.13 whose
 *      binary has the C-API symbols and the trampoline (error otherwise).
 *   1. Only one thread at a time (the main one, TID == PID, for the pending
 *      call) is stopped, with PTRACE_SEIZE + PTRACE_INTERRUPT; all other
 *      threads keep running.  A process in a group stop is refused.
 *   2. Two pages are mmap'ed in the target by remote system calls: a small
 *      fixed machine-code stub (read+exec) and a data page (read+write) with
 *      the C-API addresses, the Python source and the result words.  Nothing
 *      is put on the target's stack except a return address.
 *   3. PENDING-CALL (preferred): one remote call, Py_AddPendingCall(stub, data),
 *      then the main thread is restored and released.  The stub runs later at
 *      a safe point: on Python's main thread, between two bytecodes, with the
 *      GIL held (like a Python signal handler).  It always returns 0 to the
 *      eval loop (or -1 with the exception set only when a KeyboardInterrupt /
 *      SystemExit raised by a signal handler inside it must propagate).
 *      pyflame waits (bounded: INJECT_DEFAULT_TIMEOUT_MS, env
 *      PYFLAME_INJECT_TIMEOUT_MS) for the stub's "done" word.
 *      The remote call itself is made only when the main thread is stopped in
 *      a system call, or in user space outside libc and outside the
 *      pending-call / lock functions of libpython, so it cannot already hold
 *      the pending-calls lock it takes (otherwise the thread is let run a
 *      few ms and stopped again).  Py_AddPendingCall takes no GIL, no tstate
 *      and allocates nothing.
 *   4. DIRECT: the stub is called on the stopped thread itself, wrapped in
 *      PyGILState_Ensure / PyGILState_Release (always released), saving and
 *      restoring any exception already set on the thread.  Only allowed on a
 *      Python thread that is blocked in a system call with the GIL released
 *      (PyGILState_Check() == 0, not waiting inside the GIL's own futex) -
 *      i.e. inside a Py_BEGIN_ALLOW_THREADS region such as time.sleep, a pipe
 *      read, select or a lock wait, where running Python is what a signal
 *      handler would do - and when no other thread of the process is stopped.
 *      The call blocks until the GIL is free; the system call it interrupted
 *      is restarted afterwards (no EINTR).
 *   AUTO = PENDING-CALL; each time the wait times out, the main thread is
 *      stopped and, if it is blocked at a safe point (see DIRECT), the queued
 *      call is cancelled (a word in the data page the stub checks first,
 *      decided while the main thread is stopped and not inside the stub) and
 *      DIRECT is used on it.  If it is not (it runs code, or waits for the
 *      GIL: it will reach the eval loop), pyflame waits on, up to
 *      max(10 timeouts, 10 s), then tries DIRECT once on any eligible thread;
 *      if none is eligible (e.g. the main thread runs one long C call holding
 *      the GIL) the queued call stays queued and -ETIMEDOUT says it will
 *      take effect when the main thread next runs Python code.
 *      Note: a direct call on the main thread runs the main thread's already
 *      queued pending calls first (CPython does so at the payload's first
 *      safe point), e.g. an earlier timed-out request.
 *   Trade-off: PENDING-CALL runs Python only at a true safe point, but needs
 *      the main thread to execute bytecode; DIRECT works while the main
 *      thread is blocked, but runs Python inside a C function's
 *      GIL-released region (safe for CPython's own blocking calls; an
 *      extension that keeps private state across such a region could be
 *      surprised, as it could by a signal handler).  In DIRECT mode a
 *      KeyboardInterrupt raised inside the payload (a SIGINT handled there)
 *      is cleared and re-armed with PyErr_SetInterrupt, so the program still
 *      sees it at its next safe point.
 *   The pages are unmapped afterwards, except when a cancelled or timed-out
 *      pending call still references them (8 KiB left behind).
 *   REMOTE-EXEC (3.14+, the only method there; AUTO picks it): PEP 768, the
 *      protocol of sys.remote_exec (remote_exec.c).  The same payload is
 *      written as a script file into the target's /tmp (owned by the
 *      target's user), its path is written into the thread state of the GIL
 *      holder (else the main thread) with the process stopped for a few
 *      microseconds, and the interpreter runs it at that thread's next
 *      eval-breaker check.  The script writes its result word into a second
 *      file pyflame waits for (same timeout as the pending call); both files
 *      are removed then.  On a timeout the script is left in place (the
 *      request is still queued).  Needs remote debugging enabled in the
 *      target (not PYTHON_DISABLE_REMOTE_DEBUG / -X disable-remote-debug).
 *
 * Environment: PYFLAME_INJECT_TIMEOUT_MS (the pending-call wait, default
 * 1000), PYFLAME_INJECT_DEBUG=1 (timings of each step on stderr).
 *
 * CPython facts relied on (checked against the 3.12.1 / 3.13.0 headers and
 * binaries): Py_AddPendingCall(int (*)(void *), void *) targets the main
 * thread of the main interpreter; PyRun_StringFlags(src, Py_file_input=257,
 * globals, locals, NULL) adds __builtins__ to a fresh dict; a build without
 * the trampoline has no _Py_trampoline_func_start symbol and raises
 * ValueError; another eval-frame hook (or an active JIT, in versions with that
 * check: not in 3.13.0) makes
 * activation raise RuntimeError.  Each activation makes CPython allocate a
 * 64 KiB trampoline arena and a new code-extra index: the 255th activation
 * of a process fails (SystemError, half done: the payload undoes it and
 * INJECT_E_FAILED says why).
 */
#ifndef PYFLAME_INJECT_H
#define PYFLAME_INJECT_H

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

enum inject_method {
    INJECT_AUTO = 0,        /* pending call, then direct on timeout */
    INJECT_PENDING_CALL,    /* Py_AddPendingCall only */
    INJECT_DIRECT,          /* PyGILState_Ensure + run on a blocked thread */
    INJECT_REMOTE_EXEC,     /* PEP 768, as sys.remote_exec (3.14+) */
};

/* The Python file sent to a 3.14+ target (REMOTE-EXEC): the payload, then
 * the line that writes its result word to result_path (a path of plain
 * characters, as the target sees it).  0, -EINVAL or -ENOSPC. */
int inject_remote_script(int activate, const char *result_path, char *buf, size_t cap);

/* Parses "auto", "pending-call", "direct", "remote-exec"; -1 when unknown. */
int inject_method_parse(const char *s);
const char *inject_method_name(enum inject_method m);

/* Return codes: 0 = done; INJECT_NOTE = nothing to do (already on / already
 * off), with a note in e->msg (e->code stays 0).  Failures, each with its
 * own one-line message in e (and process exit status, inject_exit_status):
 */
#define INJECT_NOTE               1
#define INJECT_E_NOT_PYTHON      (-ENOENT)          /* exit 10: no CPython in the process */
#define INJECT_E_OLD_PYTHON      (-EPROTONOSUPPORT) /* exit 11: Python older than 3.12 */
#define INJECT_E_NO_TRAMPOLINE   (-ENOSYS)          /* exit 12: built without the trampoline */
#define INJECT_E_NO_SYMBOLS      (-ENOEXEC)         /* exit 13: C-API symbols for the remote call not found */
#define INJECT_E_REFUSED         (-EBUSY)           /* exit 14: Python refused (other eval-frame hook, JIT),
                                                       or the process is stopped / no safe thread */
#define INJECT_E_PERMISSION      (-EPERM)           /* exit 15: ptrace not permitted */
#define INJECT_E_EXITED          (-ESRCH)           /* exit 16: no such process / it exited */
#define INJECT_E_UNSUPPORTED     (-ENOTSUP)         /* exit 17: a version or method this build cannot use */
#define INJECT_E_TIMEOUT         (-ETIMEDOUT)       /* exit 18: main thread never reached the eval
                                                       loop; the request stays queued */
#define INJECT_E_FAILED          (-EIO)             /* exit 19: anything else (remote call crashed,
                                                       payload failed, ptrace error) */

#define INJECT_DEFAULT_TIMEOUT_MS 1000

struct inject_options {
    enum inject_method method;
    int timeout_ms;          /* wait for the pending call; <= 0: env PYFLAME_INJECT_TIMEOUT_MS
                                or INJECT_DEFAULT_TIMEOUT_MS */
};

struct inject_result {
    enum inject_method used; /* INJECT_PENDING_CALL or INJECT_DIRECT */
    int already;             /* the trampoline was already in the requested state */
    pid_t tid;               /* the thread the remote call ran on */
    double latency_ms;       /* from attaching to seeing the payload's result */
    char version[32];        /* "3.12.1" */
    char map_path[4096];     /* the perf map as the target sees it: /tmp/perf-<nspid>.map */
    char host_map_path[4096];/* the same file reached from pyflame: /proc/PID/root/tmp/... */
};

/* activate = 1: sys.activate_stack_trampoline('perf'); 0: deactivate.
 * Returns 0, INJECT_NOTE, or one of INJECT_E_*.  map_path (may be NULL)
 * receives the perf map path as the target sees it. */
int inject_perf_trampoline(pid_t pid, int activate, enum inject_method m, char *map_path,
                           size_t cap, struct error *e);

/* The same with options and details. */
int inject_perf_trampoline_ex(pid_t pid, int activate, const struct inject_options *o,
                              struct inject_result *r, struct error *e);

/* The process exit status for a return code: 0 for 0 and INJECT_NOTE, 10-19
 * for INJECT_E_* as listed above, 1 for anything else. */
int inject_exit_status(int rc);

#endif
