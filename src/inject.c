/*
 * inject.c - switching CPython's perf trampoline on and off from outside.
 * See inject.h for the design and its safety argument, remote_call.h for
 * the ptrace recipe.
 */
#include "inject.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "elffile.h"
#include "proc.h"
#include "pyversion.h"
#include "remote_call.h"
#include "remote_exec.h"
#include "target.h"

/* ---- the stub and its data page --------------------------------------- */

/* The data page the stub works on (one 4 KiB page, read+write).  The
 * offsets are spelled out in the assembly below and checked here. */
struct inject_data {
    uint64_t fn_ensure;     /*   0  PyGILState_Ensure, 0 in pending-call mode */
    uint64_t fn_release;    /*   8  PyGILState_Release */
    uint64_t fn_dict_new;   /*  16  PyDict_New */
    uint64_t fn_run;        /*  24  PyRun_StringFlags */
    uint64_t fn_getitem;    /*  32  PyDict_GetItemString */
    uint64_t fn_aslong;     /*  40  PyLong_AsLong */
    uint64_t fn_decref;     /*  48  Py_DecRef */
    uint64_t fn_errclear;   /*  56  PyErr_Clear */
    uint64_t fn_getexc;     /*  64  PyErr_GetRaisedException */
    uint64_t fn_setexc;     /*  72  PyErr_SetRaisedException */
    uint64_t keep_exc;      /*  80  1: let a KeyboardInterrupt & co. propagate (pending mode) */
    uint64_t cancel;        /*  88  set by pyflame: do nothing when run */
    uint64_t started;       /*  96  set by the stub when it starts the payload */
    uint64_t done;          /* 104  1: finished, 2: cancelled */
    int64_t result;         /* 112  the payload's r, or STUB_* */
    uint64_t gilstate;      /* 120  PyGILState_Ensure's result */
    char key[8];            /* 128  "r" */
    uint64_t fn_matches;    /* 136  PyErr_ExceptionMatches */
    uint64_t p_kbint;       /* 144  &PyExc_KeyboardInterrupt */
    uint64_t fn_setint;     /* 152  PyErr_SetInterrupt */
    char pad[96];
    char src[3840];         /* 256  the Python source */
};
_Static_assert(sizeof(struct inject_data) == 4096, "one page");
_Static_assert(offsetof(struct inject_data, fn_ensure) == 0, "asm");
_Static_assert(offsetof(struct inject_data, fn_release) == 8, "asm");
_Static_assert(offsetof(struct inject_data, fn_dict_new) == 16, "asm");
_Static_assert(offsetof(struct inject_data, fn_run) == 24, "asm");
_Static_assert(offsetof(struct inject_data, fn_getitem) == 32, "asm");
_Static_assert(offsetof(struct inject_data, fn_aslong) == 40, "asm");
_Static_assert(offsetof(struct inject_data, fn_decref) == 48, "asm");
_Static_assert(offsetof(struct inject_data, fn_errclear) == 56, "asm");
_Static_assert(offsetof(struct inject_data, fn_getexc) == 64, "asm");
_Static_assert(offsetof(struct inject_data, fn_setexc) == 72, "asm");
_Static_assert(offsetof(struct inject_data, keep_exc) == 80, "asm");
_Static_assert(offsetof(struct inject_data, cancel) == 88, "asm");
_Static_assert(offsetof(struct inject_data, started) == 96, "asm");
_Static_assert(offsetof(struct inject_data, done) == 104, "asm");
_Static_assert(offsetof(struct inject_data, result) == 112, "asm");
_Static_assert(offsetof(struct inject_data, gilstate) == 120, "asm");
_Static_assert(offsetof(struct inject_data, key) == 128, "asm");
_Static_assert(offsetof(struct inject_data, fn_matches) == 136, "asm");
_Static_assert(offsetof(struct inject_data, p_kbint) == 144, "asm");
_Static_assert(offsetof(struct inject_data, fn_setint) == 152, "asm");
_Static_assert(offsetof(struct inject_data, src) == 256, "asm");

#define STUB_NO_DICT   (-1001)   /* PyDict_New failed */
#define STUB_EXC       (-1002)   /* an exception escaped the payload */
#define STUB_NO_RESULT (-1003)   /* the payload set no r */

/*
 * int stub(struct inject_data *d)   -- position independent, no relocations;
 * copied into a read+exec page of the target.  Used both as a pending-call
 * function (called by CPython's eval loop, GIL held) and as a direct remote
 * call (fn_ensure set: takes and always releases the GIL itself).
 *
 *   if (d->cancel) { d->done = 2; return 0; }
 *   d->started = 1; ret = 0; exc = NULL;
 *   if (d->fn_ensure) { d->gilstate = Ensure(); exc = GetRaisedException(); }
 *   if ((g = PyDict_New())) {
 *       if ((o = PyRun_StringFlags(d->src, Py_file_input, g, g, NULL))) {
 *           Py_DecRef(o);
 *           if ((v = PyDict_GetItemString(g, "r"))) d->result = PyLong_AsLong(v);
 *           else d->result = STUB_NO_RESULT;
 *           PyErr_Clear();
 *       } else {
 *           d->result = STUB_EXC;
 *           if (d->keep_exc) ret = -1;       // pending call: let it propagate
 *           else if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
 *               PyErr_Clear(); PyErr_SetInterrupt();   // direct: re-arm the Ctrl-C
 *           } else PyErr_Clear();
 *       }
 *       Py_DecRef(g);
 *   } else { d->result = STUB_NO_DICT; PyErr_Clear(); }
 *   if (d->fn_ensure) { if (exc) SetRaisedException(exc); Release(d->gilstate); }
 *   d->done = 1;
 *   return ret;
 */
