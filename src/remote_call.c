/*
 * remote_call.c - ptrace remote function calls and system calls on x86-64.
 * See remote_call.h for the safety recipe.
 */
#include "remote_call.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

#ifndef __x86_64__
#error "remote_call.c implements x86-64 only"
#endif

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

#define XSTATE_MAX  (64 * 1024)
#define STACK_SKIP  256            /* below the interrupted SP: red zone + margin */
#define EFLAGS_TF   0x100
#define EFLAGS_DF   0x400

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Moves len bytes between buf and the target at addr: process_vm_{read,write}v
 * first, /proc/PID/mem when that is refused (e.g. a read-only text page). */
static int rcall_xfer(pid_t pid, uint64_t addr, void *buf, size_t len, int write)
{
    struct iovec local = { buf, len };
    struct iovec remote = { (void *)(uintptr_t)addr, len };
    ssize_t n = write ? process_vm_writev(pid, &local, 1, &remote, 1, 0)
                      : process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n == (ssize_t)len)
        return 0;
    if (n < 0 && errno == ESRCH)
        return -ESRCH;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
    int fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    size_t done = 0;
    int rc = 0;
    while (done < len) {
        char *p = (char *)buf + done;
        n = write ? pwrite(fd, p, len - done, (off_t)(addr + done))
                  : pread(fd, p, len - done, (off_t)(addr + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EFAULT;
            break;
        }
        done += (size_t)n;
    }
    close(fd);
    return rc;
}

int rcall_write(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
    return rcall_xfer(pid, addr, (void *)buf, len, 1);
}

int rcall_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
    return rcall_xfer(pid, addr, buf, len, 0);
}

static void block_signals(struct rcall_thread *t)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    if (sigprocmask(SIG_BLOCK, &set, &t->oldmask) == 0)
        t->masked = 1;
}

static void unblock_signals(struct rcall_thread *t)
{
    if (t->masked) {
        sigprocmask(SIG_SETMASK, &t->oldmask, NULL);
        t->masked = 0;
    }
}

static void defer_signal(struct rcall_thread *t, int sig)
{
    for (int i = 0; i < t->ndeferred; i++)
        if (t->deferred[i] == sig)
            return;   /* standard signals do not queue anyway */
    if (t->ndeferred < (int)(sizeof(t->deferred) / sizeof(t->deferred[0])))
        t->deferred[t->ndeferred++] = sig;
}

/* Waits for a state change of the thread.  timeout_ms < 0: no limit.
 * 0 with *status, -ETIMEDOUT, or -ESRCH when it exited. */
static int wait_thread(struct rcall_thread *t, long timeout_ms, int *status)
{
    if (timeout_ms < 0) {
        for (;;) {
            int st;
            pid_t r = waitpid(t->tid, &st, __WALL);
            if (r < 0 && errno == EINTR)
                continue;
            if (r != t->tid || WIFEXITED(st) || WIFSIGNALED(st)) {
                t->seized = 0;
                t->stopped = 0;
                return -ESRCH;
            }
            *status = st;
            return 0;
        }
    }
    uint64_t deadline = timeout_ms < 0 ? 0 : now_us() + (uint64_t)timeout_ms * 1000u;
    long nap = 20;
    for (;;) {
        int st;
        pid_t r = waitpid(t->tid, &st, __WALL | WNOHANG);
        if (r == t->tid) {
            if (WIFEXITED(st) || WIFSIGNALED(st)) {
                t->seized = 0;
                t->stopped = 0;
                return -ESRCH;
            }
            *status = st;
            return 0;
        }
        if (r < 0 && errno != EINTR) {
            t->seized = 0;
            t->stopped = 0;
            return -ESRCH;
        }
        if (timeout_ms >= 0 && now_us() > deadline)
            return -ETIMEDOUT;
        sleep_us(nap);
        if (nap < 1000)
            nap *= 2;
    }
}

