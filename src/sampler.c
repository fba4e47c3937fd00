/*
 * sampler.c - the sampling loop.  See sampler.h.
 *
 * Per tick and per process: stop (stopper), read (reader) into a frame
 * pool, resume, and only then turn what was read into profile records, so
 * the target is stopped for the reads alone.
 */
#include "sampler.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "mem.h"
#include "proc.h"
#include "proctree.h"
#include "reader.h"
#include "signals.h"
#include "stopper.h"
#include "target.h"

#define FRAME_POOL      (64 * 1024)
#define MAX_TICK_THREADS 1024
#define KNOWN_THREADS   4096
/* Launch mode: how long a command may run without showing a Python interpreter. */
#define LAUNCH_FIND_TIMEOUT_NS (10ULL * 1000000000ULL)

struct known_thread {
    uint64_t tstate, thread_id;
    pid_t tid;                   /* host TID */
    pid_t ns_tid;                /* as the target's PID namespace (and Python) calls it */
    uint32_t pf_thread;
};

struct sproc {
    pid_t pid;
    int alive;
    int started;                 /* the interpreter has shown a first frame */
    struct pytarget target;
    struct mem mem;
    struct pyreader reader;
    int reader_ok;
    uint32_t pf_process;
    uint32_t pf_nothread;        /* the thread used for idle/failed ticks */
    struct known_thread *known;
    size_t nknown;
    int warned_finalizing;
    int is_root;                 /* named by -p or launched; not a subprocess */
    unsigned long ticks_seen;    /* ticks at which it was sampled */
};

/* A process seen not to be Python, and the program it ran then. */
struct ignored {
    pid_t pid;
    char exe[256];
};

/* The stack a thread showed at its last sample, to skip re-interning it. */
struct last_stack {
    uint64_t hash;
    uint32_t n;
    uint32_t stack;
};

/* What one thread looked like at one tick. */
struct tick_thread {
    struct sproc *sp;
    uint32_t pf_thread;
    enum sample_kind kind;
    int gil;
    size_t off, n;
};

struct sampler {
    const struct options *o;
    struct profile *p;
    struct stopper st;
    struct sproc **procs;        /* pointers: a reader points into its sproc */
    size_t nprocs, procs_cap;
    pid_t roots[OPTIONS_MAX_PIDS];
    size_t nroots;
    struct ignored *ignored;     /* descendants that are not Python (--subprocesses) */
    size_t nignored, ignored_cap;
    uint64_t next_scan;
    uint64_t next_liveness;      /* non-blocking mode: when to look at /proc again */
    pid_t child;
    int child_status;
    struct rframe *pool;
    size_t pool_used;
    struct tick_thread tt[MAX_TICK_THREADS];
    size_t ntt;
    uint32_t *ids;               /* scratch: frame ids of one stack */
    struct last_stack *last;     /* per profile thread: the stack it showed last */
    size_t nlast;
    uint32_t tick;
};

/* ---- threads --------------------------------------------------------------- */

static uint32_t thread_for(struct sampler *s, struct sproc *sp, struct rthread *t)
{
    for (size_t i = 0; i < sp->nknown; i++)
        if (sp->known[i].tstate == t->tstate && sp->known[i].thread_id == t->thread_id &&
            sp->known[i].ns_tid == t->native_id) {
            t->native_id = sp->known[i].tid;
            return sp->known[i].pf_thread;
        }
    /* native_thread_id (3.11+) is the TID in the target's own PID namespace:
     * make it the host's, which /proc and ptrace know. */
    pid_t ns_tid = t->native_id;
    if (t->native_id > 0)
        t->native_id = proc_host_tid(sp->pid, t->native_id);
    else if (!s->o->nonblocking)   /* before 3.11: from the thread pointer (host TID) */
        t->native_id = stopper_tid_for_pthread(&s->st, sp->pid, t->thread_id);
    char name[64];
    const char *namep = NULL;
    if (t->native_id > 0 && proc_thread_name(sp->pid, t->native_id, name, sizeof(name)) == 0)
        namep = name;
    uint32_t id = profile_thread(s->p, sp->pf_process, t->native_id, t->thread_id, namep);
    if (id == PF_NONE)
        return sp->pf_nothread;
    if (sp->nknown < KNOWN_THREADS) {
        struct known_thread *k = &sp->known[sp->nknown++];
        k->tstate = t->tstate;
        k->thread_id = t->thread_id;
        k->tid = t->native_id;
        k->ns_tid = ns_tid;
        k->pf_thread = id;
    }
    return id;
}