__asm__(
    "    .pushsection .rodata.pyflame_inject_stub,\"a\"\n"
    "    .balign 16\n"
    "    .globl pyflame_inject_stub_start\n"
    "    .hidden pyflame_inject_stub_start\n"
    "    .globl pyflame_inject_stub_end\n"
    "    .hidden pyflame_inject_stub_end\n"
    "pyflame_inject_stub_start:\n"
    "    push %rbx\n"
    "    push %r12\n"
    "    push %r13\n"
    "    push %r14\n"
    "    push %r15\n"                   /* 5 pushes: %rsp 16-aligned at the calls */
    "    mov  %rdi, %rbx\n"
    "    cmpq $0, 88(%rbx)\n"
    "    jne  .Lpfs_cancelled\n"
    "    movq $1, 96(%rbx)\n"
    "    xor  %r13d, %r13d\n"
    "    xor  %r14d, %r14d\n"
    "    mov  0(%rbx), %rax\n"
    "    test %rax, %rax\n"
    "    jz   .Lpfs_run\n"
    "    call *%rax\n"                  /* PyGILState_Ensure() */
    "    mov  %rax, 120(%rbx)\n"
    "    call *64(%rbx)\n"              /* PyErr_GetRaisedException() */
    "    mov  %rax, %r14\n"
    ".Lpfs_run:\n"
    "    call *16(%rbx)\n"              /* PyDict_New() */
    "    test %rax, %rax\n"
    "    jz   .Lpfs_nodict\n"
    "    mov  %rax, %r12\n"
    "    lea  256(%rbx), %rdi\n"
    "    mov  $257, %esi\n"             /* Py_file_input */
    "    mov  %r12, %rdx\n"
    "    mov  %r12, %rcx\n"
    "    xor  %r8d, %r8d\n"
    "    call *24(%rbx)\n"              /* PyRun_StringFlags(src, 257, g, g, NULL) */
    "    test %rax, %rax\n"
    "    jz   .Lpfs_exc\n"
    "    mov  %rax, %rdi\n"
    "    call *48(%rbx)\n"              /* Py_DecRef(o) */
    "    mov  %r12, %rdi\n"
    "    lea  128(%rbx), %rsi\n"
    "    call *32(%rbx)\n"              /* PyDict_GetItemString(g, \"r\") */
    "    test %rax, %rax\n"
    "    jz   .Lpfs_nor\n"
    "    mov  %rax, %rdi\n"
    "    call *40(%rbx)\n"              /* PyLong_AsLong(v) */
    "    mov  %rax, 112(%rbx)\n"
    "    jmp  .Lpfs_clear\n"
    ".Lpfs_nor:\n"
    "    movq $-1003, 112(%rbx)\n"
    ".Lpfs_clear:\n"
    "    call *56(%rbx)\n"              /* PyErr_Clear() */
    "    jmp  .Lpfs_decdict\n"
    ".Lpfs_exc:\n"
    "    movq $-1002, 112(%rbx)\n"
    "    cmpq $0, 80(%rbx)\n"
    "    je   .Lpfs_direct_exc\n"
    "    mov  $-1, %r13d\n"
    "    jmp  .Lpfs_decdict\n"
    ".Lpfs_direct_exc:\n"
    "    mov  144(%rbx), %rax\n"
    "    mov  (%rax), %rdi\n"
    "    call *136(%rbx)\n"             /* PyErr_ExceptionMatches(PyExc_KeyboardInterrupt) */
    "    test %eax, %eax\n"
    "    jz   .Lpfs_clear\n"
    "    call *56(%rbx)\n"              /* PyErr_Clear() */
    "    call *152(%rbx)\n"             /* PyErr_SetInterrupt() */
    ".Lpfs_decdict:\n"
    "    mov  %r12, %rdi\n"
    "    call *48(%rbx)\n"              /* Py_DecRef(g) */
    "    jmp  .Lpfs_release\n"
    ".Lpfs_nodict:\n"
    "    movq $-1001, 112(%rbx)\n"
    "    call *56(%rbx)\n"              /* PyErr_Clear() */
    ".Lpfs_release:\n"
    "    cmpq $0, 0(%rbx)\n"
    "    je   .Lpfs_done\n"
    "    test %r14, %r14\n"
    "    jz   .Lpfs_noexc\n"
    "    mov  %r14, %rdi\n"
    "    call *72(%rbx)\n"              /* PyErr_SetRaisedException(exc) */
    ".Lpfs_noexc:\n"
    "    mov  120(%rbx), %rdi\n"
    "    call *8(%rbx)\n"               /* PyGILState_Release(state) */
    ".Lpfs_done:\n"
    "    movq $1, 104(%rbx)\n"
    "    mov  %r13d, %eax\n"
    "    jmp  .Lpfs_out\n"
    ".Lpfs_cancelled:\n"
    "    movq $2, 104(%rbx)\n"
    "    xor  %eax, %eax\n"
    ".Lpfs_out:\n"
    "    pop  %r15\n"
    "    pop  %r14\n"
    "    pop  %r13\n"
    "    pop  %r12\n"
    "    pop  %rbx\n"
    "    ret\n"
    "pyflame_inject_stub_end:\n"
    "    .popsection\n");

extern const unsigned char pyflame_inject_stub_start[], pyflame_inject_stub_end[];

/* Results written by the payload (r). */
#define R_DONE          1
#define R_ALREADY       2
#define R_NOT_AVAILABLE 10
#define R_REFUSED       11
#define R_EXCEPTION     12
#define R_NO_EFFECT     13
#define R_EXHAUSTED     14   /* SystemError: CPython's code-extra indexes are used up */

static const char src_activate[] =
    "r = 0\n"
    "try:\n"
    "    import sys\n"
    "    if sys.is_stack_trampoline_active():\n"
    "        r = 2\n"
    "    else:\n"
    "        try:\n"
    "            sys.activate_stack_trampoline('perf')\n"
    "            r = 1 if sys.is_stack_trampoline_active() else 13\n"
    "        except BaseException:\n"
    "            if sys.is_stack_trampoline_active():\n"   /* half done: undo */
    "                sys.deactivate_stack_trampoline()\n"
    "            raise\n"
    "except ValueError as x:\n"
    "    r = 10 if 'not available' in str(x) else 12\n"
    "except RuntimeError:\n"
    "    r = 11\n"
    "except SystemError:\n"
    "    r = 14\n"
    "except Exception:\n"
    "    r = 12\n";

static const char src_deactivate[] =
    "r = 0\n"
    "try:\n"
    "    import sys\n"
    "    if not sys.is_stack_trampoline_active():\n"
    "        r = 2\n"
    "    else:\n"
    "        sys.deactivate_stack_trampoline()\n"
    "        r = 13 if sys.is_stack_trampoline_active() else 1\n"
    "except Exception:\n"
    "    r = 12\n";

/* ---- the interpreter's symbols ------------------------------------------ */

enum {
    S_ADD_PENDING, S_ENSURE, S_RELEASE, S_CHECK, S_THIS_TSTATE, S_IS_INIT, S_DICT_NEW, S_RUN,
    S_GETITEM, S_ASLONG, S_DECREF, S_ERRCLEAR, S_GETEXC, S_SETEXC, S_MATCHES, S_KBINT, S_SETINT,
    S_COUNT
};
static const char *const sym_names[S_COUNT] = {
    "Py_AddPendingCall", "PyGILState_Ensure", "PyGILState_Release", "PyGILState_Check",
    "PyGILState_GetThisThreadState", "Py_IsInitialized", "PyDict_New", "PyRun_StringFlags",
    "PyDict_GetItemString", "PyLong_AsLong", "Py_DecRef", "PyErr_Clear",
    "PyErr_GetRaisedException", "PyErr_SetRaisedException", "PyErr_ExceptionMatches",
    "PyExc_KeyboardInterrupt", "PyErr_SetInterrupt",
};

/* Functions the main thread must not be stopped in when it is made to call
 * Py_AddPendingCall: they hold (or take) the pending-calls lock. */
