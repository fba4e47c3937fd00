/*
 * perf_native.c - the --native mode: perf record + the perf trampoline.
 * See perf_native.h.
 */
#include "perf_native.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "inject.h"
#include "proc.h"
#include "signals.h"
#include "target.h"

#define MAX_FRAMES 1024

int perf_native_exit_status(int rc)
{
    switch (rc) {
    case 0: return 0;
    case PERF_NATIVE_E_NO_PERF: return 20;
    case PERF_NATIVE_E_NO_ACCESS: return 21;
    case PERF_NATIVE_E_PERF: return 22;
    }
    return inject_exit_status(rc);
}

static uint64_t clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- parsing perf script ------------------------------------------------- */

struct pframe {
    int python;       /* a py:: frame */
    int interp;       /* a frame of the interpreter's own ELF */
    uint32_t id;      /* profile frame id */
};

static uint32_t intern(struct profile *p, const char *s)
{
    return profile_string(p, s, strlen(s));
}

/* One callchain line: "<ip> <symbol> (<dso>)". */
static int parse_frame(struct profile *p, char *line, const char *interp_dso, struct pframe *out)
{
    char *s = line;
    while (isspace((unsigned char)*s))
        s++;
    char *sym = s;
    while (*sym && !isspace((unsigned char)*sym))
        sym++;
    if (sym == s)
        return -1;
    while (isspace((unsigned char)*sym))
        sym++;
    size_t len = strlen(sym);
    while (len && isspace((unsigned char)sym[len - 1]))
        sym[--len] = '\0';
    const char *dso = "";
    if (len && sym[len - 1] == ')') {
        char *open = strrchr(sym, '(');
        if (open) {
            sym[len - 1] = '\0';
            dso = open + 1;
            char *end = open;
            while (end > sym && isspace((unsigned char)end[-1]))
                end--;
            *end = '\0';
        }
    }
    if (!*sym)
        sym = "[unknown]";

    struct pf_frame f = { PF_NONE, PF_NONE, PF_NONE, -1, -1 };
    memset(out, 0, sizeof(*out));
    if (strncmp(sym, "py::", 4) == 0) {
        char *qual = sym + 4;
        char *colon = strchr(qual, ':');
        const char *file = "";
        if (colon) {
            *colon = '\0';
            file = colon + 1;
        }
        const char *name = strrchr(qual, '.');
        name = name ? name + 1 : qual;
        f.file = intern(p, file);
        f.name = intern(p, name);
        f.qualname = intern(p, qual);
        out->python = 1;
    } else if (strncmp(dso, "[kernel", 7) == 0 || strcmp(dso, "[vdso]") == 0 ||
               strncmp(dso, "[guest.kernel", 13) == 0) {
        f.file = intern(p, dso[1] == 'v' ? "[vdso]" : "[k]");
        f.name = intern(p, sym);
    } else {
        if (interp_dso && *dso && strcmp(dso, interp_dso) == 0)
            out->interp = 1;
        const char *b = *dso ? base_name(dso) : "[unknown]";
        if (strncmp(b, "perf-", 5) == 0 && strstr(b, ".map"))
            b = "[jit]";
        f.file = intern(p, b);
        f.name = intern(p, sym);
    }
    if (f.file == PF_NONE || f.name == PF_NONE)
        return -ENOMEM;
    out->id = profile_frame(p, &f);
    return out->id == PF_NONE ? -ENOMEM : 0;
}

/* Header line: "<comm> <tid> <sec>.<nsec>:" (comm may contain spaces). */
static int parse_header(char *line, char *comm, size_t cap, pid_t *tid, uint64_t *t_ns)
{
    size_t len = strlen(line);
    while (len && isspace((unsigned char)line[len - 1]))
        line[--len] = '\0';
    if (!len || line[len - 1] != ':')
        return -1;
    line[--len] = '\0';
    char *tm = strrchr(line, ' ');
    if (!tm)
        return -1;
    *tm++ = '\0';
    char *dot = strchr(tm, '.');
    uint64_t sec = strtoull(tm, NULL, 10), frac = 0;
    int digits = 0;
    if (dot) {
        for (char *d = dot + 1; isdigit((unsigned char)*d) && digits < 9; d++, digits++)
            frac = frac * 10 + (uint64_t)(*d - '0');
        for (; digits < 9; digits++)
            frac *= 10;
    }
    *t_ns = sec * 1000000000u + frac;
    len = strlen(line);
    while (len && line[len - 1] == ' ')
        line[--len] = '\0';
    char *ts = strrchr(line, ' ');
    char *tidstr = ts ? ts + 1 : line;
    char *end;
    long v = strtol(tidstr, &end, 10);
    if (end == tidstr)
        return -1;
    *tid = (pid_t)v;
    if (ts) {
        *ts = '\0';
        while (ts > line && ts[-1] == ' ')
            *--ts = '\0';
        snprintf(comm, cap, "%s", line);
    } else {
        comm[0] = '\0';
    }
    return 0;
}

