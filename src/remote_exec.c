/*
 * remote_exec.c - PEP 768 requests to a CPython 3.14+ process.  See
 * remote_exec.h.
 */
#include "remote_exec.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "inject.h"
#include "proc.h"
#include "remote_call.h"

/* _Py_DebugOffsets of CPython 3.14 (Include/internal/pycore_debug_offsets.h):
 * a cookie, then only uint64_t values, in groups.  Mirrored here group by
 * group, by field count; only the fields named are used. */
struct debug_offsets_314 {
    char cookie[8];                /* "xdebugpy" */
    uint64_t version;              /* PY_VERSION_HEX */
    uint64_t free_threaded;
    uint64_t runtime_state[3];     /* size, finalizing, interpreters_head */
    uint64_t interpreter_state[16];/* size, id, next, threads_head, threads_main, gc,
                                      imports_modules, sysdict, builtins, ceval_gil,
                                      gil_runtime_state, _enabled, _locked, _holder,
                                      code_object_generation, tlbc_generation */
    uint64_t thread_state[9];      /* size, prev, next, interp, current_frame, thread_id,
                                      native_thread_id, datastack_chunk, status */
    uint64_t interpreter_frame[8];
    uint64_t code_object[11];
    uint64_t pyobject[2];
    uint64_t type_object[4];
    uint64_t tuple_object[3];
    uint64_t list_object[3];
    uint64_t set_object[4];
    uint64_t dict_object[3];
    uint64_t float_object[2];
    uint64_t long_object[3];
    uint64_t bytes_object[3];
    uint64_t unicode_object[4];
    uint64_t gc[2];
    uint64_t gen_object[4];
    uint64_t llist_node[2];
    uint64_t debugger_support[6];  /* eval_breaker (in the tstate), remote_debugger_support
                                      (in the tstate), remote_debugging_enabled (in the
                                      interp), debugger_pending_call, debugger_script_path
                                      (in the support struct), debugger_script_path_size */
};

enum { RT_INTERPRETERS_HEAD = 2 };
enum { IS_ID = 1, IS_NEXT = 2, IS_THREADS_MAIN = 4, IS_GIL_LOCKED = 12, IS_GIL_HOLDER = 13 };
enum { TS_NATIVE_THREAD_ID = 6 };
enum { DS_EVAL_BREAKER, DS_SUPPORT, DS_ENABLED, DS_PENDING, DS_PATH, DS_PATH_SIZE };

#define EVAL_PLEASE_STOP_BIT (1ULL << 5)   /* _PY_EVAL_PLEASE_STOP_BIT */
#define MAX_FIELD_OFFSET     (1u << 20)

size_t rexec_layout_offset(const char *field)
{
    if (strcmp(field, "debugger_support") == 0)
        return offsetof(struct debug_offsets_314, debugger_support);
    if (strcmp(field, "interpreter_state") == 0)
        return offsetof(struct debug_offsets_314, interpreter_state);
    if (strcmp(field, "thread_state") == 0)
        return offsetof(struct debug_offsets_314, thread_state);
    if (strcmp(field, "size") == 0)
        return sizeof(struct debug_offsets_314);
    return (size_t)-1;
}

static int rd(pid_t pid, uint64_t addr, void *buf, size_t len, struct error *e, const char *what)
{
    int rc = rcall_read(pid, addr, buf, len);
    if (rc == -ESRCH)
        return error_set(e, INJECT_E_EXITED, "PID %d exited", (int)pid);
    if (rc < 0)
        return error_set(e, INJECT_E_FAILED, "cannot read %s of PID %d: %s", what, (int)pid,
                         strerror(-rc));
    return 0;
}