static const char *const danger_names[] = {
    "make_pending_calls", "_make_pending_calls", "_Py_HandlePending", "_PyEval_AddPendingCall",
    "Py_AddPendingCall", "Py_MakePendingCalls", "_PyEval_MakePendingCalls",
    "PyThread_acquire_lock", "PyThread_acquire_lock_timed",
    "PyThread_acquire_lock_timed_with_retries", "PyThread_release_lock", "_PyMutex_LockTimed",
    "_PyMutex_LockSlow", "PyMutex_Lock", "PyMutex_Unlock", "_PyMutex_TryUnlock",
    "_PyMutex_UnlockSlow", "_PyParkingLot_Park", "_PyParkingLot_Unpark", "_PySemaphore_Wait",
    "_PySemaphore_Wakeup",
};
#define NDANGER (sizeof(danger_names) / sizeof(danger_names[0]))

struct range { uint64_t lo, hi; };

struct pyinfo {
    pid_t pid;
    struct pytarget t;
    uint64_t sym[S_COUNT];
    uint64_t is_finalizing;         /* Py_IsFinalizing (3.13) or _Py_IsFinalizing (3.12), or 0 */
    struct range danger[NDANGER + 8];
    size_t ndanger;
    int has_symtab, has_trampoline_sym;
    uint64_t gil;                   /* the main interpreter's GIL struct, or 0 */
    int pep768;                     /* 3.14+: through PEP 768 (remote_exec.c) */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int inject_method_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "auto") == 0)
        return INJECT_AUTO;
    if (strcmp(s, "pending-call") == 0 || strcmp(s, "pending") == 0)
        return INJECT_PENDING_CALL;
    if (strcmp(s, "direct") == 0)
        return INJECT_DIRECT;
    if (strcmp(s, "remote-exec") == 0)
        return INJECT_REMOTE_EXEC;
    return -1;
}

const char *inject_method_name(enum inject_method m)
{
    switch (m) {
    case INJECT_AUTO: return "auto";
    case INJECT_PENDING_CALL: return "pending-call";
    case INJECT_DIRECT: return "direct";
    case INJECT_REMOTE_EXEC: return "remote-exec";
    }
    return "?";
}

int inject_exit_status(int rc)
{
    switch (rc) {
    case 0:
    case INJECT_NOTE: return 0;
    case INJECT_E_NOT_PYTHON: return 10;
    case INJECT_E_OLD_PYTHON: return 11;
    case INJECT_E_NO_TRAMPOLINE: return 12;
    case INJECT_E_NO_SYMBOLS: return 13;
    case INJECT_E_REFUSED: return 14;
    case INJECT_E_PERMISSION: return 15;
    case INJECT_E_EXITED: return 16;
    case INJECT_E_UNSUPPORTED: return 17;
    case INJECT_E_TIMEOUT: return 18;
    case INJECT_E_FAILED: return 19;
    }
    return 1;
}

/* The version of a Python the ABI table does not know (3.14+), from the
 * binary, for the error message.  0 or -ENOENT. */
static int guess_version(pid_t pid, struct pyversion *v)
{
    struct proc_maps maps;
    if (proc_maps_read(pid, &maps) < 0)
        return -ENOENT;
    char exe[PATH_MAX] = "", link[64];
    snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(link, exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    int rc = -ENOENT;
    for (size_t i = 0; i < maps.n && rc < 0; i++) {
        const struct proc_map *m = &maps.v[i];
        if (m->path[0] != '/' || m->offset != 0)
            continue;
        const char *base = strrchr(m->path, '/') + 1;
        if (strncmp(base, "libpython", 9) != 0 && strcmp(m->path, exe) != 0)
            continue;
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, m->path);
        struct elf_file *ef;
        if (elf_open(path, &ef, NULL) < 0)
            continue;
        uint64_t a, s, hex = 0;
        if (elf_symbol(ef, "Py_Version", &a, &s) == 0 && elf_read(ef, a, &hex, sizeof(hex)) == 0 &&
            pyversion_from_hex(hex & 0xffffffffULL, v) == 0)
            rc = 0;
        else if (pyversion_from_soname(elf_soname(ef), v) == 0)
            rc = 0;
        elf_close(ef);
    }
    proc_maps_free(&maps);
    return rc;
}

static int version_check(pid_t pid, const struct pyversion *v, const char *vs,
                         enum inject_method m, struct error *e)
{
    if (v->major < 3 || (v->major == 3 && v->minor < 12))
        return error_set(e, INJECT_E_OLD_PYTHON, "PID %d runs Python %s: the perf trampoline needs "
                         "Python 3.12 or newer (nothing was done to the process)", (int)pid, vs);
    if (v->major > 3 || v->minor >= 14) {
        if (m == INJECT_PENDING_CALL || m == INJECT_DIRECT)
            return error_set(e, INJECT_E_UNSUPPORTED, "--inject-method=%s is for Python 3.12 and "
                             "3.13; PID %d runs Python %s: use auto or remote-exec (PEP 768)",
                             inject_method_name(m), (int)pid, vs);
        return 0;
    }
    if (m == INJECT_REMOTE_EXEC)
        return error_set(e, INJECT_E_UNSUPPORTED, "--inject-method=remote-exec needs Python 3.14+ "
                         "(PEP 768); PID %d runs Python %s: use auto, pending-call or direct",
                         (int)pid, vs);
    return 0;
}