static int save_state(struct rcall_thread *t, struct error *e)
{
    if (ptrace(PTRACE_GETREGS, t->tid, 0, &t->saved) < 0)
        return error_set(e, -errno, "cannot read the registers of thread %d: %s", (int)t->tid,
                         strerror(errno));
    if (!t->xstate) {
        t->xstate = calloc(1, XSTATE_MAX);
        if (!t->xstate)
            return error_set(e, -ENOMEM, "out of memory");
    }
    struct iovec iov = { t->xstate, XSTATE_MAX };
    if (ptrace(PTRACE_GETREGSET, t->tid, (void *)(uintptr_t)NT_X86_XSTATE, &iov) == 0) {
        t->xstate_note = NT_X86_XSTATE;
        t->xstate_len = iov.iov_len;
    } else {
        iov.iov_len = sizeof(struct user_fpregs_struct);
        if (ptrace(PTRACE_GETREGSET, t->tid, (void *)(uintptr_t)NT_PRFPREG, &iov) < 0)
            return error_set(e, -errno, "cannot read the FPU state of thread %d: %s", (int)t->tid,
                             strerror(errno));
        t->xstate_note = NT_PRFPREG;
        t->xstate_len = iov.iov_len;
    }
    t->dirty = 0;
    return 0;
}

/* Waits for the stop requested by PTRACE_INTERRUPT, holding back any signal
 * that is reported first. */
static int wait_interrupt_stop(struct rcall_thread *t, int timeout_ms, struct error *e)
{
    for (;;) {
        int st;
        int rc = wait_thread(t, timeout_ms, &st);
        if (rc == -ESRCH)
            return error_set(e, -ESRCH, "PID %d exited", (int)t->pid);
        if (rc == -ETIMEDOUT)
            return error_set(e, -ETIMEDOUT, "thread %d of PID %d did not stop within %d ms "
                             "(uninterruptible sleep?)", (int)t->tid, (int)t->pid, timeout_ms);
        if (!WIFSTOPPED(st))
            continue;
        int sig = WSTOPSIG(st), event = (unsigned)st >> 16;
        if (event == PTRACE_EVENT_STOP) {
            if (sig == SIGTRAP) {
                t->stopped = 1;
                return 0;
            }
            /* A group stop: the whole process is stopped.  Injecting now could
             * wait forever for a lock held by a frozen thread. */
            t->stopped = 1;
            return error_set(e, -EBUSY, "PID %d is stopped (by %s); continue it first (kill -CONT %d)",
                             (int)t->pid, strsignal(sig), (int)t->pid);
        }
        /* A signal-delivery-stop that came before our interrupt: hold the
         * signal back, the interrupt stop follows. */
        defer_signal(t, sig);
        if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
            return error_set(e, -errno, "ptrace(PTRACE_CONT, %d): %s", (int)t->tid, strerror(errno));
    }
}

int rcall_attach(struct rcall_thread *t, pid_t pid, pid_t tid, int timeout_ms, struct error *e)
{
    memset(t, 0, sizeof(*t));
    t->pid = pid;
    t->tid = tid;
    block_signals(t);
    if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0) {
        int err = errno;
        unblock_signals(t);
        if (err == ESRCH)
            return error_set(e, -ESRCH, "PID %d (thread %d) does not exist or exited", (int)pid,
                             (int)tid);
        long tracer = 0;
        if (err == EPERM && proc_status_long(pid, "TracerPid", &tracer) == 0 && tracer > 0)
            return error_set(e, -EPERM, "permission denied: PID %d is already being traced by "
                             "PID %ld", (int)pid, tracer);
        if (err == EPERM || err == EACCES)
            return error_set(e, -EPERM, "permission denied: cannot ptrace PID %d (run as the same "
                             "user or root, or with CAP_SYS_PTRACE; see "
                             "/proc/sys/kernel/yama/ptrace_scope)", (int)pid);
        return error_set(e, -err, "ptrace(PTRACE_SEIZE, %d): %s", (int)tid, strerror(err));
    }
    t->seized = 1;
    if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
        int err = errno;
        rcall_detach(t);
        return error_set(e, err == ESRCH ? -ESRCH : -err, "ptrace(PTRACE_INTERRUPT, %d): %s",
                         (int)tid, strerror(err));
    }
    int rc = wait_interrupt_stop(t, timeout_ms > 0 ? timeout_ms : 3000, e);
    if (rc == 0)
        rc = save_state(t, e);
    if (rc < 0) {
        if (rc != -ETIMEDOUT)
            rcall_detach(t);
        else
            unblock_signals(t);   /* still seized: the kernel detaches when pyflame exits */
        return rc;
    }
    return 0;
}