int rexec_prepare(pid_t pid, uint64_t runtime, struct rexec_target *rt, struct error *e)
{
    memset(rt, 0, sizeof(*rt));
    rt->pid = pid;
    rt->runtime = runtime;
    struct debug_offsets_314 d;
    int rc;
    if (!runtime)
        return error_set(e, INJECT_E_NO_SYMBOLS, "PID %d: _PyRuntime not found", (int)pid);
    if ((rc = rd(pid, runtime, &d, sizeof(d), e, "_Py_DebugOffsets")) < 0)
        return rc;
    if (memcmp(d.cookie, "xdebugpy", 8) != 0)
        return error_set(e, INJECT_E_FAILED, "PID %d: _PyRuntime does not start with the debug "
                         "offsets (no \"xdebugpy\" cookie)", (int)pid);
    rt->version_hex = d.version;
    if ((d.version >> 24) != 3 || ((d.version >> 16) & 0xff) != 14)
        return error_set(e, INJECT_E_UNSUPPORTED, "PID %d runs Python %d.%d: its remote debugging "
                         "offsets are not known to this pyflame build (it knows 3.14's)", (int)pid,
                         (int)(d.version >> 24), (int)((d.version >> 16) & 0xff));
    const uint64_t *ds = d.debugger_support;
    for (int i = DS_EVAL_BREAKER; i <= DS_PATH; i++)
        if (ds[i] >= MAX_FIELD_OFFSET)
            return error_set(e, INJECT_E_FAILED, "PID %d: implausible debug offsets", (int)pid);
    if (ds[DS_PATH_SIZE] < 16 || ds[DS_PATH_SIZE] > 65536)
        return error_set(e, INJECT_E_FAILED, "PID %d: implausible script path size %llu", (int)pid,
                         (unsigned long long)ds[DS_PATH_SIZE]);
    rt->off_eval_breaker = ds[DS_EVAL_BREAKER];
    rt->off_support = ds[DS_SUPPORT];
    rt->off_pending = ds[DS_PENDING];
    rt->off_path = ds[DS_PATH];
    rt->path_max = (size_t)ds[DS_PATH_SIZE];

    /* The main interpreter (id 0): interpreters_head is the newest one. */
    const uint64_t *is = d.interpreter_state;
    uint64_t interp = 0;
    if ((rc = rd(pid, runtime + d.runtime_state[RT_INTERPRETERS_HEAD], &interp, 8, e,
                 "the interpreter list")) < 0)
        return rc;
    for (int i = 0; interp && i < 256; i++) {
        int64_t id = -1;
        if ((rc = rd(pid, interp + is[IS_ID], &id, 8, e, "an interpreter")) < 0)
            return rc;
        if (id == 0)
            break;
        if ((rc = rd(pid, interp + is[IS_NEXT], &interp, 8, e, "an interpreter")) < 0)
            return rc;
    }
    if (!interp)
        return error_set(e, INJECT_E_FAILED, "PID %d: no main interpreter (not initialised yet, "
                         "or finalized)", (int)pid);
    rt->interp = interp;

    int32_t enabled = 0;
    if ((rc = rd(pid, interp + ds[DS_ENABLED], &enabled, 4, e, "the interpreter config")) < 0)
        return rc;
    if (enabled != 1)
        return error_set(e, INJECT_E_REFUSED, "Python in PID %d has remote debugging disabled "
                         "(PYTHON_DISABLE_REMOTE_DEBUG, -X disable-remote-debug or a build "
                         "--without-remote-debug): start it with 'python -X perf' instead",
                         (int)pid);

    /* The GIL holder runs bytecode now: it checks its eval breaker soonest. */
    int32_t locked = 0;
    uint64_t holder = 0, tstate = 0;
    if (d.free_threaded == 0 &&
        rcall_read(pid, interp + is[IS_GIL_LOCKED], &locked, 4) == 0 && locked &&
        rcall_read(pid, interp + is[IS_GIL_HOLDER], &holder, 8) == 0 && holder)
        tstate = holder, rt->holds_gil = 1;
    if (!tstate && (rc = rd(pid, interp + is[IS_THREADS_MAIN], &tstate, 8, e, "the main thread")) < 0)
        return rc;
    if (!tstate)
        return error_set(e, INJECT_E_FAILED, "PID %d has no main thread state", (int)pid);
    rt->tstate = tstate;
    uint64_t tid = 0;
    if (rcall_read(pid, tstate + d.thread_state[TS_NATIVE_THREAD_ID], &tid, 8) == 0 && tid < (1u << 30))
        rt->tid = (pid_t)tid;
    return 0;
}

/* ---- the whole process stopped for the writes ----------------------------- */

struct frozen {
    pid_t *tids;
    int *sig;        /* a signal of the target's caught while stopping: given back */
    int *stopped;
    size_t n;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Takes the stop reports that are there: 1 while some thread has not stopped. */
static int collect_stops(struct frozen *f)
{
    int left = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (!f->tids[i] || f->stopped[i])
            continue;
        int st;
        pid_t r = waitpid(f->tids[i], &st, __WALL | WNOHANG);
        if (r == f->tids[i]) {
            if (WIFEXITED(st) || WIFSIGNALED(st)) {
                f->tids[i] = 0;
            } else if (WIFSTOPPED(st)) {
                f->stopped[i] = 1;
                if ((st >> 16) == 0 && WSTOPSIG(st) != SIGTRAP)
                    f->sig[i] = WSTOPSIG(st);   /* a signal-delivery-stop: given back */
            }
        } else if (r < 0 && errno == ECHILD) {
            f->tids[i] = 0;
        } else {
            left = 1;
        }
    }
    return left;
}