static int load_symbols(struct pyinfo *pi, struct error *e)
{
    struct elf_file *ef;
    int rc = elf_open(pi->t.elf_path, &ef, NULL);
    if (rc < 0)
        return error_set(e, INJECT_E_NO_SYMBOLS, "cannot open %s: %s", pi->t.elf_path,
                         strerror(-rc));
    uint64_t a, s;
    pi->has_symtab = elf_section(ef, ".symtab", &a, &s) == 0;
    pi->has_trampoline_sym = elf_symbol(ef, "_Py_trampoline_func_start", &a, &s) == 0;
    const char *missing = NULL;
    for (int i = 0; i < S_COUNT; i++) {
        if (elf_symbol(ef, sym_names[i], &a, &s) == 0)
            pi->sym[i] = a + pi->t.bias;
        else if (!missing)
            missing = sym_names[i];
    }
    if (elf_symbol(ef, "Py_IsFinalizing", &a, &s) == 0 || elf_symbol(ef, "_Py_IsFinalizing", &a, &s) == 0)
        pi->is_finalizing = a + pi->t.bias;
    for (size_t i = 0; i < NDANGER; i++) {
        if (elf_symbol(ef, danger_names[i], &a, &s) == 0 && s > 0) {
            pi->danger[pi->ndanger].lo = a + pi->t.bias;
            pi->danger[pi->ndanger].hi = a + pi->t.bias + s;
            pi->ndanger++;
        }
    }
    elf_close(ef);
    if (missing)
        return error_set(e, INJECT_E_NO_SYMBOLS, "the symbols for the remote call were not found in "
                         "%s (%s is missing: a stripped static build?); start the program with "
                         "'python -X perf' instead", pi->t.map_path, missing);
    if (pi->has_symtab && !pi->has_trampoline_sym)
        return error_set(e, INJECT_E_NO_TRAMPOLINE, "Python %s in PID %d was built without the perf "
                         "trampoline (%s has no _Py_trampoline_func_start)", pi->t.version_str,
                         (int)pi->pid, pi->t.map_path);

    /* libc and the dynamic loader: the lock primitives live there. */
    struct proc_maps maps;
    if (proc_maps_read(pi->pid, &maps) == 0) {
        for (size_t i = 0; i < maps.n && pi->ndanger < sizeof(pi->danger) / sizeof(pi->danger[0]); i++) {
            const struct proc_map *m = &maps.v[i];
            if (m->perms[2] != 'x' || m->path[0] != '/')
                continue;
            const char *base = strrchr(m->path, '/') + 1;
            if (strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0 ||
                strncmp(base, "ld-linux", 8) == 0 || strncmp(base, "libpthread", 10) == 0) {
                pi->danger[pi->ndanger].lo = m->start;
                pi->danger[pi->ndanger].hi = m->end;
                pi->ndanger++;
            }
        }
        proc_maps_free(&maps);
    }

    /* The GIL of the main interpreter (to recognise a thread waiting for it). */
    const struct abi_offsets *abi = pi->t.abi;
    if (pi->t.runtime && abi && abi->runtime_interp_main != ABI_NONE && abi->interp_ceval_gil != ABI_NONE) {
        uint64_t interp = 0, gil = 0;
        if (rcall_read(pi->pid, pi->t.runtime + (uint64_t)abi->runtime_interp_main, &interp,
                       sizeof(interp)) == 0 && interp &&
            rcall_read(pi->pid, interp + (uint64_t)abi->interp_ceval_gil, &gil, sizeof(gil)) == 0)
            pi->gil = gil;
    }
    return 0;
}

static int discover(pid_t pid, enum inject_method m, struct pyinfo *pi, struct error *e)
{
    memset(pi, 0, sizeof(*pi));
    pi->pid = pid;
    struct error te = { 0, "" };
    int rc = target_discover(pid, NULL, &pi->t, &te);
    if (rc == -ENOTSUP && (pi->t.version.major > 3 ||
                           (pi->t.version.major == 3 && pi->t.version.minor >= 14))) {
        /* No reading tables for it, but PEP 768 needs none: the interpreter
         * publishes what it needs in _Py_DebugOffsets. */
        if ((rc = version_check(pid, &pi->t.version, pi->t.version_str, m, e)) < 0)
            return rc;
        if (!pi->t.runtime)
            return error_set(e, INJECT_E_NO_SYMBOLS, "Python %s in PID %d: no .PyRuntime section "
                             "or _PyRuntime symbol in %s", pi->t.version_str, (int)pid,
                             pi->t.map_path);
        pi->pep768 = 1;
        return 0;
    }
    if (rc == -ENOTSUP) {
        struct pyversion v;
        if (guess_version(pid, &v) == 0) {
            char vs[32];
            pyversion_format(&v, vs, sizeof(vs));
            int vrc = version_check(pid, &v, vs, m, e);
            if (vrc < 0)
                return vrc;
        }
        return error_set(e, INJECT_E_UNSUPPORTED, "%s", te.msg);
    }
    if (rc == -ESRCH)
        return error_set(e, INJECT_E_EXITED, "%s", te.msg);
    if (rc == -ENOENT)
        return error_set(e, INJECT_E_NOT_PYTHON, "%s", te.msg);
    if (rc == -EACCES || rc == -EPERM)
        return error_set(e, INJECT_E_PERMISSION, "permission denied: %s", te.msg);
    if (rc == -EPROTONOSUPPORT)
        return error_set(e, INJECT_E_UNSUPPORTED, "%s", te.msg);
    if (rc < 0)
        return error_set(e, INJECT_E_FAILED, "%s", te.msg);
    if ((rc = version_check(pid, &pi->t.version, pi->t.version_str, m, e)) < 0)
        return rc;
    return load_symbols(pi, e);
}

/* /tmp/perf-<pid in the target's namespace>.map */
static void perf_map_paths(pid_t pid, struct inject_result *r)
{
    long nspid = pid;
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "NSpid:", 6) != 0)
                continue;
            char *p = line + 6, *end;
            for (;;) {
                long v = strtol(p, &end, 10);
                if (end == p)
                    break;
                nspid = v;
                p = end;
            }
            break;
        }
        fclose(f);
    }
    snprintf(r->map_path, sizeof(r->map_path), "/tmp/perf-%ld.map", nspid);
    snprintf(r->host_map_path, sizeof(r->host_map_path), "/proc/%d/root/tmp/perf-%ld.map",
             (int)pid, nspid);
}

/* ---- one injection ------------------------------------------------------ */

struct job {
    uint64_t t0;
    struct pyinfo *pi;
    int activate;
    struct inject_data data;   /* the template */
};

static void fill_data(struct job *j, int direct)
{
    struct inject_data *d = &j->data;
    memset(d, 0, sizeof(*d));
    const uint64_t *s = j->pi->sym;
    d->fn_ensure = direct ? s[S_ENSURE] : 0;
    d->fn_release = s[S_RELEASE];
    d->fn_dict_new = s[S_DICT_NEW];
    d->fn_run = s[S_RUN];
    d->fn_getitem = s[S_GETITEM];
    d->fn_aslong = s[S_ASLONG];
    d->fn_decref = s[S_DECREF];
    d->fn_errclear = s[S_ERRCLEAR];
    d->fn_getexc = s[S_GETEXC];
    d->fn_setexc = s[S_SETEXC];
    d->fn_matches = s[S_MATCHES];
    d->p_kbint = s[S_KBINT];
    d->fn_setint = s[S_SETINT];
    d->keep_exc = direct ? 0 : 1;
    d->result = STUB_NO_RESULT;
    strcpy(d->key, "r");
    const char *src = j->activate ? src_activate : src_deactivate;
    _Static_assert(sizeof(src_activate) <= sizeof(d->src) && sizeof(src_deactivate) <= sizeof(d->src),
                   "payload fits");
    memcpy(d->src, src, strlen(src) + 1);
}

/* Error codes of remote_call.c -> INJECT_E_* (messages are kept). */
static int map_rc(int rc)
{
    switch (rc) {
    case INJECT_E_EXITED:
    case INJECT_E_PERMISSION:
    case INJECT_E_REFUSED:
    case INJECT_E_TIMEOUT:
        return rc;
    default:
        return rc < 0 ? INJECT_E_FAILED : rc;
    }
}

#define DATA(pages) ((pages) + 4096)

/* mmap two pages in the target (code, data), fill them, make the code page
 * read+exec.  *pages = their address. */
