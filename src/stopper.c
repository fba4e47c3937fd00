/* stopper.c - ptrace stops and resumes.  See stopper.h. */
#include "stopper.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <unistd.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "clock.h"
#include "proc.h"

#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

#define SEIZE_OPTIONS (PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC)

void stopper_init(struct stopper *s)
{
    memset(s, 0, sizeof(*s));
    s->stop_timeout_ms = 250;
}

void stopper_free(struct stopper *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].stat_fd > 0)
            close(s->t[i].stat_fd);
    free(s->t);
    memset(s, 0, sizeof(*s));
}

static struct tracee *find(struct stopper *s, pid_t tid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].tid == tid)
            return &s->t[i];
    return NULL;
}

static struct tracee *add(struct stopper *s, pid_t tid, pid_t tgid)
{
    struct tracee *t = find(s, tid);
    if (t)
        return t;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct tracee *nt = realloc(s->t, cap * sizeof(*nt));
        if (!nt)
            return NULL;
        s->t = nt;
        s->cap = cap;
    }
    t = &s->t[s->n++];
    memset(t, 0, sizeof(*t));
    t->tid = tid;
    t->tgid = tgid;
    t->state = TRACEE_RUNNING;
    t->stat_fd = -1;
    t->busy = -1;
    return t;
}

static void drop(struct stopper *s, struct tracee *t)
{
    size_t i = (size_t)(t - s->t);
    if (t->stat_fd >= 0)
        close(t->stat_fd);
    s->t[i] = s->t[--s->n];
}

static void measure_busy(struct tracee *t, uint64_t now);

static int is_group_stop_sig(int sig)
{
    return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/* Records what waitpid said about tid. */
static void handle_status(struct stopper *s, pid_t tid, int status)
{
    struct tracee *t = find(s, tid);
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
        pid_t tgid = t ? t->tgid : tid;
        if (t)
            drop(s, t);
        if (tid == tgid) {
            size_t k = s->nexits++ % (sizeof(s->exits) / sizeof(s->exits[0]));
            s->exits[k].pid = tgid;
            s->exits[k].status = status;
            /* The leader reports last: whatever is left of this process is gone. */
            for (size_t i = 0; i < s->n;)
                if (s->t[i].tgid == tgid)
                    drop(s, &s->t[i]);
                else
                    i++;
        }
        return;
    }
    if (!WIFSTOPPED(status))
        return;
    if (!t) {
        /* A new thread whose first stop came before its parent's clone event. */
        long tgid = tid;
        proc_status_long(tid, "Tgid", &tgid);
        t = add(s, tid, (pid_t)tgid);
        if (!t)
            return;
    }
    int sig = WSTOPSIG(status);
    int event = (unsigned)status >> 16;
    t->state = TRACEE_STOPPED;
    /* Any ptrace stop (a signal, a clone or exec event) clears a pending
     * PTRACE_INTERRUPT trap in the kernel: the interrupt was used up either
     * way, and the next tick must send a new one. */
    t->interrupt_pending = 0;
    switch (event) {
    case PTRACE_EVENT_STOP:
        if (is_group_stop_sig(sig)) {
            /* A job-control stop of the target: keep it stopped (LISTEN on resume). */
            t->pending_sig = -sig;
        } else {
            t->new_thread = 0;
        }
        break;
    case PTRACE_EVENT_CLONE: {
        unsigned long msg = 0;
        if (ptrace(PTRACE_GETEVENTMSG, tid, NULL, &msg) == 0 && msg && !find(s, (pid_t)msg)) {
            /* Its initial stop is still to come (if it came first, the thread
             * is known already and was resumed then). */
            pid_t tgid = t->tgid;
            struct tracee *nt = add(s, (pid_t)msg, tgid);   /* may move t */
            if (nt) {
                nt->new_thread = 1;
                nt->interrupt_pending = 1;
            }
        }
        break;
    }
    case PTRACE_EVENT_EXEC:
        /* A new program: the caller must find the interpreter again. */
        t->fs_known = 0;
        if (s->nexeced < sizeof(s->execed) / sizeof(s->execed[0]))
            s->execed[s->nexeced++] = t->tgid;
        break;
    case 0:
        /* Signal-delivery-stop: the signal is the target's; give it back. */
        t->pending_sig = sig;
        break;
    default:
        break;   /* exec and others: just stopped */
    }
}