/* ---- one tick -------------------------------------------------------------- */

static void add_tt(struct sampler *s, struct sproc *sp, uint32_t thread, enum sample_kind kind,
                   int gil, size_t off, size_t n)
{
    if (s->ntt >= MAX_TICK_THREADS)
        return;
    struct tick_thread *x = &s->tt[s->ntt++];
    x->sp = sp;
    x->pf_thread = thread;
    x->kind = kind;
    x->gil = gil;
    x->off = off;
    x->n = n;
}

/* Reads one thread's stack into the pool; returns 0, or <0 for a failed read. */
static int read_stack(struct sampler *s, struct sproc *sp, const struct rthread *t, size_t *off,
                      size_t *n)
{
    size_t room = FRAME_POOL - s->pool_used;
    if (room > READER_MAX_DEPTH)
        room = READER_MAX_DEPTH;
    if (room == 0)
        return -ENOSPC;
    *off = s->pool_used;
    int rc = reader_stack(&sp->reader, t, s->pool + s->pool_used, room, n);
    if (rc == -E2BIG)
        rc = 0;   /* truncated at the root end: keep the leaf-most frames */
    if (rc == 0)
        s->pool_used += *n;
    return rc;
}

/* Reads one thread: its state and its stack.  In non-blocking mode the read
 * races with the running target, so it is verified afterwards and retried
 * when the stack changed under it; a stack that keeps changing is a failed
 * sample, never a wrong one. */
static int read_thread(struct sampler *s, struct sproc *sp, uint64_t tstate, struct rthread *t,
                       size_t *off, size_t *n)
{
    int nonblocking = s->o->nonblocking;
    int rc = -EFAULT;
    for (int attempt = 0; attempt < (nonblocking ? 8 : 1); attempt++) {
        size_t save = s->pool_used;
        if (nonblocking && attempt > 0)
            mem_cache_reset(&sp->mem);   /* the stack changed: read it afresh */
        rc = reader_thread(&sp->reader, tstate, t);
        if (rc == 0)
            rc = read_stack(s, sp, t, off, n);
        if (rc == 0 && nonblocking)
            rc = reader_verify(&sp->reader, t);
        if (rc == 0)
            return 0;
        s->pool_used = save;
    }
    return rc;
}

/* Reads what one process shows at this tick (the target is stopped, unless
 * non-blocking).  Returns 1 if the interpreter is up, 0 if not yet. */