static int map_pages(struct rcall_thread *th, const struct inject_data *d, uint64_t *pages,
                     struct error *e)
{
    uint64_t a[6] = { 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0 };
    int64_t r;
    int rc = rcall_syscall(th, SYS_mmap, a, 6, &r, e);
    if (rc < 0)
        return e->code = map_rc(rc);
    if (r < 0 && r > -4096)
        return error_set(e, INJECT_E_FAILED, "mmap in PID %d failed: %s", (int)th->pid,
                         strerror((int)-r));
    *pages = (uint64_t)r;
    size_t len = (size_t)(pyflame_inject_stub_end - pyflame_inject_stub_start);
    if ((rc = rcall_write(th->pid, *pages, pyflame_inject_stub_start, len)) < 0 ||
        (rc = rcall_write(th->pid, DATA(*pages), d, sizeof(*d))) < 0)
        return error_set(e, rc == -ESRCH ? INJECT_E_EXITED : INJECT_E_FAILED,
                         "cannot write to PID %d: %s", (int)th->pid, strerror(-rc));
    uint64_t p[3] = { *pages, 4096, PROT_READ | PROT_EXEC };
    if ((rc = rcall_syscall(th, SYS_mprotect, p, 3, &r, e)) < 0)
        return e->code = map_rc(rc);
    if (r != 0)
        return error_set(e, INJECT_E_FAILED, "mprotect in PID %d failed: %s", (int)th->pid,
                         strerror((int)-r));
    return 0;
}

static void unmap_pages(struct rcall_thread *th, uint64_t pages)
{
    uint64_t a[2] = { pages, 8192 };
    int64_t r;
    struct error ignore;
    rcall_syscall(th, SYS_munmap, a, 2, &r, &ignore);
}

static int attach(struct rcall_thread *th, pid_t pid, pid_t tid, struct error *e)
{
    int rc = rcall_attach(th, pid, tid, 3000, e);
    if (rc < 0)
        e->code = rc = map_rc(rc);
    return rc;
}

static int in_ranges(const struct pyinfo *pi, uint64_t ip)
{
    for (size_t i = 0; i < pi->ndanger; i++)
        if (ip >= pi->danger[i].lo && ip < pi->danger[i].hi)
            return 1;
    return 0;
}

/* A remote call of a C-API function that only reads state (Py_IsInitialized,
 * PyGILState_Check, ...). */
static int call0(struct rcall_thread *th, uint64_t fn, uint64_t *ret, struct error *e)
{
    int rc = rcall_function(th, fn, NULL, 0, 16384, ret, e);
    if (rc < 0)
        e->code = rc = map_rc(rc);
    return rc;
}

static int check_alive_interpreter(struct rcall_thread *th, const struct pyinfo *pi, struct error *e)
{
    uint64_t v;
    int rc = call0(th, pi->sym[S_IS_INIT], &v, e);
    if (rc < 0)
        return rc;
    if ((int)v == 0)
        return error_set(e, INJECT_E_REFUSED, "Python in PID %d is not initialized (starting up or "
                         "already finalized)", (int)pi->pid);
    if (pi->is_finalizing) {
        if ((rc = call0(th, pi->is_finalizing, &v, e)) < 0)
            return rc;
        if ((int)v != 0)
            return error_set(e, INJECT_E_REFUSED, "Python in PID %d is shutting down", (int)pi->pid);
    }
    return 0;
}

static int read_word(pid_t pid, uint64_t addr, uint64_t *v)
{
    return rcall_read(pid, addr, v, sizeof(*v));
}

/* Is the stopped thread at a point where running Python through
 * PyGILState_Ensure is what a signal handler could do?  1 = yes, 0 = no
 * (reason in why), <0 = error. */
static int direct_eligible(struct rcall_thread *th, const struct pyinfo *pi, char *why, size_t cap,
                           struct error *e)
{
    long nr = rcall_stopped_syscall(th);
    if (nr < 0) {
        snprintf(why, cap, "thread %d is running code, not blocked in a system call", (int)th->tid);
        return 0;
    }
    if (nr == SYS_futex) {
        uint64_t uaddr = th->saved.rdi;
        if (!pi->gil) {
            snprintf(why, cap, "thread %d waits on a futex and the GIL's address is unknown",
                     (int)th->tid);
            return 0;
        }
        if (uaddr >= pi->gil && uaddr < pi->gil + 256) {
            snprintf(why, cap, "thread %d is waiting for the GIL", (int)th->tid);
            return 0;
        }
    }
    int rc = check_alive_interpreter(th, pi, e);
    if (rc < 0)
        return rc;
    uint64_t v;
    if ((rc = call0(th, pi->sym[S_THIS_TSTATE], &v, e)) < 0)
        return rc;
    if (!v) {
        snprintf(why, cap, "thread %d is not a Python thread", (int)th->tid);
        return 0;
    }
    if ((rc = call0(th, pi->sym[S_CHECK], &v, e)) < 0)
        return rc;
    if ((int)v != 0) {
        snprintf(why, cap, "thread %d holds the GIL inside a system call", (int)th->tid);
        return 0;
    }
    return 1;
}

/* The result word of a finished stub -> return code. */
static int decode_result(const struct job *j, int64_t res, struct inject_result *r, struct error *e)
{
    const struct pyinfo *pi = j->pi;
    int pid = (int)pi->pid;
    switch (res) {
    case R_DONE:
        return 0;
    case R_ALREADY:
        r->already = 1;
        error_set(e, 0, "the perf trampoline of PID %d was already %s; nothing to do", pid,
                  j->activate ? "active" : "inactive");
        return INJECT_NOTE;
    case R_NOT_AVAILABLE:
        return error_set(e, INJECT_E_NO_TRAMPOLINE, "Python %s in PID %d was built without the "
                         "perf trampoline (sys.activate_stack_trampoline: not available)",
                         pi->t.version_str, pid);
    case R_REFUSED:
        return error_set(e, INJECT_E_REFUSED, "Python in PID %d refused to activate the perf "
                         "trampoline: another frame-evaluation hook (a debugger, profiler or the "
                         "JIT) is installed", pid);
    case R_NO_EFFECT:
        return error_set(e, INJECT_E_FAILED, "sys.%s_stack_trampoline ran in PID %d but the "
                         "trampoline is still %s", j->activate ? "activate" : "deactivate", pid,
                         j->activate ? "inactive" : "active");
    case R_EXHAUSTED:
        return error_set(e, INJECT_E_FAILED, "Python in PID %d cannot activate the perf trampoline "
                         "any more (CPython allows about 250 activations per process: each takes "
                         "a code-extra index); restart it, or start it with 'python -X perf'", pid);
    case STUB_NO_DICT:
        return error_set(e, INJECT_E_FAILED, "Python in PID %d is out of memory", pid);
    case STUB_EXC:
        return error_set(e, INJECT_E_FAILED, "the payload in PID %d was interrupted by an exception "
                         "(KeyboardInterrupt?); the trampoline state is unknown", pid);
    default:
        return error_set(e, INJECT_E_FAILED, "sys.%s_stack_trampoline('perf') failed in PID %d "
                         "(result %lld)", j->activate ? "activate" : "deactivate", pid,
                         (long long)res);
    }
}

