/*
 * remote_call.h - calling functions and system calls inside ONE thread of
 * another process with ptrace (x86-64 Linux only).
 *
 * Only the thread given to rcall_attach is stopped; every other thread of the
 * target keeps running (so a lock or the GIL held elsewhere can be released
 * while the hijacked thread waits for it).
 *
 * The safety recipe:
 *   - PTRACE_SEIZE + PTRACE_INTERRUPT (no SIGSTOP is ever sent, so no group
 *     stop freezes the other threads and nothing is left pending);
 *   - the general registers AND the extended FPU/SSE/AVX state (NT_X86_XSTATE,
 *     else the FXSAVE area) are saved at the stop and written back exactly at
 *     rcall_detach, whatever happened in between;
 *   - during a call orig_rax is -1, so the kernel's syscall-restart fix-up is
 *     not applied to the registers of the call; at rcall_detach the saved
 *     orig_rax / rax (-ERESTART*) are put back, so a thread that was stopped
 *     inside a blocking system call restarts that call (restart_syscall for
 *     -ERESTART_RESTARTBLOCK) and the program never sees EINTR;
 *   - the callee runs on the thread's own stack 256 bytes below its stack
 *     pointer (past the 128-byte red zone), 16-byte aligned at the call, with
 *     a return address of 0: the SIGSEGV at address 0 means "returned";
 *     a SIGSEGV anywhere else means the callee crashed (reported, and the
 *     registers are still restored);
 *   - signals that arrive for the thread during a call are held back and
 *     re-sent to the thread (tgkill) after it is detached;
 *   - a group stop (SIGSTOP from outside) during a call is passed through
 *     for this one thread so the call can finish;
 *   - SIGINT/SIGTERM/SIGHUP/SIGQUIT are blocked in pyflame from attach to
 *     detach, so a Ctrl-C cannot leave the thread pointing at a half-done
 *     call.  (SIGKILL of pyflame mid-call cannot be blocked: the kernel then
 *     detaches and the target dies of the SIGSEGV sentinel.)
 *
 * A call has no time limit: it cannot be abandoned safely once started (the
 * thread would "return" to address 0).  Callers only make calls that are
 * known to finish (see inject.c for which, and why).
 */
#ifndef PYFLAME_REMOTE_CALL_H
#define PYFLAME_REMOTE_CALL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "error.h"

struct rcall_thread {
    pid_t pid, tid;
    int seized;                      /* PTRACE_SEIZE succeeded */
    int stopped;                     /* in a ptrace-stop */
    int dirty;                       /* registers changed since the stop */
    struct user_regs_struct saved;   /* the registers at the stop */
    unsigned char *xstate;           /* saved extended state */
    size_t xstate_len;
    int xstate_note;                 /* NT_X86_XSTATE or NT_PRFPREG */
    int deferred[16];                /* signals held back during calls */
    int ndeferred;
    uint64_t syscall_insn;           /* address of a `syscall` instruction, 0 = not found yet */
    sigset_t oldmask;
    int masked;
};

/* Seizes thread tid of process pid and stops it (PTRACE_INTERRUPT), waiting at
 * most timeout_ms for the stop.  0, or -errno with a message:
 *   -ESRCH   the process or thread does not exist / exited
 *   -EPERM   not permitted (another tracer, ptrace_scope, no CAP_SYS_PTRACE)
 *   -EBUSY   the process is in a group stop (SIGSTOP'ed): refused
 *   -ETIMEDOUT the thread did not stop (uninterruptible sleep) */
int rcall_attach(struct rcall_thread *t, pid_t pid, pid_t tid, int timeout_ms, struct error *e);

/* The system call the thread was stopped in (orig_rax), or -1 when it was
 * stopped in user space. */
long rcall_stopped_syscall(const struct rcall_thread *t);

/* Lets the (unmodified) thread run for about run_us microseconds and stops it
 * again, saving its new registers.  0 or -errno. */
int rcall_rerun(struct rcall_thread *t, long run_us, struct error *e);

/* Calls fn(args[0..nargs-1]) (at most 6 integer arguments) on the thread and
 * waits for it to return; *ret gets rax.  min_stack: bytes of stack the call
 * needs below the thread's stack pointer (checked against its mapping; the
 * main thread's growable [stack] always passes).  0, or -errno:
 *   -ESRCH target exited, -EFAULT the callee crashed, -ENOSPC not enough stack. */
int rcall_function(struct rcall_thread *t, uint64_t fn, const uint64_t *args, int nargs,
                   size_t min_stack, uint64_t *ret, struct error *e);

/* Executes one system call on the thread (a `syscall` instruction found in
 * the target, single-stepped).  *ret gets the raw result (-errno on failure). */
int rcall_syscall(struct rcall_thread *t, long nr, const uint64_t *args, int nargs, int64_t *ret,
                  struct error *e);

/* Restores the saved registers exactly, detaches, re-sends held-back signals
 * and unblocks pyflame's signals.  Safe to call on a thread that was never
 * attached.  0, or -errno when restoring failed (the thread is detached
 * anyway if it still exists). */
int rcall_detach(struct rcall_thread *t);

/* Remote memory: process_vm_writev / process_vm_readv, /proc/PID/mem as the
 * fallback (which can also write read-only pages of a traced process). */
int rcall_write(pid_t pid, uint64_t addr, const void *buf, size_t len);
int rcall_read(pid_t pid, uint64_t addr, void *buf, size_t len);

#endif