static void resume_one(struct tracee *t)
{
    if (t->state != TRACEE_STOPPED)
        return;
    if (t->pending_sig < 0) {
        t->pending_sig = 0;
        if (ptrace(PTRACE_LISTEN, t->tid, NULL, NULL) == 0) {
            t->state = TRACEE_LISTENING;
            return;
        }
    }
    int sig = t->pending_sig > 0 ? t->pending_sig : 0;
    t->pending_sig = 0;
    if (ptrace(PTRACE_CONT, t->tid, NULL, (void *)(long)sig) == 0 || errno == ESRCH)
        t->state = TRACEE_RUNNING;
}

/* 1 if the thread is gone or on its way out (a zombie or dead). */
static int thread_exiting(pid_t pid, pid_t tid)
{
    char st = proc_thread_state(pid, tid);
    return st == 0 || st == 'Z' || st == 'X';
}

int stopper_attach(struct stopper *s, pid_t pid, struct error *e)
{
    /* Seize threads until a rescan finds no new ones (threads may be created
     * meanwhile by threads not yet seized). */
    for (int round = 0; round < 100; round++) {
        pid_t *tids = NULL;
        size_t n = 0;
        int rc = proc_tasks(pid, &tids, &n);
        if (rc < 0)
            return error_set(e, rc, "Failed to seize PID %d: %s", (int)pid,
                             rc == -ENOENT ? "No such process" : strerror(-rc));
        int added = 0;
        for (size_t i = 0; i < n; i++) {
            if (find(s, tids[i]))
                continue;
            if (ptrace(PTRACE_SEIZE, tids[i], NULL, (void *)(long)SEIZE_OPTIONS) != 0) {
                int err = errno;
                if (tids[i] != pid && (err == ESRCH || (err == EPERM && thread_exiting(pid, tids[i]))))
                    continue;   /* the thread ended meanwhile (an exiting one refuses with EPERM) */
                free(tids);
                stopper_detach(s, pid);
                return error_set(e, -err, "Failed to seize PID %d: %s", (int)pid, strerror(err));
            }
            struct tracee *t = add(s, tids[i], pid);
            if (!t) {
                free(tids);
                stopper_detach(s, pid);
                return error_set(e, -ENOMEM, "out of memory");
            }
            if (s->want_states)
                measure_busy(t, clock_ns(CLOCK_MONOTONIC));   /* the baseline */
            added++;
        }
        free(tids);
        if (!added)
            return 0;
    }
    return 0;
}

/* Waits for tid's next report until deadline_ns (with nohang: only takes one
 * that is there).  0, -ETIMEDOUT, or -errno (ECHILD: not ours any more). */
static int wait_one(pid_t tid, int *status, uint64_t deadline_ns, int nohang)
{
    for (;;) {
        pid_t r = waitpid(tid, status, __WALL | (nohang ? WNOHANG : 0));
        if (r == tid)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0 && errno == EINTR) {
            if (clock_ns(CLOCK_MONOTONIC) >= deadline_ns)
                return -ETIMEDOUT;
            continue;
        }
        return -errno;   /* ECHILD: not ours any more */
    }
}

void stopper_timer(int on)
{
    /* A tick every 25 ms interrupts a wait for a thread that does not stop,
     * so that wait_one() can give up at its deadline.  One timer for the
     * whole run costs nothing per stop. */
    struct itimerval it;
    memset(&it, 0, sizeof(it));
    if (on) {
        it.it_value.tv_usec = 25000;
        it.it_interval.tv_usec = 25000;
    }
    setitimer(ITIMER_REAL, &it, NULL);
}

/* Updates t->busy from its CPU time (schedstat's first field, in ns), read
 * through a descriptor kept open. */
static void measure_busy(struct tracee *t, uint64_t now)
{
    char buf[128];
    if (t->stat_fd < 0) {
        char path[96];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)t->tgid, (int)t->tid);
        t->stat_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (t->stat_fd < 0) {
            t->busy = -1;
            return;
        }
    }
    ssize_t n = pread(t->stat_fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0) {
        t->busy = -1;
        return;
    }
    buf[n] = '\0';
    uint64_t cpu = strtoull(buf, NULL, 10);
    if (t->seen_ns && now > t->seen_ns)
        t->busy = (cpu - t->cpu_ns) * 10 >= now - t->seen_ns;
    else
        t->busy = -1;
    t->cpu_ns = cpu;
    t->seen_ns = now;
}

static void learn_fs_base(struct tracee *t)
{
    struct user_regs_struct regs;
    if (t->fs_known || t->state != TRACEE_STOPPED)
        return;
    if (ptrace(PTRACE_GETREGS, t->tid, NULL, &regs) == 0) {
        t->fs_base = regs.fs_base;
        t->fs_known = 1;
    }
}