static int sample_process(struct sampler *s, struct sproc *sp)
{
    struct pyreader *r = &sp->reader;
    uint64_t interp = 0, holder = 0;
    if (reader_interp(r, &interp) < 0) {
        add_tt(s, sp, sp->pf_nothread, SAMPLE_FAILED, 0, 0, 0);
        return 1;
    }
    if (!interp)
        return 0;   /* not initialised yet */
    if (reader_gil_holder(r, interp, &holder) < 0) {
        add_tt(s, sp, sp->pf_nothread, SAMPLE_FAILED, 0, 0, 0);
        return 1;
    }

    if (!s->o->threads) {
        struct rthread t;
        size_t off = 0, n = 0;
        if (!holder) {
            add_tt(s, sp, sp->pf_nothread, SAMPLE_IDLE, 0, 0, 0);
            return 1;
        }
        if (read_thread(s, sp, holder, &t, &off, &n) < 0) {
            add_tt(s, sp, sp->pf_nothread, SAMPLE_FAILED, 1, 0, 0);
            return 1;
        }
        if (n == 0) {
            add_tt(s, sp, sp->pf_nothread, SAMPLE_IDLE, 0, 0, 0);
            return 1;
        }
        add_tt(s, sp, thread_for(s, sp, &t), SAMPLE_STACK, 1, off, n);
        return 1;
    }

    uint64_t tstates[512];
    size_t nts = 0;
    if (reader_threads(r, interp, tstates, sizeof(tstates) / sizeof(tstates[0]), &nts) < 0) {
        add_tt(s, sp, sp->pf_nothread, SAMPLE_FAILED, 0, 0, 0);
        return 1;
    }
    size_t with_frames = 0, first = s->ntt;
    for (size_t i = 0; i < nts; i++) {
        struct rthread t;
        size_t off = 0, n = 0;
        int gil = tstates[i] == holder;
        if (read_thread(s, sp, tstates[i], &t, &off, &n) < 0) {
            add_tt(s, sp, t.tstate ? thread_for(s, sp, &t) : sp->pf_nothread, SAMPLE_FAILED, gil, 0, 0);
            continue;
        }
        uint32_t id = thread_for(s, sp, &t);
        if (n == 0)
            continue;   /* a thread with no Python frame has nothing to show */
        with_frames++;
        if (s->o->exclude_idle && !gil && t.native_id &&
            stopper_busy(&s->st, t.native_id) == 0)
            continue;   /* -x: neither holds the GIL nor ran on a CPU: idle */
        add_tt(s, sp, id, SAMPLE_STACK, gil, off, n);
    }
    if (with_frames == 0 && s->ntt == first)
        add_tt(s, sp, sp->pf_nothread, SAMPLE_IDLE, 0, 0, 0);
    return 1;
}

static int thread_filtered_out(struct sampler *s, const struct tick_thread *x)
{
    const struct options *o = s->o;
    if (o->gil_only && x->kind == SAMPLE_STACK && !x->gil)
        return 1;
    if (!o->nthread_filters || x->kind != SAMPLE_STACK)
        return 0;
    const struct pf_thread *t = profile_thread_get(s->p, x->pf_thread);
    if (!t)
        return 1;
    for (int i = 0; i < o->nthread_filters; i++) {
        const char *f = o->thread_filters[i];
        char *end;
        long v = strtol(f, &end, 10);
        if (*end == '\0' && end != f && (v == t->tid || (uint64_t)v == t->thread_id))
            return 0;
        if (t->name != PF_NONE && strcmp(profile_str(s->p, t->name), f) == 0)
            return 0;
    }
    return 1;
}