long rcall_stopped_syscall(const struct rcall_thread *t)
{
    return (long)t->saved.orig_rax;
}

static int put_regs(struct rcall_thread *t, const struct user_regs_struct *r, struct error *e)
{
    if (ptrace(PTRACE_SETREGS, t->tid, 0, r) < 0)
        return error_set(e, errno == ESRCH ? -ESRCH : -errno, "cannot set the registers of "
                         "thread %d: %s", (int)t->tid, strerror(errno));
    t->dirty = 1;
    return 0;
}

static int restore_state(struct rcall_thread *t)
{
    if (!t->dirty)
        return 0;
    int rc = 0;
    if (ptrace(PTRACE_SETREGS, t->tid, 0, &t->saved) < 0)
        rc = -errno;
    if (t->xstate_len) {
        struct iovec iov = { t->xstate, t->xstate_len };
        if (ptrace(PTRACE_SETREGSET, t->tid, (void *)(uintptr_t)t->xstate_note, &iov) < 0 && !rc)
            rc = -errno;
    }
    if (rc == 0)
        t->dirty = 0;
    return rc;
}

int rcall_rerun(struct rcall_thread *t, long run_us, struct error *e)
{
    if (restore_state(t) < 0)
        return error_set(e, -EIO, "cannot restore the registers of thread %d", (int)t->tid);
    if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
        return error_set(e, -errno, "ptrace(PTRACE_CONT, %d): %s", (int)t->tid, strerror(errno));
    t->stopped = 0;
    sleep_us(run_us);
    if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0)
        return error_set(e, errno == ESRCH ? -ESRCH : -errno, "ptrace(PTRACE_INTERRUPT, %d): %s",
                         (int)t->tid, strerror(errno));
    int rc = wait_interrupt_stop(t, 3000, e);
    return rc < 0 ? rc : save_state(t, e);
}

/* Runs the thread (already set up) until the SIGSEGV-at-0 sentinel, or the
 * single-step trap when step is set.  Other stops are handled on the way. */
static int run_until_return(struct rcall_thread *t, int step, struct error *e)
{
    int req = step ? PTRACE_SINGLESTEP : PTRACE_CONT;
    if (ptrace(req, t->tid, 0, 0) < 0)
        return error_set(e, -errno, "ptrace(%s, %d): %s", step ? "PTRACE_SINGLESTEP" : "PTRACE_CONT",
                         (int)t->tid, strerror(errno));
    t->stopped = 0;
    for (;;) {
        int st;
        int rc = wait_thread(t, -1, &st);
        if (rc < 0)
            return error_set(e, -ESRCH, "PID %d exited during a remote call", (int)t->pid);
        if (!WIFSTOPPED(st))
            continue;
        t->stopped = 1;
        int sig = WSTOPSIG(st), event = (unsigned)st >> 16;
        if (event == 0 && sig == (step ? SIGTRAP : SIGSEGV)) {
            if (step)
                return 0;
            struct user_regs_struct r;
            if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) < 0)
                return error_set(e, -errno, "cannot read the registers of thread %d: %s",
                                 (int)t->tid, strerror(errno));
            if (r.rip == 0)
                return 0;
            siginfo_t si;
            memset(&si, 0, sizeof(si));
            ptrace(PTRACE_GETSIGINFO, t->tid, 0, &si);
            return error_set(e, -EFAULT, "the remote call crashed in PID %d (SIGSEGV at 0x%llx, "
                             "pc 0x%llx)", (int)t->pid,
                             (unsigned long long)(uintptr_t)si.si_addr,
                             (unsigned long long)r.rip);
        }
        if (event == 0 && (sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
                           (sig == SIGSEGV && step))) {
            struct user_regs_struct r;
            ptrace(PTRACE_GETREGS, t->tid, 0, &r);
            return error_set(e, -EFAULT, "the remote call crashed in PID %d (%s, pc 0x%llx)",
                             (int)t->pid, strsignal(sig), (unsigned long long)r.rip);
        }
        if (event == 0)
            defer_signal(t, sig);   /* signal-delivery-stop: deliver after detaching */
        /* Group stops (event == PTRACE_EVENT_STOP) and held-back signals: let
         * this thread go on with the call. */
        if (ptrace(req, t->tid, 0, 0) < 0)
            return error_set(e, -errno, "ptrace(PTRACE_CONT, %d): %s", (int)t->tid, strerror(errno));
        t->stopped = 0;
    }
}