struct sample_state {
    pid_t tid;
    uint64_t t_ns;
    char comm[256];
    struct pframe frames[MAX_FRAMES];
    size_t n;
    int have;
};

static int flush_sample(struct profile *p, uint32_t proc, struct sample_state *s, int all_frames,
                        int64_t mono_to_real, long *count, uint64_t *first, uint64_t *last)
{
    if (!s->have)
        return 0;
    s->have = 0;
    /* frames[] is leaf first; build root first. */
    uint32_t ids[MAX_FRAMES];
    size_t n = 0;
    ssize_t outer_py = -1;   /* index (leaf-first) of the outermost Python frame */
    for (size_t i = 0; i < s->n; i++)
        if (s->frames[i].python)
            outer_py = (ssize_t)i;
    int seen_py_below = 0;   /* walking root -> leaf: a Python frame is still to come */
    for (ssize_t i = (ssize_t)s->n - 1; i >= 0; i--) {
        const struct pframe *f = &s->frames[i];
        if (!all_frames && outer_py >= 0) {
            if (i > outer_py)
                continue;                  /* root side of the outermost Python frame */
            if (f->interp) {
                seen_py_below = 0;
                for (ssize_t k = i - 1; k >= 0; k--)
                    if (s->frames[k].python) {
                        seen_py_below = 1;
                        break;
                    }
                if (seen_py_below)
                    continue;              /* eval-loop glue between two Python frames */
            }
        }
        ids[n++] = f->id;
    }
    uint32_t stack = profile_stack(p, ids, n);
    uint32_t th = profile_thread(p, proc, s->tid, 0, s->comm[0] ? s->comm : NULL);
    if (stack == PF_NONE || th == PF_NONE)
        return -ENOMEM;
    uint64_t t = (uint64_t)((int64_t)s->t_ns + mono_to_real);
    if (profile_add(p, th, stack, SAMPLE_STACK, 0, t, (uint32_t)*count) < 0)
        return -ENOMEM;
    if (!*count || t < *first)
        *first = t;
    if (t > *last)
        *last = t;
    (*count)++;
    return 0;
}

long perf_native_parse(FILE *in, pid_t pid, const char *interp_dso, int all_frames,
                       int64_t mono_to_real_ns, struct profile *p, struct error *e)
{
    char cmdline[1024] = "";
    proc_cmdline(pid, cmdline, sizeof(cmdline));
    uint32_t proc = profile_process(p, pid, cmdline);
    if (proc == PF_NONE)
        return error_set(e, -ENOMEM, "out of memory");
    struct sample_state *s = calloc(1, sizeof(*s));
    if (!s)
        return error_set(e, -ENOMEM, "out of memory");
    char *line = NULL;
    size_t cap = 0;
    long count = 0;
    uint64_t first = 0, last = 0;
    int rc = 0;
    while (getline(&line, &cap, in) > 0) {
        if (line[0] == '\n' || line[0] == '\0') {
            rc = flush_sample(p, proc, s, all_frames, mono_to_real_ns, &count, &first, &last);
        } else if (isspace((unsigned char)line[0])) {
            if (s->have && s->n < MAX_FRAMES) {
                int r = parse_frame(p, line, interp_dso, &s->frames[s->n]);
                if (r == 0)
                    s->n++;
                else if (r == -ENOMEM)
                    rc = r;
            }
        } else {
            rc = flush_sample(p, proc, s, all_frames, mono_to_real_ns, &count, &first, &last);
            if (rc == 0 && parse_header(line, s->comm, sizeof(s->comm), &s->tid, &s->t_ns) == 0) {
                s->have = 1;
                s->n = 0;
            }
        }
        if (rc < 0)
            break;
    }
    if (rc == 0)
        rc = flush_sample(p, proc, s, all_frames, mono_to_real_ns, &count, &first, &last);
    free(line);
    free(s);
    if (rc < 0)
        return error_set(e, rc, "out of memory");
    struct profile_meta *m = profile_meta(p);
    if (count) {
        if (!m->start_ns || first < m->start_ns)
            m->start_ns = first;
        if (last > m->end_ns)
            m->end_ns = last;
        m->ticks += (uint32_t)count;
    }
    return count;
}