/* DIRECT on an already attached, eligible thread.  Detaches it. */
static int run_direct(struct job *j, struct rcall_thread *th, struct inject_result *r,
                      struct error *e)
{
    fill_data(j, 1);
    uint64_t pages = 0, ret;
    int rc = map_pages(th, &j->data, &pages, e);
    if (rc == 0) {
        rc = rcall_function(th, pages, (uint64_t[]){ DATA(pages) }, 1, 256 * 1024, &ret, e);
        if (rc < 0)
            e->code = rc = map_rc(rc);
    }
    struct inject_data d;
    if (rc == 0 && rcall_read(th->pid, DATA(pages), &d, sizeof(d)) < 0)
        rc = error_set(e, INJECT_E_EXITED, "PID %d exited", (int)th->pid);
    if (pages && rc != INJECT_E_EXITED)
        unmap_pages(th, pages);
    r->tid = th->tid;
    r->used = INJECT_DIRECT;
    rcall_detach(th);
    if (rc < 0)
        return rc;
    if (d.done != 1)
        return error_set(e, INJECT_E_FAILED, "the remote call in PID %d returned without running "
                         "the payload", (int)th->pid);
    return decode_result(j, d.result, r, e);
}

/* Stops the main thread at a point where it cannot hold the pending-calls
 * lock.  Attached on success. */
static int attach_main_for_pending(const struct pyinfo *pi, struct rcall_thread *th, struct error *e)
{
    int rc = attach(th, pi->pid, pi->pid, e);
    if (rc < 0)
        return rc;
    for (int tries = 0; tries < 300; tries++) {
        if (rcall_stopped_syscall(th) >= 0 || !in_ranges(pi, th->saved.rip)) {
            if (getenv("PYFLAME_INJECT_DEBUG"))
                fprintf(stderr, "inject: main thread stopped (syscall %ld, rip %#llx) after %d retries\n",
                        rcall_stopped_syscall(th), (unsigned long long)th->saved.rip, tries);
            return 0;
        }
        if ((rc = rcall_rerun(th, 1000 + tries * 100, e)) < 0) {
            rcall_detach(th);
            return map_rc(rc);
        }
    }
    rcall_detach(th);
    return error_set(e, INJECT_E_REFUSED, "the main thread of PID %d stays inside the "
                     "pending-call or lock functions; try again", (int)pi->pid);
}

/* Tries DIRECT on the first eligible thread (main first).  *found is set when
 * one was found (and rc is then its result).  If pending_pages is non-zero,
 * the call queued there is cancelled first, decided while the main thread is
 * stopped; returns 1 (found = 0) when it turns out to be running already. */
static int direct_any(struct job *j, uint64_t pending_pages, int main_only,
                      struct inject_result *r, struct error *e, int *found, char *why,
                      size_t whycap)
{
    const struct pyinfo *pi = j->pi;
    *found = 0;
    why[0] = '\0';
    pid_t *tids = NULL;
    size_t n = 0;
    int rc = proc_tasks(pi->pid, &tids, &n);
    if (rc < 0)
        return error_set(e, INJECT_E_EXITED, "PID %d exited", (int)pi->pid);
    /* Never run Python while other threads are frozen: the GIL may be theirs. */
    for (size_t i = 0; i < n; i++) {
        char st = proc_thread_state(pi->pid, tids[i]);
        if (st == 'T' || st == 't') {
            snprintf(why, whycap, "thread %d of PID %d is stopped (by a signal or another tracer)",
                     (int)tids[i], (int)pi->pid);
            free(tids);
            return 0;
        }
    }
    for (size_t i = 1; i < n; i++)   /* the main thread first */
        if (tids[i] == pi->pid) {
            tids[i] = tids[0];
            tids[0] = pi->pid;
        }
    rc = 0;
    if (main_only && n > 1 && tids[0] == pi->pid)
        n = 1;
    for (size_t i = 0; i < n; i++) {
        struct rcall_thread th;
        if ((rc = attach(&th, pi->pid, tids[i], e)) < 0) {
            if (rc == INJECT_E_EXITED && tids[i] != pi->pid) {
                rc = 0;
                continue;   /* a thread that just ended */
            }
            break;
        }
        char reason[160];
        rc = direct_eligible(&th, pi, reason, sizeof(reason), e);
        if (getenv("PYFLAME_INJECT_DEBUG"))
            fprintf(stderr, "inject: thread %d eligible %d (%s) at +%.2f ms\n", (int)th.tid, rc,
                    rc == 0 ? reason : "", (double)(now_ns() - j->t0) / 1e6);
        if (rc == 0 && !why[0])
            snprintf(why, whycap, "%s", reason);
        if (rc <= 0) {
            rcall_detach(&th);
            if (rc < 0)
                break;
            continue;
        }
        if (pending_pages) {
            /* The stub only runs on the main thread: stopped, it is either
             * inside the stub (or something it called: started != 0) or has
             * not begun, and then it will see the cancel word. */
            struct rcall_thread mt_local, *mt = &th;
            if (th.tid != pi->pid) {
                mt = &mt_local;
                if ((rc = attach(mt, pi->pid, pi->pid, e)) < 0) {
                    rcall_detach(&th);
                    break;
                }
            }
            uint64_t started = 0, one = 1;
            int inside = mt->saved.rip >= pending_pages && mt->saved.rip < pending_pages + 4096;
            int rrc = read_word(pi->pid, DATA(pending_pages) + offsetof(struct inject_data, started),
                                &started);
            if (rrc == 0 && !started && !inside)
                rrc = rcall_write(pi->pid, DATA(pending_pages) + offsetof(struct inject_data, cancel),
                                  &one, sizeof(one));
            if (mt != &th)
                rcall_detach(mt);
            if (rrc < 0 || started || inside) {
                rcall_detach(&th);
                rc = rrc < 0 ? error_set(e, INJECT_E_EXITED, "PID %d exited", (int)pi->pid) : 1;
                break;
            }
        }
        *found = 1;
        rc = run_direct(j, &th, r, e);
        break;
    }
    free(tids);
    return rc;
}

static int timeout_ms_of(const struct inject_options *o)
{
    if (o && o->timeout_ms > 0)
        return o->timeout_ms;
    const char *s = getenv("PYFLAME_INJECT_TIMEOUT_MS");
    if (s && atoi(s) > 0)
        return atoi(s);
    return INJECT_DEFAULT_TIMEOUT_MS;
}

/* Waits until the stub's done word is set or the deadline passes.
 * 1 = done, 0 = not yet, <0 = exited. */