/* Resumes and releases every thread.  A thread can only be detached once it
 * has stopped, so late ones are waited for (2 s at most; after that the
 * kernel releases them when pyflame exits). */
static void thaw(struct frozen *f)
{
    uint64_t deadline = now_ms() + 2000;
    while (collect_stops(f) && now_ms() < deadline)
        usleep(200);
    for (size_t i = 0; i < f->n; i++)
        if (f->stopped[i])
            ptrace(PTRACE_DETACH, f->tids[i], NULL, (void *)(long)f->sig[i]);
    free(f->tids);
    free(f->sig);
    free(f->stopped);
    memset(f, 0, sizeof(*f));
}

/* Stops every thread (PTRACE_SEIZE + PTRACE_INTERRUPT), waiting 500 ms at most. */
static int freeze(pid_t pid, struct frozen *f, struct error *e)
{
    memset(f, 0, sizeof(*f));
    int rc = proc_tasks(pid, &f->tids, &f->n);
    if (rc < 0)
        return error_set(e, INJECT_E_EXITED, "PID %d exited", (int)pid);
    f->sig = calloc(f->n ? f->n : 1, sizeof(int));
    f->stopped = calloc(f->n ? f->n : 1, sizeof(int));
    if (!f->sig || !f->stopped) {
        thaw(f);
        return error_set(e, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < f->n; i++) {
        if (ptrace(PTRACE_SEIZE, f->tids[i], NULL, NULL) != 0) {
            int err = errno;
            f->tids[i] = 0;
            if (err == ESRCH)
                continue;   /* it ended */
            thaw(f);
            if (err == EPERM)
                return error_set(e, INJECT_E_PERMISSION, "permission denied: cannot stop PID %d "
                                 "for the writes (is it traced by another program?)", (int)pid);
            return error_set(e, INJECT_E_FAILED, "cannot stop PID %d: %s", (int)pid, strerror(err));
        }
        ptrace(PTRACE_INTERRUPT, f->tids[i], NULL, NULL);
    }
    uint64_t deadline = now_ms() + 500;
    while (collect_stops(f)) {
        if (now_ms() >= deadline) {
            thaw(f);
            return error_set(e, INJECT_E_FAILED, "PID %d: a thread did not stop within 500 ms; "
                             "nothing was written", (int)pid);
        }
        usleep(200);
    }
    return 0;
}

int rexec_request(const struct rexec_target *rt, const char *path, struct error *e)
{
    size_t len = strlen(path);
    if (len + 1 > rt->path_max)
        return error_set(e, INJECT_E_FAILED, "the script path %s is too long for PID %d (%zu bytes "
                         "at most)", path, (int)rt->pid, rt->path_max - 1);
    struct frozen f;
    int rc = freeze(rt->pid, &f, e);
    if (rc < 0)
        return rc;
    uint64_t support = rt->tstate + rt->off_support;
    int32_t one = 1;
    uint64_t breaker = 0;
    /* the path (with its NUL), then the flag, then the bit that makes the thread look */
    if ((rc = rcall_write(rt->pid, support + rt->off_path, path, len + 1)) == 0 &&
        (rc = rcall_write(rt->pid, support + rt->off_pending, &one, sizeof(one))) == 0 &&
        (rc = rcall_read(rt->pid, rt->tstate + rt->off_eval_breaker, &breaker, sizeof(breaker))) == 0) {
        breaker |= EVAL_PLEASE_STOP_BIT;
        rc = rcall_write(rt->pid, rt->tstate + rt->off_eval_breaker, &breaker, sizeof(breaker));
    }
    thaw(&f);
    if (rc == -ESRCH)
        return error_set(e, INJECT_E_EXITED, "PID %d exited", (int)rt->pid);
    if (rc < 0)
        return error_set(e, INJECT_E_FAILED, "cannot write the request into PID %d: %s",
                         (int)rt->pid, strerror(-rc));
    return 0;
}