pid_t stopper_tid_for_pthread(const struct stopper *s, pid_t pid, uint64_t pthread)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].tgid == pid && s->t[i].fs_known && s->t[i].fs_base == pthread)
            return s->t[i].tid;
    return 0;
}

int stopper_busy(const struct stopper *s, pid_t tid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].tid == tid)
            return s->t[i].busy;
    return -1;
}

int stopper_stop(struct stopper *s, pid_t pid)
{
    if (s->want_states) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        for (size_t i = 0; i < s->n; i++)
            if (!pid || s->t[i].tgid == pid)
                measure_busy(&s->t[i], now);
    }
    for (size_t i = 0; i < s->n; i++) {
        struct tracee *t = &s->t[i];
        if ((pid && t->tgid != pid) || t->state != TRACEE_RUNNING || t->interrupt_pending)
            continue;
        if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) == 0 || errno == ESRCH)
            t->interrupt_pending = 1;
    }
    uint64_t deadline = clock_ns(CLOCK_MONOTONIC) + s->stop_timeout_ms * 1000000ULL;
    int stopped = 0, late = 0;
    for (size_t i = 0; i < s->n;) {
        struct tracee *t = &s->t[i];
        if ((pid && t->tgid != pid) || t->state != TRACEE_RUNNING) {
            i++;
            continue;
        }
        int status;
        pid_t tid = t->tid;
        int rc = wait_one(tid, &status, deadline, late);
        if (rc == -ETIMEDOUT) {
            /* It did not stop in time.  Sample without it, ask it again at the
             * next tick, and still take the stops of the others that are
             * there (without waiting), so that they are resumed with the rest. */
            late = 1;
            t->interrupt_pending = 0;
            i++;
            continue;
        }
        if (rc < 0) {
            drop(s, t);   /* gone */
            continue;
        }
        size_t before = s->n;
        handle_status(s, tid, status);
        /* The array may have changed: restart the scan if it shrank. */
        if (s->n < before)
            i = 0;
    }
    for (size_t i = 0; i < s->n; i++) {
        if ((!pid || s->t[i].tgid == pid) && s->t[i].state != TRACEE_RUNNING) {
            learn_fs_base(&s->t[i]);
            stopped++;
        }
    }
    return stopped;
}

void stopper_resume(struct stopper *s, pid_t pid)
{
    for (size_t i = 0; i < s->n; i++)
        if (!pid || s->t[i].tgid == pid)
            resume_one(&s->t[i]);
}

void stopper_poll(struct stopper *s)
{
    for (int k = 0; k < 10000; k++) {
        int status;
        pid_t tid = waitpid(-1, &status, __WALL | WNOHANG);
        if (tid <= 0)
            break;
        handle_status(s, tid, status);
        struct tracee *t = find(s, tid);
        if (t)
            resume_one(t);
    }
    /* A listening thread that got SIGCONT reports again; one that did not stays put. */
}

pid_t stopper_take_exec(struct stopper *s)
{
    if (!s->nexeced)
        return 0;
    pid_t pid = s->execed[0];
    memmove(s->execed, s->execed + 1, (s->nexeced - 1) * sizeof(s->execed[0]));
    s->nexeced--;
    return pid;
}

size_t stopper_count(const struct stopper *s, pid_t pid)
{
    size_t c = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!pid || s->t[i].tgid == pid)
            c++;
    return c;
}

int stopper_exit_status(const struct stopper *s, pid_t pid, int *status)
{
    size_t cap = sizeof(s->exits) / sizeof(s->exits[0]);
    size_t n = s->nexits < cap ? s->nexits : cap;
    for (size_t i = 0; i < n; i++)
        if (s->exits[i].pid == pid) {
            *status = s->exits[i].status;
            return 1;
        }
    return 0;
}

int stopper_alive(const struct stopper *s, pid_t pid)
{
    return stopper_count(s, pid) > 0;
}

void stopper_detach(struct stopper *s, pid_t pid)
{
    stopper_stop(s, pid);
    for (size_t i = 0; i < s->n;) {
        struct tracee *t = &s->t[i];
        if (pid && t->tgid != pid) {
            i++;
            continue;
        }
        int sig = t->pending_sig > 0 ? t->pending_sig : 0;
        if (t->state != TRACEE_RUNNING)
            ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)sig);
        drop(s, t);
    }
}