static int wait_done(pid_t pid, uint64_t pages, uint64_t deadline_ns)
{
    long nap = 50;
    for (;;) {
        uint64_t done = 0;
        if (read_word(pid, DATA(pages) + offsetof(struct inject_data, done), &done) < 0)
            return proc_alive(pid) ? INJECT_E_FAILED : INJECT_E_EXITED;
        if (done)
            return 1;
        if (now_ns() > deadline_ns)
            return 0;
        sleep_us(nap);
        if (nap < 1000)
            nap *= 2;
    }
}

/* Frees the pages of a finished pending call: the main thread is stopped
 * outside the stub's code page. */
static void free_pending_pages(const struct pyinfo *pi, uint64_t pages)
{
    struct rcall_thread th;
    struct error ignore;
    if (rcall_attach(&th, pi->pid, pi->pid, 3000, &ignore) < 0)
        return;
    for (int tries = 0; tries < 100; tries++) {
        if (th.saved.rip < pages || th.saved.rip >= pages + 8192) {
            unmap_pages(&th, pages);
            break;
        }
        if (rcall_rerun(&th, 200, &ignore) < 0)
            break;
    }
    rcall_detach(&th);
}

/* ---- 3.14+: PEP 768 ---------------------------------------------------------- */

int inject_remote_script(int activate, const char *result_path, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "# pyflame: %s the perf trampoline (PEP 768 request); writes its outcome\n"
                     "%s"
                     "with open(%s, 'w') as f:\n"
                     "    f.write('%%d\\n' %% r)\n",
                     activate ? "activate" : "deactivate", activate ? src_activate : src_deactivate,
                     "'__RESULT__'");
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    /* the path goes in quotes: keep it to characters that need no escaping */
    for (const char *p = result_path; *p; p++)
        if (!(*p == '/' || *p == '.' || *p == '-' || *p == '_' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return -EINVAL;
    char *at = strstr(buf, "__RESULT__");
    size_t plen = strlen(result_path), tail = strlen(at + 10);
    if ((size_t)(at - buf) + plen + tail + 1 > cap)
        return -ENOSPC;
    memmove(at + plen, at + 10, tail + 1);
    memcpy(at, result_path, plen);
    return 0;
}

/* Creates name under the target's /tmp (as seen from here), owned by the
 * target's user; fills both paths.  The file must not exist yet. */
static int make_tmp_file(pid_t pid, const char *name, mode_t mode, const char *text,
                         char *host, size_t hcap, char *inside, size_t icap)
{
    snprintf(host, hcap, "/proc/%d/root/tmp/%s", (int)pid, name);
    snprintf(inside, icap, "/tmp/%s", name);
    int fd = open(host, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -errno;
    struct stat st;
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/%d", (int)pid);
    if (stat(proc, &st) == 0 && fchown(fd, st.st_uid, st.st_gid) < 0) {
        /* not root: the file stays ours; mode decides */
    }
    size_t len = text ? strlen(text) : 0, done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w <= 0) {
            int err = w < 0 ? errno : EIO;
            close(fd);
            unlink(host);
            return -err;
        }
        done += (size_t)w;
    }
    fchmod(fd, mode);
    close(fd);
    return 0;
}

static int inject_pep768(struct job *j, const struct inject_options *o, struct inject_result *r,
                         struct error *e)
{
    const struct pyinfo *pi = j->pi;
    pid_t pid = pi->pid;
    struct rexec_target rt;
    int rc = rexec_prepare(pid, pi->t.runtime, &rt, e);
    if (rc < 0)
        return rc;
    r->used = INJECT_REMOTE_EXEC;
    r->tid = rt.tid;

    char name[96], script_host[PATH_MAX], script_in[128], out_host[PATH_MAX], out_in[128];
    unsigned long tag = (unsigned long)(now_ns() ^ ((uint64_t)getpid() << 20));
    char text[4096];
    snprintf(name, sizeof(name), "pyflame-perf-%d-%lx.out", (int)pid, tag);
    snprintf(out_in, sizeof(out_in), "/tmp/%s", name);
    if (inject_remote_script(j->activate, out_in, text, sizeof(text)) < 0)
        return error_set(e, INJECT_E_FAILED, "internal error: the request script does not fit");
    if ((rc = make_tmp_file(pid, name, 0600, NULL, out_host, sizeof(out_host), out_in,
                            sizeof(out_in))) < 0)
        return error_set(e, rc == -EACCES || rc == -EPERM ? INJECT_E_PERMISSION : INJECT_E_FAILED,
                         "cannot create %s: %s", out_host, strerror(-rc));
    snprintf(name, sizeof(name), "pyflame-perf-%d-%lx.py", (int)pid, tag);
    if ((rc = make_tmp_file(pid, name, 0644, text, script_host, sizeof(script_host), script_in,
                            sizeof(script_in))) < 0) {
        unlink(out_host);
        return error_set(e, rc == -EACCES || rc == -EPERM ? INJECT_E_PERMISSION : INJECT_E_FAILED,
                         "cannot create %s: %s", script_host, strerror(-rc));
    }
    if ((rc = rexec_request(&rt, script_in, e)) < 0) {
        unlink(script_host);
        unlink(out_host);
        return rc;
    }

    /* The thread runs the script at its next eval-breaker check. */
    int tmo = o && o->timeout_ms > 0 ? o->timeout_ms : 0;
    if (tmo <= 0) {
        const char *env = getenv("PYFLAME_INJECT_TIMEOUT_MS");
        tmo = env && atoi(env) > 0 ? atoi(env) : INJECT_DEFAULT_TIMEOUT_MS;
    }
    uint64_t deadline = now_ns() + (uint64_t)tmo * 1000000u;
    char buf[32];
    for (;;) {
        int fd = open(out_host, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n > 0 && buf[n - 1] == '\n') {
            buf[n] = '\0';
            unlink(script_host);
            unlink(out_host);
            return decode_result(j, strtoll(buf, NULL, 10), r, e);
        }
        if (!proc_alive(pid)) {
            unlink(script_host);
            unlink(out_host);
            return error_set(e, INJECT_E_EXITED, "PID %d exited before it ran the request", (int)pid);
        }
        if (now_ns() >= deadline)
            break;
        sleep_us(2000);
    }
    /* Still queued: the script must stay where the thread will look for it. */
    return error_set(e, INJECT_E_TIMEOUT, "thread %d of PID %d did not reach a safe point within "
                     "%d ms (it %s); the request stays queued and takes effect when it runs Python "
                     "code (%s is left for it)", (int)rt.tid, (int)pid, tmo,
                     rt.holds_gil ? "holds the GIL in a long C call" : "is blocked outside Python",
                     script_in);
}

static int inject(struct job *j, const struct inject_options *o, struct inject_result *r,
                  struct error *e)
{
    const struct pyinfo *pi = j->pi;
    enum inject_method m = o ? o->method : INJECT_AUTO;
    int rc, found = 0;
    char why[200] = "";