/* The mapping of /proc/PID/maps that contains addr, as (start, path). */
static int mapping_of(pid_t pid, uint64_t addr, uint64_t *start, int *is_main_stack)
{
    struct proc_maps maps;
    int rc = proc_maps_read(pid, &maps);
    if (rc < 0)
        return rc;
    rc = -ENOENT;
    for (size_t i = 0; i < maps.n; i++) {
        if (addr >= maps.v[i].start && addr < maps.v[i].end) {
            *start = maps.v[i].start;
            *is_main_stack = strcmp(maps.v[i].path, "[stack]") == 0;
            rc = 0;
            break;
        }
    }
    proc_maps_free(&maps);
    return rc;
}

int rcall_function(struct rcall_thread *t, uint64_t fn, const uint64_t *args, int nargs,
                   size_t min_stack, uint64_t *ret, struct error *e)
{
    if (!t->stopped)
        return error_set(e, -EINVAL, "thread %d is not stopped", (int)t->tid);
    if (nargs > 6)
        return error_set(e, -EINVAL, "at most 6 arguments");
    uint64_t sp = ((t->saved.rsp - STACK_SKIP) & ~(uint64_t)15) - 8;
    uint64_t start = 0;
    int main_stack = 0;
    if (mapping_of(t->pid, t->saved.rsp, &start, &main_stack) < 0)
        return error_set(e, -ENOSPC, "thread %d of PID %d: its stack pointer 0x%llx is not in "
                         "any mapping", (int)t->tid, (int)t->pid,
                         (unsigned long long)t->saved.rsp);
    if (!main_stack && (sp < start || sp - start < min_stack))
        return error_set(e, -ENOSPC, "thread %d of PID %d has only %llu bytes of stack left",
                         (int)t->tid, (int)t->pid, (unsigned long long)(sp > start ? sp - start : 0));
    uint64_t zero = 0;
    int rc = rcall_write(t->pid, sp, &zero, sizeof(zero));
    if (rc < 0)
        return error_set(e, rc, "cannot write the stack of PID %d: %s", (int)t->pid, strerror(-rc));

    struct user_regs_struct r = t->saved;
    r.rip = fn;
    r.rsp = sp;                 /* (sp + 8) % 16 == 0 at the first instruction, as after a call */
    r.rax = 0;                  /* no vector registers for varargs */
    r.orig_rax = (uint64_t)-1;  /* no syscall restart on the way out of the stop */
    r.eflags &= ~(uint64_t)(EFLAGS_TF | EFLAGS_DF);
    unsigned long long *slot[6] = { &r.rdi, &r.rsi, &r.rdx, &r.rcx, &r.r8, &r.r9 };
    for (int i = 0; i < nargs; i++)
        *slot[i] = args[i];
    if ((rc = put_regs(t, &r, e)) < 0)
        return rc;
    if ((rc = run_until_return(t, 0, e)) < 0)
        return rc;
    if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) < 0)
        return error_set(e, -errno, "cannot read the registers of thread %d: %s", (int)t->tid,
                         strerror(errno));
    *ret = r.rax;
    return 0;
}