/* ---- running perf -------------------------------------------------------- */

static int find_perf(char *out, size_t cap)
{
    const char *env = getenv("PYFLAME_PERF");
    if (env && *env) {
        if (strchr(env, '/')) {
            snprintf(out, cap, "%s", env);
            return access(out, X_OK) == 0 ? 0 : -ENOENT;
        }
    }
    const char *name = env && *env ? env : "perf";
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    int rc = -ENOENT;
    for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/%s", dir, name);
        if (access(out, X_OK) == 0) {
            rc = 0;
            break;
        }
    }
    free(copy);
    return rc;
}

/* fork + exec argv with stdout/stderr redirected (fd -1: /dev/null), and
 * fd3 / fd4 (when >= 0) as the child's descriptors 3 and 4. */
static pid_t spawn(char *const argv[], int out_fd, int err_fd, int fd3, int fd4)
{
    pid_t c = fork();
    if (c != 0)
        return c;
    int devnull = open("/dev/null", O_RDWR);
    int hi3 = fd3 >= 0 ? fcntl(fd3, F_DUPFD_CLOEXEC, 10) : -1;
    int hi4 = fd4 >= 0 ? fcntl(fd4, F_DUPFD_CLOEXEC, 10) : -1;
    dup2(devnull, 0);
    dup2(out_fd >= 0 ? out_fd : devnull, 1);
    dup2(err_fd >= 0 ? err_fd : devnull, 2);
    if (hi3 >= 0)
        dup2(hi3, 3);
    if (hi4 >= 0)
        dup2(hi4, 4);
    /* Default signal dispositions and mask for perf. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    execv(argv[0], argv);
    _exit(127);
}

static int wait_child(pid_t c, int *status)
{
    for (;;) {
        pid_t r = waitpid(c, status, 0);
        if (r == c)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);   /* EINTR is fine: the caller loops */
}

/* The first meaningful line of perf's log, for an error message. */
static void log_summary(const char *path, char *buf, size_t cap, int *denied)
{
    buf[0] = '\0';
    *denied = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "perf_event_paranoid") || strstr(line, "ermission denied") ||
            strstr(line, "No permission") || strstr(line, "Access to performance monitoring"))
            *denied = 1;
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (!buf[0] && *s && strncmp(s, "[ perf record", 13) != 0)
            snprintf(buf, cap, "%s", s);
    }
    fclose(f);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Waits (at most timeout_ms) for perf's "ack" on fd.  1 = acked, 0 = not. */
static int wait_ack(int fd, pid_t c, int timeout_ms)
{
    char buf[16];
    size_t got = 0;
    uint64_t end = clock_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000u;
    while (clock_ns(CLOCK_MONOTONIC) < end) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n > 0) {
            got += (size_t)n;
            buf[got] = '\0';
            if (strstr(buf, "ack"))
                return 1;
            continue;
        }
        if (n == 0)
            return 0;   /* perf closed it: exited */
        if (errno != EAGAIN && errno != EINTR)
            return 0;
        int st;
        if (waitpid(c, &st, WNOHANG) == c) {
            /* reaped here: put the status back for the caller */
            return -1 - (st & 0xffff);
        }
        if (signals_pending & SIGNALS_STOP)
            return 0;
        sleep_ms(5);
    }
    return 0;
}