static uint64_t hash_frames(const struct rframe *f, size_t n)
{
    const unsigned char *p = (const unsigned char *)f;
    size_t len = n * sizeof(*f);
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    for (; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* The stack a thread showed last time, when it shows the same frames again. */
static struct last_stack *last_for(struct sampler *s, uint32_t thread)
{
    if (thread >= s->nlast) {
        size_t n = s->nlast ? s->nlast * 2 : 64;
        while (n <= thread)
            n *= 2;
        struct last_stack *nl = realloc(s->last, n * sizeof(*nl));
        if (!nl)
            return NULL;
        memset(nl + s->nlast, 0, (n - s->nlast) * sizeof(*nl));
        s->last = nl;
        s->nlast = n;
    }
    return &s->last[thread];
}

/* Turns the tick's reads into profile records (after the target resumed). */
static int record_tick(struct sampler *s, uint64_t now_real)
{
    for (size_t i = 0; i < s->ntt; i++) {
        struct tick_thread *x = &s->tt[i];
        if (thread_filtered_out(s, x))
            continue;
        uint32_t stack = PF_NONE;
        struct last_stack *last = NULL;
        uint64_t h = 0;
        if (x->kind == SAMPLE_STACK) {
            h = hash_frames(s->pool + x->off, x->n);
            last = last_for(s, x->pf_thread);
            if (last && last->n == x->n && last->hash == h && last->stack != 0)
                stack = last->stack - 1;
        }
        if (x->kind == SAMPLE_STACK && stack == PF_NONE) {
            /* pool holds leaf first; the profile wants root first */
            for (size_t k = 0; k < x->n; k++) {
                const struct rframe *rf = &s->pool[x->off + x->n - 1 - k];
                struct pf_frame f = { rf->file, rf->name, rf->qualname, rf->line, rf->firstlineno };
                s->ids[k] = profile_frame(s->p, &f);
                if (s->ids[k] == PF_NONE)
                    return -ENOMEM;
            }
            stack = profile_stack(s->p, s->ids, x->n);
            if (stack == PF_NONE)
                return -ENOMEM;
            if (last) {
                last->hash = h;
                last->n = (uint32_t)x->n;
                last->stack = stack + 1;
            }
        }
        if (profile_add(s->p, x->pf_thread, stack, x->kind, x->gil, now_real, s->tick) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- setup ----------------------------------------------------------------- */

static int setup_reader(struct sampler *s, struct sproc *sp, struct error *e);

static int setup_process(struct sampler *s, struct sproc *sp, pid_t pid, struct error *e)
{
    memset(sp, 0, sizeof(*sp));
    sp->pid = pid;
    int rc = target_discover(pid, s->o->abi, &sp->target, e);
    if (rc < 0)
        return rc;
    rc = setup_reader(s, sp, e);
    if (rc < 0)
        return rc;
    sp->alive = 1;
    sp->started = s->child != pid;   /* attach mode counts idle time from the start */
    return 0;
}

/* The memory, reader and profile entries of a process whose target is known. */
static int setup_reader(struct sampler *s, struct sproc *sp, struct error *e)
{
    pid_t pid = sp->pid;
    int rc;
    mem_init(&sp->mem, pid);
    mem_faults_from_env(&sp->mem);
    if (mem_cache_enable(&sp->mem) < 0)
        return error_set(e, -ENOMEM, "out of memory");
    rc = reader_init(&sp->reader, &sp->target, &sp->mem, s->p);
    if (rc < 0)
        return error_set(e, rc, "out of memory");
    sp->reader_ok = 1;
    sp->reader.record_trail = s->o->nonblocking;
    char cmdline[512] = "";
    proc_cmdline(pid, cmdline, sizeof(cmdline));
    sp->pf_process = profile_process(s->p, pid, cmdline);
    sp->pf_nothread = profile_thread(s->p, sp->pf_process, 0, 0, NULL);
    sp->known = calloc(KNOWN_THREADS, sizeof(*sp->known));
    if (sp->pf_process == PF_NONE || sp->pf_nothread == PF_NONE || !sp->known)
        return error_set(e, -ENOMEM, "out of memory");
    snprintf(profile_meta(s->p)->python_version, sizeof(profile_meta(s->p)->python_version), "%s",
             sp->target.version_str);
    return 0;
}

static void sproc_release(struct sproc *sp)
{
    if (sp->reader_ok)
        reader_free(&sp->reader);
    sp->reader_ok = 0;
    mem_close(&sp->mem);
    free(sp->known);
    sp->known = NULL;
}

static void teardown(struct sampler *s)
{
    for (size_t i = 0; i < s->nprocs; i++) {
        sproc_release(s->procs[i]);
        free(s->procs[i]);
    }
    free(s->procs);
    free(s->ignored);
    free(s->pool);
    free(s->ids);
    free(s->last);
    stopper_free(&s->st);
}

/* Attach-mode errors name the cause where we can tell it. */
static int attach_error(pid_t pid, int rc, struct error *e)
{
    if (rc != -EPERM)
        return rc;
    /* Another tracer holds the process, or one of its threads. */
    pid_t *tids = NULL;
    size_t n = 0;
    long tracer = 0;
    if (proc_tasks(pid, &tids, &n) == 0) {
        for (size_t i = 0; i < n && tracer <= 0; i++) {
            char path[96], buf[4096];
            snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tids[i]);
            FILE *f = fopen(path, "re");
            if (!f)
                continue;
            while (fgets(buf, sizeof(buf), f))
                if (strncmp(buf, "TracerPid:", 10) == 0)
                    tracer = strtol(buf + 10, NULL, 10);
            fclose(f);
            if (tracer > 0 && tids[i] != pid) {
                pid_t tid = tids[i];
                free(tids);
                return error_set(e, rc, "Failed to seize PID %d: its thread %d is already traced "
                                 "by PID %ld", (int)pid, (int)tid, tracer);
            }
        }
        free(tids);
    }
    if (tracer > 0)
        return error_set(e, rc, "Failed to seize PID %d: it is already traced by PID %ld", (int)pid,
                         tracer);
    return error_set(e, rc, "Failed to seize PID %d: Operation not permitted (%s)", (int)pid,
                     TARGET_PERMISSION_HINT);
}

/* Adds a process: finds its interpreter and (blocking mode) seizes it. */
static int add_process(struct sampler *s, pid_t pid, int attach, struct error *e)
{
    if (s->nprocs == s->procs_cap) {
        size_t cap = s->procs_cap ? s->procs_cap * 2 : 8;
        struct sproc **np = realloc(s->procs, cap * sizeof(*np));
        if (!np)
            return error_set(e, -ENOMEM, "out of memory");
        s->procs = np;
        s->procs_cap = cap;
    }
    struct sproc *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return error_set(e, -ENOMEM, "out of memory");
    int rc = setup_process(s, sp, pid, e);
    if (rc == 0 && attach && !s->o->nonblocking) {
        rc = stopper_attach(&s->st, pid, e);
        if (rc < 0)
            rc = attach_error(pid, rc, e);
    }
    if (rc < 0) {
        sproc_release(sp);
        free(sp);
        return rc;
    }
    s->procs[s->nprocs++] = sp;
    if (sp->reader.warning[0])
        fprintf(stderr, "pyflame: %s\n", sp->reader.warning);
    return 0;
}

static struct sproc *find_process(struct sampler *s, pid_t pid)
{
    for (size_t i = 0; i < s->nprocs; i++)
        if (s->procs[i]->pid == pid && s->procs[i]->alive)
            return s->procs[i];
    return NULL;
}

static void exe_of(pid_t pid, char *buf, size_t cap)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(link, buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
}

/* Is pid known not to be Python, running the same program as when we looked? */
static int is_ignored(struct sampler *s, pid_t pid)
{
    for (size_t k = 0; k < s->nignored; k++) {
        if (s->ignored[k].pid != pid)
            continue;
        char exe[256];
        exe_of(pid, exe, sizeof(exe));
        if (strcmp(exe, s->ignored[k].exe) == 0)
            return 1;
        s->ignored[k] = s->ignored[--s->nignored];   /* it ran something new: look again */
        return 0;
    }
    return 0;
}

static void ignore(struct sampler *s, pid_t pid)
{
    if (s->nignored == s->ignored_cap) {
        size_t cap = s->ignored_cap ? s->ignored_cap * 2 : 64;
        if (cap > 65536)
            return;
        struct ignored *ni = realloc(s->ignored, cap * sizeof(*ni));
        if (!ni)
            return;
        s->ignored = ni;
        s->ignored_cap = cap;
    }
    s->ignored[s->nignored].pid = pid;
    exe_of(pid, s->ignored[s->nignored].exe, sizeof(s->ignored[0].exe));
    s->nignored++;
}

static void consider(struct sampler *s, pid_t pid)
{
    if (find_process(s, pid) || is_ignored(s, pid))
        return;
    struct error e = { 0, "" };
    if (add_process(s, pid, 1, &e) < 0 && (e.code == -ENOENT || e.code == -ENOTSUP))
        ignore(s, pid);
}

/* --subprocesses: picks up new Python descendants of the roots (and a
 * launched root that was not Python yet). */
static void scan_descendants(struct sampler *s)
{
    pid_t *pids = NULL;
    size_t n = 0;
    if (s->child > 0 && s->child_status == -1)
        consider(s, s->child);
    if (proctree_descendants(s->roots, s->nroots, &pids, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++)
        consider(s, pids[i]);
    free(pids);
}

/* A traced process executed a new program: find its interpreter again. */
static void handle_execs(struct sampler *s)
{
    pid_t pid;
    while ((pid = stopper_take_exec(&s->st)) != 0) {
        struct sproc *sp = find_process(s, pid);
        if (!sp)
            continue;
        sproc_release(sp);
        struct error e = { 0, "" };
        if (target_discover(pid, s->o->abi, &sp->target, &e) < 0 || setup_reader(s, sp, &e) < 0) {
            /* No Python any more: let it go. */
            sproc_release(sp);
            sp->alive = 0;
            stopper_detach(&s->st, pid);
        }
    }
}

/* Launch mode: wait until the child maps a Python interpreter.  With
 * --subprocesses the child need not be Python itself. */
static int wait_for_python(struct sampler *s, struct error *e)
{
    uint64_t deadline = clock_ns(CLOCK_MONOTONIC) + LAUNCH_FIND_TIMEOUT_NS;
    uint64_t delay_ns = 200000;
    for (;;) {
        struct error tmp = { 0, "" };
        int rc = add_process(s, s->child, 1, &tmp);
        if (rc == 0)
            return 0;
        if (rc != -ENOENT && rc != -ESRCH) {
            *e = tmp;
            return rc;
        }
        if (s->o->subprocesses)
            return 0;   /* a shell or a launcher: its Python children are found later */
        int status;
        pid_t w = waitpid(s->child, &status, WNOHANG);
        if (w == s->child) {
            s->child_status = status;
            return error_set(e, -ECHILD, "Failed to locate libpython: the command exited (%s %d) "
                             "before a Python interpreter was found",
                             WIFEXITED(status) ? "status" : "signal",
                             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
        if (signals_pending & SIGNALS_STOP)
            return error_set(e, -EINTR, "interrupted before a Python interpreter was found");
        if (clock_ns(CLOCK_MONOTONIC) > deadline)
            return error_set(e, -ENOENT, "Failed to locate libpython within timeout period (%llu s): "
                             "PID %d (%s) does not look like a Python process; it is left running",
                             LAUNCH_FIND_TIMEOUT_NS / 1000000000ULL, (int)s->child, s->o->command[0]);
        struct timespec ts = ns_to_timespec(delay_ns);
        nanosleep(&ts, NULL);
        if (delay_ns < 5000000)
            delay_ns += delay_ns / 2;
    }
}

/* ---- the loop -------------------------------------------------------------- */

static int any_alive(struct sampler *s)
{
    if (s->child > 0)
        return s->child_status == -1;   /* launch mode: until the command exits */
    for (size_t i = 0; i < s->nprocs; i++)
        if (s->procs[i]->alive && s->procs[i]->is_root)
            return 1;
    return 0;
}

/* Whether a sample recorded since index `from` of this tick failed. */
static int tick_failed(const struct sampler *s, size_t from)
{
    for (size_t k = from; k < s->ntt; k++)
        if (s->tt[k].kind == SAMPLE_FAILED)
            return 1;
    return 0;
}

/* Non-blocking: whether sp has exited (or is exiting); if so it is marked
 * dead, and the status of our own child is taken. */
static int gone_now(struct sampler *s, struct sproc *sp)
{
    if (s->child == sp->pid) {
        int status;
        if (waitpid(sp->pid, &status, WNOHANG) == sp->pid) {
            s->child_status = status;
            sp->alive = 0;
        } else if (!proc_alive(sp->pid)) {
            sp->alive = 0;   /* a zombie: reaped later */
        }
    } else if ((kill(sp->pid, 0) < 0 && errno == ESRCH) || !proc_alive(sp->pid)) {
        sp->alive = 0;
    }
    return !sp->alive;
}

/* Notices processes that exited (blocking mode: through the stopper). */
static void check_exits(struct sampler *s)
{
    uint64_t now = s->o->nonblocking ? clock_ns(CLOCK_MONOTONIC) : 0;
    if (s->child > 0 && s->child_status == -1 && !find_process(s, s->child)) {
        int status;
        pid_t w = waitpid(s->child, &status, WNOHANG);
        if (w == s->child || stopper_exit_status(&s->st, s->child, &status))
            s->child_status = status;
        else if (w < 0 && errno == ECHILD)
            s->child_status = 0;   /* reaped elsewhere, status unknown */
    }
    for (size_t i = 0; i < s->nprocs; i++) {
        struct sproc *sp = s->procs[i];
        if (!sp->alive)
            continue;
        if (s->o->nonblocking) {
            if (now < s->next_liveness)
                continue;   /* a gone process also shows as failed reads (see gone_now) */
            gone_now(s, sp);
        } else if (!stopper_alive(&s->st, sp->pid)) {
            sp->alive = 0;
            int status;
            if (s->child == sp->pid && stopper_exit_status(&s->st, sp->pid, &status))
                s->child_status = status;
        }
    }
    if (s->o->nonblocking && now >= s->next_liveness)
        s->next_liveness = now + 100000000ULL;
}

static void sleep_until(struct sampler *s, uint64_t deadline)
{
    for (;;) {
        if (!s->o->nonblocking)
            stopper_poll(&s->st);   /* re-deliver signals, pick up threads, notice exits */
        if (signals_pending & (SIGNALS_STOP | SIGNALS_DUMP))
            return;
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        if (now >= deadline)
            return;
        check_exits(s);
        if (!any_alive(s))
            return;
        struct timespec ts = ns_to_timespec(deadline);
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (rc == 0)
            return;
        /* EINTR: a traced thread reported (SIGCHLD) or a signal for us; loop. */
    }
}

int sampler_run(const struct options *o, pid_t child, struct profile *p,
                sampler_dump_fn on_dump, void *dump_arg, struct sampler_result *res,
                struct error *e)
{
    struct sampler s;
    memset(&s, 0, sizeof(s));
    memset(res, 0, sizeof(*res));
    res->child_status = -1;
    s.o = o;
    s.p = p;
    s.child = child;
    s.child_status = -1;
    stopper_init(&s.st);
    s.st.want_states = o->threads && o->exclude_idle;
    s.pool = malloc(FRAME_POOL * sizeof(*s.pool));
    s.ids = malloc(READER_MAX_DEPTH * sizeof(*s.ids));
    if (!s.pool || !s.ids) {
        teardown(&s);
        return error_set(e, -ENOMEM, "out of memory");
    }

    /* Find every interpreter and attach to every process. */
    int rc = 0;
    if (!o->nonblocking)
        stopper_timer(1);   /* bounds every wait for a thread to stop, from here on */
    if (child > 0) {
        s.roots[s.nroots++] = child;
        rc = wait_for_python(&s, e);
    } else {
        for (int i = 0; i < o->npids && rc == 0; i++) {
            s.roots[s.nroots++] = o->pids[i];
            rc = add_process(&s, o->pids[i], 1, e);
        }
    }
    if (rc < 0) {
        stopper_detach(&s.st, 0);
        stopper_timer(0);
        res->child_status = s.child_status;
        teardown(&s);
        return rc;
    }
    for (size_t i = 0; i < s.nprocs; i++)
        s.procs[i]->is_root = 1;

    uint64_t period = o->rate > 0 ? (uint64_t)(o->rate * 1e9) : 0;
    uint64_t start = clock_ns(CLOCK_MONOTONIC);
    uint64_t end = o->seconds > 0 ? start + (uint64_t)(o->seconds * 1e9) : 0;
    uint64_t next = start;
    if (s.st.want_states) {
        /* -x with --threads judges threads by their CPU use since the tick
         * before: the first tick waits one interval after the baseline. */
        uint64_t wait = period > 10000000ULL ? period : 10000000ULL;
        struct timespec ts = ns_to_timespec(wait);
        nanosleep(&ts, NULL);
        start = next = clock_ns(CLOCK_MONOTONIC);
        end = o->seconds > 0 ? start + (uint64_t)(o->seconds * 1e9) : 0;
    }
    struct profile_meta *meta = profile_meta(p);
    meta->period_ns = period;
    int one_shot = o->seconds == 0;
    int recorded_any = 0;

    for (;;) {
        if (signals_pending & SIGNALS_STOP) {
            res->stop_signal = signals_stop_signal();
            break;
        }
        if (signals_pending & SIGNALS_DUMP) {
            signals_clear_dump();
            if (on_dump) {
                stopper_timer(0);   /* no SIGALRM while writing files */
                on_dump(p, dump_arg);
                if (!o->nonblocking)
                    stopper_timer(1);
            }
        }
        check_exits(&s);
        if (!any_alive(&s)) {
            res->all_exited = 1;
            break;
        }

        uint64_t now_real = clock_ns(CLOCK_REALTIME);
        s.ntt = 0;
        s.pool_used = 0;
        int any_started = 0;
        if (o->subprocesses && clock_ns(CLOCK_MONOTONIC) >= s.next_scan) {
            scan_descendants(&s);
            s.next_scan = clock_ns(CLOCK_MONOTONIC) + 100000000ULL;
        }
        if (!o->nonblocking)
            handle_execs(&s);
        for (size_t i = 0; i < s.nprocs; i++) {
            struct sproc *sp = s.procs[i];
            if (!sp->alive || !sp->reader_ok)
                continue;
            if (!o->nonblocking && stopper_stop(&s.st, sp->pid) == 0) {
                check_exits(&s);
                continue;
            }
            size_t before = s.ntt;
            mem_tick_begin(&sp->mem);   /* this tick's memory */
            int up = sample_process(&s, sp);
            if (!o->nonblocking)
                stopper_resume(&s.st, sp->pid);
            if (o->nonblocking && tick_failed(&s, before) && gone_now(&s, sp)) {
                s.ntt = before;   /* it exited: its reads failed, no failed sample */
                continue;
            }
            if (!up) {
                s.ntt = before;   /* not started yet (launch mode): nothing to count */
                continue;
            }
            if (!sp->started) {
                /* Launch mode counts from the first Python frame. */
                for (size_t k = before; k < s.ntt; k++)
                    if (s.tt[k].kind == SAMPLE_STACK)
                        sp->started = 1;
                if (!sp->started) {
                    s.ntt = before;
                    continue;
                }
            }
            if (!sp->warned_finalizing && reader_finalizing(&sp->reader)) {
                /* Only news when it was so from the start: every process
                 * finalizes at its end. */
                sp->warned_finalizing = 1;
                if (sp->ticks_seen == 0)
                    fprintf(stderr, "pyflame: note: the interpreter of PID %d is finalizing "
                            "(shutting down); its stacks may be partial\n", (int)sp->pid);
            }
            sp->ticks_seen++;
            any_started = 1;
        }
        if (any_started) {
            s.tick++;
            if (!meta->start_ns)
                meta->start_ns = now_real;
            meta->end_ns = now_real;
            if (record_tick(&s, now_real) < 0) {
                fprintf(stderr, "pyflame: out of memory; writing what was collected\n");
                break;
            }
            recorded_any = 1;
            res->ticks++;
        }
        if (one_shot && recorded_any)
            break;

        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        if (end && now >= end)
            break;
        if (period) {
            next += period;
            if (now > next + period) {
                res->behind++;
                next = now;   /* do not try to catch up with a burst */
            }
            res->asked_rate = 1e9 / (double)period;
            uint64_t until = end && end < next ? end : next;
            sleep_until(&s, until);
            if (end && clock_ns(CLOCK_MONOTONIC) >= end)
                break;
        } else if (!o->nonblocking) {
            stopper_poll(&s.st);
        }
    }
    meta->ticks = s.tick;
    if (getenv("PYFLAME_STATS")) {
        /* for developers: what the reads cost per tick */
        for (size_t i = 0; i < s.nprocs; i++) {
            const struct mem *m = &s.procs[i]->mem;
            double t = s.tick ? (double)s.tick : 1;
            fprintf(stderr, "pyflame: stats: PID %d: %lu ticks; per tick: %.1f reads, %.1f read "
                    "system calls, %.1f pages read ahead, %.1f on demand, %.1f failed reads\n",
                    (int)s.procs[i]->pid, (unsigned long)s.tick, (double)m->reads / t,
                    (double)m->calls / t, (double)m->prefetched / t, (double)m->page_reads / t,
                    (double)m->failures / t);
        }
    }
    uint64_t elapsed = clock_ns(CLOCK_MONOTONIC) - start;
    res->achieved_rate = elapsed ? (double)res->ticks * 1e9 / (double)elapsed : 0;

    stopper_detach(&s.st, 0);
    stopper_timer(0);
    if (child > 0 && s.child_status == -1 && !res->stop_signal) {
        /* The child is ours to reap once it has gone. */
        int status;
        if (waitpid(child, &status, WNOHANG) == child)
            s.child_status = status;
    }
    res->child_status = s.child_status;
    teardown(&s);
    return 0;
}