/* Finds a `syscall` instruction (0f 05) in the target. */
static int find_syscall_insn(struct rcall_thread *t, struct error *e)
{
    if (t->syscall_insn)
        return 0;
    unsigned char b[2];
    if ((long)t->saved.orig_rax >= 0 && t->saved.rip >= 2 &&
        rcall_read(t->pid, t->saved.rip - 2, b, 2) == 0 && b[0] == 0x0f && b[1] == 0x05) {
        t->syscall_insn = t->saved.rip - 2;
        return 0;
    }
    struct proc_maps maps;
    int rc = proc_maps_read(t->pid, &maps);
    if (rc < 0)
        return error_set(e, rc, "cannot read /proc/%d/maps: %s", (int)t->pid, strerror(-rc));
    static unsigned char buf[65536];
    /* libc first (it has many), then any executable file mapping. */
    for (int pass = 0; pass < 2 && !t->syscall_insn; pass++) {
        for (size_t i = 0; i < maps.n && !t->syscall_insn; i++) {
            const struct proc_map *m = &maps.v[i];
            if (m->perms[2] != 'x' || m->path[0] != '/')
                continue;
            const char *base = strrchr(m->path, '/') + 1;
            int is_libc = strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0;
            if ((pass == 0) != is_libc)
                continue;
            for (uint64_t a = m->start; a < m->end && !t->syscall_insn; a += sizeof(buf) - 1) {
                size_t len = m->end - a < sizeof(buf) ? (size_t)(m->end - a) : sizeof(buf);
                if (rcall_read(t->pid, a, buf, len) < 0)
                    break;
                for (size_t k = 0; k + 1 < len; k++)
                    if (buf[k] == 0x0f && buf[k + 1] == 0x05) {
                        t->syscall_insn = a + k;
                        break;
                    }
            }
        }
    }
    proc_maps_free(&maps);
    if (!t->syscall_insn)
        return error_set(e, -ENOENT, "no syscall instruction found in PID %d", (int)t->pid);
    return 0;
}

int rcall_syscall(struct rcall_thread *t, long nr, const uint64_t *args, int nargs, int64_t *ret,
                  struct error *e)
{
    if (!t->stopped)
        return error_set(e, -EINVAL, "thread %d is not stopped", (int)t->tid);
    int rc = find_syscall_insn(t, e);
    if (rc < 0)
        return rc;
    struct user_regs_struct r = t->saved;
    r.rip = t->syscall_insn;
    r.rax = (uint64_t)nr;
    r.orig_rax = (uint64_t)-1;
    r.eflags &= ~(uint64_t)(EFLAGS_TF | EFLAGS_DF);
    unsigned long long *slot[6] = { &r.rdi, &r.rsi, &r.rdx, &r.r10, &r.r8, &r.r9 };
    for (int i = 0; i < nargs && i < 6; i++)
        *slot[i] = args[i];
    if ((rc = put_regs(t, &r, e)) < 0)
        return rc;
    if ((rc = run_until_return(t, 1, e)) < 0)
        return rc;
    if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) < 0)
        return error_set(e, -errno, "cannot read the registers of thread %d: %s", (int)t->tid,
                         strerror(errno));
    if (r.rip != t->syscall_insn + 2)
        return error_set(e, -EFAULT, "remote system call %ld in PID %d stopped at 0x%llx",
                         nr, (int)t->pid, (unsigned long long)r.rip);
    *ret = (int64_t)r.rax;
    return 0;
}

int rcall_detach(struct rcall_thread *t)
{
    int rc = 0;
    if (t->seized) {
        if (t->stopped)
            rc = restore_state(t);
        /* PTRACE_DETACH needs a stopped tracee; a running one is detached by
         * the kernel when pyflame exits. */
        if (ptrace(PTRACE_DETACH, t->tid, 0, 0) < 0 && !rc && errno != ESRCH)
            rc = -errno;
        t->seized = 0;
        t->stopped = 0;
        for (int i = 0; i < t->ndeferred; i++)
            syscall(SYS_tgkill, (int)t->pid, (int)t->tid, t->deferred[i]);
        t->ndeferred = 0;
    }
    free(t->xstate);
    t->xstate = NULL;
    unblock_signals(t);
    return rc;
}