static int record(const char *perf, pid_t pid, double seconds, const char *dir, struct error *e)
{
    char data[PATH_MAX], logp[PATH_MAX], pidstr[32], freq[32];
    snprintf(data, sizeof(data), "%s/perf.data", dir);
    snprintf(logp, sizeof(logp), "%s/record.log", dir);
    snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
    const char *fenv = getenv("PYFLAME_NATIVE_FREQ");
    snprintf(freq, sizeof(freq), "%d", fenv && atoi(fenv) > 0 ? atoi(fenv) : 199);
    int logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    /* perf starts with its events disabled and is enabled through a control
     * pipe: its "ack" says it is recording, so slow start-up (a loaded
     * machine, many mappings to synthesize) does not eat the duration. */
    int ctl[2] = { -1, -1 }, ack[2] = { -1, -1 };
    if (pipe2(ctl, O_CLOEXEC) < 0 || pipe2(ack, O_CLOEXEC) < 0) {
        if (logfd >= 0)
            close(logfd);
        return error_set(e, -errno, "pipe: %s", strerror(errno));
    }
    char *argv[] = { (char *)perf, "record", "-q", "-e", "cpu-clock", "-F", freq, "--call-graph",
                     "dwarf", "-k", "mono", "-N", "-D", "-1", "--control", "fd:3,4", "-p", pidstr,
                     "-o", data, NULL };
    pid_t c = spawn(argv, -1, logfd, ctl[0], ack[1]);
    int spawn_errno = errno;
    close(ctl[0]);
    close(ack[1]);
    if (logfd >= 0)
        close(logfd);
    if (c < 0) {
        close(ctl[1]);
        close(ack[0]);
        return error_set(e, PERF_NATIVE_E_PERF, "cannot start %s: %s", perf, strerror(spawn_errno));
    }
    fcntl(ack[0], F_SETFL, O_NONBLOCK);
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    ssize_t wr = write(ctl[1], "enable\n", 7);
    (void)wr;
    signal(SIGPIPE, old_pipe);
    int status = 0, exited = 0;
    int acked = wait_ack(ack[0], c, 60000);
    if (acked < 0) {
        status = -1 - acked;
        exited = 1;
    }
    uint64_t start = clock_ns(CLOCK_MONOTONIC);
    while (!exited && acked > 0) {
        pid_t r = waitpid(c, &status, WNOHANG);
        if (r == c) {
            exited = 1;
            break;
        }
        if (signals_pending & SIGNALS_STOP)
            break;
        if (seconds > 0 && (double)(clock_ns(CLOCK_MONOTONIC) - start) / 1e9 >= seconds)
            break;
        sleep_ms(20);
    }
    if (!exited) {
        kill(c, SIGINT);
        wait_child(c, &status);
    }
    close(ctl[1]);
    close(ack[0]);
    char summary[400];
    int denied;
    log_summary(logp, summary, sizeof(summary), &denied);
    struct stat st;
    int have_data = stat(data, &st) == 0 && st.st_size > 0;
    /* Stopped by us: whatever its status, the data counts; ended by itself
     * (the target exited): only with status 0. */
    int ok = acked > 0 && (!exited || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
    if (ok && have_data && !denied)
        return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return error_set(e, PERF_NATIVE_E_NO_PERF, "cannot execute %s", perf);
    if (denied) {
        long paranoid = -99;
        FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
        if (f) {
            if (fscanf(f, "%ld", &paranoid) != 1)
                paranoid = -99;
            fclose(f);
        }
        return error_set(e, PERF_NATIVE_E_NO_ACCESS, "perf is not permitted to profile PID %d "
                         "(kernel.perf_event_paranoid = %ld): run as root or with CAP_PERFMON, "
                         "or lower it: sysctl kernel.perf_event_paranoid=1", (int)pid, paranoid);
    }
    if (!proc_alive(pid))
        return error_set(e, PERF_NATIVE_E_PERF, "PID %d exited while perf was starting", (int)pid);
    return error_set(e, PERF_NATIVE_E_PERF, "perf record failed for PID %d: %s", (int)pid,
                     summary[0] ? summary : acked > 0 ? "no data recorded" :
                     "it did not start recording");
}

static long script(const char *perf, pid_t pid, const char *dir, const char *interp_dso,
                   int64_t mono_to_real, struct profile *p, struct error *e)
{
    char data[PATH_MAX], logp[PATH_MAX];
    snprintf(data, sizeof(data), "%s/perf.data", dir);
    snprintf(logp, sizeof(logp), "%s/script.log", dir);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return error_set(e, -errno, "pipe: %s", strerror(errno));
    int logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *argv[] = { (char *)perf, "script", "-i", data, "-F", "comm,tid,time,ip,sym,dso", "--ns",
                     "--no-inline", NULL };
    pid_t c = spawn(argv, fds[1], logfd, -1, -1);
    close(fds[1]);
    if (logfd >= 0)
        close(logfd);
    if (c < 0) {
        close(fds[0]);
        return error_set(e, PERF_NATIVE_E_PERF, "cannot start %s: %s", perf, strerror(errno));
    }
    FILE *in = fdopen(fds[0], "r");
    if (!in) {
        close(fds[0]);
        kill(c, SIGKILL);
        int st;
        wait_child(c, &st);
        return error_set(e, -ENOMEM, "out of memory");
    }
    const char *all = getenv("PYFLAME_NATIVE_ALL_FRAMES");
    long n = perf_native_parse(in, pid, interp_dso, all && *all && *all != '0', mono_to_real, p, e);
    fclose(in);
    int status = 0;
    wait_child(c, &status);
    if (n < 0)
        return n;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char summary[400];
        int denied;
        log_summary(logp, summary, sizeof(summary), &denied);
        return error_set(e, PERF_NATIVE_E_PERF, "perf script failed: %s",
                         summary[0] ? summary : "no output");
    }
    return n;
}

