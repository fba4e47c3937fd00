/*
 * stopper.h - stopping and resuming the target's threads with ptrace.
 *
 * Every thread of a traced process is PTRACE_SEIZEd once (new threads are
 * picked up through PTRACE_O_TRACECLONE).  Per tick, stopper_stop() brings all
 * of them to a ptrace-stop (PTRACE_INTERRUPT, then wait for each), and
 * stopper_resume() lets them go again.  Signals that arrive for the target
 * while it is traced are re-delivered, never swallowed; job-control stops are
 * kept with PTRACE_LISTEN.  stopper_detach() leaves every thread running and
 * untraced, on every path out of the program.
 */
#ifndef PYFLAME_STOPPER_H
#define PYFLAME_STOPPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "error.h"

enum tracee_state { TRACEE_RUNNING, TRACEE_STOPPED, TRACEE_LISTENING };

struct tracee {
    pid_t tid;
    pid_t tgid;
    enum tracee_state state;
    int pending_sig;          /* a signal to re-deliver on the next resume */
    int interrupt_pending;    /* PTRACE_INTERRUPT sent, its stop not yet seen */
    int new_thread;           /* created during the run: its first stop is pending */
    uint64_t fs_base;         /* its thread pointer (= pthread_self() on x86-64 glibc) */
    int fs_known;
    int stat_fd;              /* /proc/PID/task/TID/schedstat, kept open when wanted */
    uint64_t cpu_ns, seen_ns; /* its CPU time at our last look, and when that was */
    int busy;                 /* ran on a CPU for a real share of the last interval:
                                 1 yes, 0 no, -1 unknown */
};

struct stopper {
    struct tracee *t;
    size_t n, cap;
    struct { pid_t pid; int status; } exits[64];   /* traced processes that exited */
    size_t nexits;            /* (a ring: the newest 64 are kept) */
    unsigned long stop_timeout_ms;  /* how long to wait for one thread to stop */
    int want_states;          /* measure each thread's CPU use before stopping it */
    pid_t execed[16];         /* processes that called execve since the last look */
    size_t nexeced;
};

void stopper_init(struct stopper *s);

/* Seizes every thread of pid.  0, or -errno with a message in e. */
int stopper_attach(struct stopper *s, pid_t pid, struct error *e);

/* Stops every thread of pid (0 = of every traced process).  Returns the number
 * of threads stopped; threads that vanish are dropped. */
int stopper_stop(struct stopper *s, pid_t pid);

/* Resumes the stopped threads of pid (0 = all), re-delivering pending signals. */
void stopper_resume(struct stopper *s, pid_t pid);

/* Handles whatever the traced threads reported meanwhile, without blocking:
 * new threads, exits, signals (re-delivered at once), job-control stops. */
void stopper_poll(struct stopper *s);

/* A traced process that has executed a new program since the last call, or 0. */
pid_t stopper_take_exec(struct stopper *s);

/* Number of traced threads of pid that are alive. */
size_t stopper_count(const struct stopper *s, pid_t pid);

/* The wait status of a traced process that has exited: 1 and *status, or 0. */
int stopper_exit_status(const struct stopper *s, pid_t pid, int *status);

/* Is the process still traced and alive? */
int stopper_alive(const struct stopper *s, pid_t pid);

/* The kernel TID of the thread whose pthread_t (thread pointer) is `pthread`,
 * learnt from the registers of stopped threads; 0 when unknown. */
pid_t stopper_tid_for_pthread(const struct stopper *s, pid_t pid, uint64_t pthread);

/* Did tid run on a CPU for a real share (>= 10%) of the time since the tick
 * before (want_states)?  1 yes, 0 no, -1 unknown.  Measured from its CPU time
 * in /proc/PID/task/TID/schedstat, which our own stops do not distort the way
 * a state letter read right after a resume would. */
int stopper_busy(const struct stopper *s, pid_t tid);

/* Starts (on = 1) or stops the interval timer that bounds every wait for a
 * thread to stop (SIGALRM, which must have a handler without SA_RESTART).
 * Keep it off while writing files: it interrupts system calls. */
void stopper_timer(int on);

/* Detaches from every thread of pid (0 = all), leaving them running. */
void stopper_detach(struct stopper *s, pid_t pid);

void stopper_free(struct stopper *s);

#endif