    if (pi->pep768)
        return inject_pep768(j, o, r, e);
    if (m == INJECT_DIRECT) {
        rc = direct_any(j, 0, 0, r, e, &found, why, sizeof(why));
        if (rc < 0 || found)
            return rc;
        return error_set(e, INJECT_E_REFUSED, "no thread of PID %d is at a safe point for a direct "
                         "call (%s); use --inject-method=pending-call", (int)pi->pid,
                         why[0] ? why : "none is blocked in a system call with the GIL released");
    }

    /* PENDING-CALL: queue the stub with Py_AddPendingCall from the main thread. */
    struct rcall_thread th;
    if ((rc = attach_main_for_pending(pi, &th, e)) < 0) {
        if (rc != INJECT_E_REFUSED || m != INJECT_AUTO)
            return rc;
        goto fallback;   /* the main thread stays inside the lock functions */
    }
    if ((rc = check_alive_interpreter(&th, pi, e)) < 0) {
        rcall_detach(&th);
        return rc;
    }
    uint64_t pages = 0, ret = 0;
    fill_data(j, 0);
    if ((rc = map_pages(&th, &j->data, &pages, e)) < 0) {
        if (pages && rc != INJECT_E_EXITED)
            unmap_pages(&th, pages);
        rcall_detach(&th);
        return rc;
    }
    rc = rcall_function(&th, pi->sym[S_ADD_PENDING], (uint64_t[]){ pages, DATA(pages) }, 2, 16384,
                        &ret, e);
    if (rc < 0) {
        rcall_detach(&th);   /* the pages stay: the call may be queued */
        return e->code = map_rc(rc);
    }
    if ((int)ret != 0) {
        unmap_pages(&th, pages);
        rcall_detach(&th);
        error_set(e, INJECT_E_REFUSED, "Py_AddPendingCall failed in PID %d (its queue is full)",
                  (int)pi->pid);
        if (m != INJECT_AUTO)
            return INJECT_E_REFUSED;
        goto fallback;
    }
    rcall_detach(&th);
    r->tid = pi->pid;
    r->used = INJECT_PENDING_CALL;

    if (getenv("PYFLAME_INJECT_DEBUG"))
        fprintf(stderr, "inject: queued at +%.2f ms\n", (double)(now_ns() - j->t0) / 1e6);
    /* Wait for the stub.  AUTO, after each timeout: a direct call on the main
     * thread if it is blocked at a safe point; if it is not (it runs code or
     * waits for the GIL: it will reach the eval loop) wait on, up to
     * max(10 timeouts, 10 s), then try the other threads once. */
    int tmo = timeout_ms_of(o);
    uint64_t t_start = now_ns();
    uint64_t deadline = t_start + (uint64_t)tmo * 1000000u;
    uint64_t hard = t_start + (uint64_t)(tmo * 10 > 10000 ? tmo * 10 : 10000) * 1000000u;
    for (int round = 0;; round++) {
        int w = wait_done(pi->pid, pages, deadline);
        if (w < 0)
            return error_set(e, w, "PID %d exited before the payload ran", (int)pi->pid);
        if (w == 1) {
            if (getenv("PYFLAME_INJECT_DEBUG"))
                fprintf(stderr, "inject: done at +%.2f ms\n", (double)(now_ns() - j->t0) / 1e6);
            struct inject_data d;
            if (rcall_read(pi->pid, DATA(pages), &d, sizeof(d)) < 0)
                return error_set(e, INJECT_E_EXITED, "PID %d exited", (int)pi->pid);
            free_pending_pages(pi, pages);
            return decode_result(j, d.result, r, e);
        }
        if (m != INJECT_AUTO || round >= 1000)
            break;
        /* The main thread did not reach the eval loop in time: DIRECT. */
        int last = now_ns() >= hard;
        rc = direct_any(j, pages, !last, r, e, &found, why, sizeof(why));
        if (rc < 0 || found)
            return rc;
        if (rc == 1) {
            deadline = now_ns() + 5000000000ull;   /* it started meanwhile: let it finish */
            continue;
        }
        if (last)
            break;
        deadline = now_ns() + (uint64_t)tmo * 1000000u;
        if (deadline > hard)
            deadline = hard;
    }
    tmo = (int)((now_ns() - t_start) / 1000000u);
    char detail[240] = "";
    if (why[0])
        snprintf(detail, sizeof(detail), " (%s)", why);
    return error_set(e, INJECT_E_TIMEOUT, "the main thread of PID %d did not run Python code within "
                     "%d ms%s%s; the request stays queued and takes effect when it does",
                     (int)pi->pid, tmo,
                     m == INJECT_AUTO ? " and no thread is at a safe point for a direct call" : "",
                     detail);

fallback:
    {
        char msg[sizeof(e->msg)];
        snprintf(msg, sizeof(msg), "%s", e->msg);
        rc = direct_any(j, 0, 0, r, e, &found, why, sizeof(why));
        if (rc < 0 || found)
            return rc;
        return error_set(e, INJECT_E_REFUSED, "%s, and no thread is at a safe point for a direct "
                         "call (%s)", msg, why);
    }
}

int inject_perf_trampoline_ex(pid_t pid, int activate, const struct inject_options *o,
                              struct inject_result *r, struct error *e)
{
    struct inject_result local;
    if (!r)
        r = &local;
    memset(r, 0, sizeof(*r));
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }
    struct error elocal = { 0, "" };
    if (!e)
        e = &elocal;
    if (pid <= 0)
        return error_set(e, INJECT_E_EXITED, "invalid PID %d", (int)pid);
    if (!proc_alive(pid))
        return error_set(e, INJECT_E_EXITED, "PID %d does not exist", (int)pid);
    uint64_t t0 = now_ns();
    struct pyinfo *pi = calloc(1, sizeof(*pi));
    if (!pi)
        return error_set(e, -ENOMEM, "out of memory");
    int rc = discover(pid, o ? o->method : INJECT_AUTO, pi, e);
    if (getenv("PYFLAME_INJECT_DEBUG"))
        fprintf(stderr, "inject: discovered at +%.2f ms\n", (double)(now_ns() - t0) / 1e6);
    if (rc == 0) {
        snprintf(r->version, sizeof(r->version), "%s", pi->t.version_str);
        perf_map_paths(pid, r);
        struct job j;
        j.pi = pi;
        j.t0 = t0;
        j.activate = activate;
        rc = inject(&j, o, r, e);
    }
    r->latency_ms = (double)(now_ns() - t0) / 1e6;
    free(pi);
    return rc;
}

int inject_perf_trampoline(pid_t pid, int activate, enum inject_method m, char *map_path,
                           size_t cap, struct error *e)
{
    struct inject_options o = { m, 0 };
    struct inject_result *r = calloc(1, sizeof(*r));
    if (!r)
        return error_set(e, -ENOMEM, "out of memory");
    int rc = inject_perf_trampoline_ex(pid, activate, &o, r, e);
    if (map_path && cap) {
        if (r->map_path[0])
            snprintf(map_path, cap, "%s", r->map_path);
        else
            map_path[0] = '\0';
    }
    free(r);
    return rc;
}