int perf_native_run(pid_t pid, double seconds, struct profile *p, struct error *e)
{
    char perf[PATH_MAX];
    if (find_perf(perf, sizeof(perf)) < 0)
        return error_set(e, PERF_NATIVE_E_NO_PERF, "perf not found (install it: apt-get install "
                         "linux-perf, or set PYFLAME_PERF to its path)");
    struct pytarget t;
    struct error te = { 0, "" };
    const char *interp_dso = NULL;
    if (target_discover(pid, NULL, &t, &te) == 0) {
        interp_dso = t.map_path;
        snprintf(profile_meta(p)->python_version, sizeof(profile_meta(p)->python_version), "%s",
                 t.version_str);
    }

    struct inject_options io = { INJECT_AUTO, 0 };
    struct inject_result ir;
    int rc = inject_perf_trampoline_ex(pid, 1, &io, &ir, e);
    if (rc < 0)
        return rc;
    int we_activated = rc == 0;
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }

    char dir[] = "/tmp/pyflame-native-XXXXXX";
    int have_dir = 0;
    int64_t mono_to_real = 0;
    if (!mkdtemp(dir)) {
        rc = error_set(e, -errno, "cannot create a temporary directory: %s", strerror(errno));
        goto deactivate;
    }
    have_dir = 1;
    mono_to_real = (int64_t)clock_ns(CLOCK_REALTIME) - (int64_t)clock_ns(CLOCK_MONOTONIC);
    const char *fenv = getenv("PYFLAME_NATIVE_FREQ");
    int freq = fenv && atoi(fenv) > 0 ? atoi(fenv) : 199;
    profile_meta(p)->period_ns = 1000000000u / (uint64_t)freq;

    rc = record(perf, pid, seconds, dir, e);

deactivate:
    if (we_activated && proc_alive(pid)) {
        struct error de = { 0, "" };
        struct inject_result dr;
        int drc = inject_perf_trampoline_ex(pid, 0, &io, &dr, &de);
        if (drc < 0 && drc != INJECT_E_EXITED)
            fprintf(stderr, "pyflame: warning: could not switch the perf trampoline of PID %d off "
                    "again: %s\n", (int)pid, de.msg);
    }
    if (rc == 0 && have_dir) {
        long n = script(perf, pid, dir, interp_dso, mono_to_real, p, e);
        rc = n < 0 ? (int)n : 0;
    }
    if (have_dir) {
        const char *keep = getenv("PYFLAME_KEEP_PERF_DATA");
        if (keep && *keep && *keep != '0')
            fprintf(stderr, "pyflame: perf data kept in %s\n", dir);
        else
            remove_dir(dir);
    }
    return rc;
}
