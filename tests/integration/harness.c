/*
 * harness.c - see harness.h.
 */
#include "harness.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <gelf.h>
#include <libelf.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- small utilities ---------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* snprintf that may truncate on purpose (no -Wformat-truncation). */
static void fmt(char *dst, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *dst, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(dst, cap, f, ap);
    va_end(ap);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("harness: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void h_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIP ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

void h_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

char *h_pidstr(pid_t pid, char *buf)
{
    snprintf(buf, 16, "%d", (int)pid);
    return buf;
}

int h_count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

int h_is_one_line(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 1 && s[n - 1] == '\n' && h_count_lines(s) == 1;
}

int h_match(const char *regex, const char *s)
{
    regex_t re;
    if (regcomp(&re, regex, REG_EXTENDED | REG_NEWLINE | REG_NOSUB) != 0)
        die("bad regex %s", regex);
    int ok = regexec(&re, s ? s : "", 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

char *h_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

void h_snprintf(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

void h_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

char *h_find_program(const char *name, char *out)
{
    const char *path = getenv("PATH");
    if (!path)
        return NULL;
    char *copy = strdup(path), *save = NULL;
    char *result = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, PATH_MAX, "%s/%s", *dir ? dir : ".", name);
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0) {
            result = out;
            break;
        }
    }
    free(copy);
    return result;
}

/* ---- process registry ------------------------------------------------------ */

#define MAX_PROCS 128

struct reg {
    pid_t pid;                /* process and group id; 0 = free slot */
    pid_t owner;              /* getpid() of the process that started it */
    h_proc *p;                /* NULL for h_run children */
};

static struct reg procs[MAX_PROCS];
static char tmpdir_path[PATH_MAX];
static pid_t tmpdir_owner;
static char suite_tmp[64];        /* made by h_init, removed by h_run_suite */
static pid_t suite_tmp_owner;
static int atexit_done;

static void cleanup_at_exit(void)
{
    h_kill_all();
}

static void reg_add(pid_t pid, h_proc *p)
{
    if (!atexit_done) {
        atexit(cleanup_at_exit);
        atexit_done = 1;
    }
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].pid == 0) {
            procs[i].pid = pid;
            procs[i].owner = getpid();
            procs[i].p = p;
            return;
        }
    kill(-pid, SIGKILL);
    die("too many processes started");
}

static void reg_del(pid_t pid)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].pid == pid && procs[i].owner == getpid())
            procs[i].pid = 0;
}

/* Reaps registered targets that have exited (as a shell would). */
static void reap_targets(void)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        h_proc *p = procs[i].p;
        if (procs[i].pid && procs[i].owner == getpid() && p && !p->reaped) {
            int st;
            if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
                p->reaped = 1;
                p->wstatus = st;
            }
        }
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void rm_rf_tmpdir(void)
{
    if (!tmpdir_path[0] || tmpdir_owner != getpid())
        return;
    rm_rf(tmpdir_path);
    tmpdir_path[0] = '\0';
}

void h_kill_all(void)
{
    pid_t me = getpid();
    for (int i = 0; i < MAX_PROCS; i++) {
        if (!procs[i].pid || procs[i].owner != me)
            continue;
        if (procs[i].p) {
            h_proc_stop(procs[i].p);   /* clears the slot */
        } else {
            kill(-procs[i].pid, SIGKILL);
            waitpid(procs[i].pid, NULL, 0);
            procs[i].pid = 0;
        }
    }
    rm_rf_tmpdir();
    if (suite_tmp[0] && suite_tmp_owner == me) {
        rm_rf(suite_tmp);
        suite_tmp[0] = '\0';
    }
}

const char *h_tmpdir(void)
{
    if (!tmpdir_path[0] || tmpdir_owner != getpid()) {
        /* Under the suite's directory when there is one: Check ends a failing
         * test with _exit, so only the parent can be relied on to clean up. */
        if (suite_tmp[0])
            fmt(tmpdir_path, sizeof(tmpdir_path), "%s/%d.XXXXXX", suite_tmp, (int)getpid());
        else
            snprintf(tmpdir_path, sizeof(tmpdir_path), "/tmp/pyflame-test.XXXXXX");
        if (!mkdtemp(tmpdir_path))
            die("mkdtemp: %s", strerror(errno));
        tmpdir_owner = getpid();
        if (!atexit_done) {
            atexit(cleanup_at_exit);
            atexit_done = 1;
        }
    }
    return tmpdir_path;
}

/* execvp, retried for up to 3 s while the file is being rewritten (another
 * `make` relinking pyflame gives ETXTBSY or EACCES for a moment). */
static void exec_retry(const char *const *argv)
{
    for (int i = 0; i < 30; i++) {
        execvp(argv[0], (char *const *)argv);
        if (errno != ETXTBSY && errno != EACCES)
            break;
        usleep(100000);
    }
}

/* In the child after fork: own process group, die with the parent. */
static void child_setup(pid_t parent)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    signal(SIGPIPE, SIG_DFL);
}

/* ---- processes ------------------------------------------------------------ */

static void proc_read_available(h_proc *p, double wait)
{
    if (p->out_fd < 0)
        return;
    struct pollfd pfd = { p->out_fd, POLLIN, 0 };
    if (poll(&pfd, 1, (int)(wait * 1000)) <= 0)
        return;
    size_t room = sizeof(p->out) - 1 - p->out_len;
    if (room == 0) {
        /* keep the last half, so a late "ready" is still seen */
        memmove(p->out, p->out + sizeof(p->out) / 2, sizeof(p->out) / 2);
        p->out_len -= sizeof(p->out) / 2;
        room = sizeof(p->out) - 1 - p->out_len;
    }
    ssize_t n = read(p->out_fd, p->out + p->out_len, room);
    if (n > 0) {
        p->out_len += (size_t)n;
        p->out[p->out_len] = '\0';
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(p->out_fd);
        p->out_fd = -1;
    }
}

static int has_line(const char *buf, const char *line)
{
    size_t n = strlen(line);
    for (const char *s = buf; (s = strstr(s, line)); s++)
        if ((s == buf || s[-1] == '\n') && (s[n] == '\n' || (s[n] == '\r' && s[n + 1] == '\n')))
            return 1;
    return 0;
}

h_proc *h_spawn(const char *const *argv, const char *ready_line, double timeout)
{
    h_proc *p = calloc(1, sizeof(*p));
    ck_assert_msg(p != NULL, "out of memory");
    p->out_fd = -1;
    snprintf(p->errfile, sizeof(p->errfile), "%s/stderr.XXXXXX", h_tmpdir());
    int efd = mkstemp(p->errfile);
    ck_assert_msg(efd >= 0, "mkstemp: %s", strerror(errno));
    size_t dl = 0;
    for (int i = 0; argv[i] && dl < sizeof(p->desc) - 1; i++)
        dl += (size_t)snprintf(p->desc + dl, sizeof(p->desc) - dl, "%s%s", i ? " " : "", argv[i]);
    int fds[2];
    ck_assert_msg(pipe2(fds, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        child_setup(parent);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(fds[1], 1);
        dup2(efd, 2);
        exec_retry(argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);   /* also here, so killpg works even before the child ran */
    close(fds[1]);
    close(efd);
    p->pid = pid;
    p->out_fd = fds[0];
    reg_add(pid, p);
    if (ready_line) {
        double end = now_s() + timeout;
        while (!has_line(p->out, ready_line)) {
            double left = end - now_s();
            int alive = h_proc_alive(p);
            if (left <= 0 || (!alive && p->out_fd < 0)) {
                char msg[6000];
                snprintf(msg, sizeof(msg), "%s did not print \"%s\" within %.1f s (%s); stdout: %.500s; stderr: %.4000s",
                         p->desc, ready_line, timeout,
                         alive ? "still running" : "it exited", p->out, h_proc_stderr(p));
                h_proc_stop(p);
                ck_abort_msg("%s", msg);
            }
            if (p->out_fd < 0)
                sleep_s(0.02);
            else
                proc_read_available(p, left < 0.05 ? left : 0.05);
        }
    }
    return p;
}

h_proc *h_target_start(const h_python *py, const char *script, const char *const *args)
{
    char path[PATH_MAX];
    h_target_path(script, path);
    const char *argv[64];
    int n = 0;
    argv[n++] = py->path;
    argv[n++] = path;
    for (int i = 0; args && args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    h_proc *p = h_spawn(argv, "ready", 15.0);
    char desc[sizeof(p->desc)];
    snprintf(desc, sizeof(desc), "%s under %s (pid %d)", script, py->label, (int)p->pid);
    memcpy(p->desc, desc, sizeof(desc));
    return p;
}

h_proc *h_target_startl(const h_python *py, const char *script, ...)
{
    const char *args[64];
    int n = 0;
    va_list ap;
    va_start(ap, script);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 63)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return h_target_start(py, script, args);
}

int h_proc_alive(h_proc *p)
{
    if (!p->reaped) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->reaped = 1;
            p->wstatus = st;
        }
    }
    return !p->reaped;
}

int h_proc_wait(h_proc *p, double timeout)
{
    double end = now_s() + timeout;
    while (h_proc_alive(p)) {
        if (now_s() >= end)
            return -1;
        reap_targets();
        if (p->out_fd >= 0)
            proc_read_available(p, 0.01);
        else
            sleep_s(0.01);
    }
    return p->wstatus;
}

const char *h_proc_stderr(h_proc *p)
{
    static char buf[4096];
    buf[0] = '\0';
    int fd = open(p->errfile, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    return buf;
}

void h_proc_stop(h_proc *p)
{
    if (!p)
        return;
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    if (!p->reaped) {
        int st;
        if (waitpid(p->pid, &st, 0) == p->pid) {
            p->reaped = 1;
            p->wstatus = st;
        }
    }
    if (p->out_fd >= 0)
        close(p->out_fd);
    unlink(p->errfile);
    reg_del(p->pid);
    free(p);
}

pid_t h_dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    ck_assert_msg(pid > 0, "fork: %s", strerror(errno));
    waitpid(pid, NULL, 0);
    return pid;
}

int h_check_running_untraced(pid_t pid, char *why, size_t whylen)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, whylen, "pid %d does not exist any more", (int)pid);
        return -1;
    }
    int bad = 0, ntasks = 0;
    size_t wl = 0;
    why[0] = '\0';
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        char path[128];
        fmt(path, sizeof(path), "%s/%s/status", dir, de->d_name);
        char *s = h_read_file(path, NULL);
        if (!s)
            continue;   /* the task just ended */
        ntasks++;
        char state = '?';
        long tracer = 0;
        const char *st = strstr(s, "\nState:");
        if (st)
            sscanf(st + 7, " %c", &state);
        const char *tp = strstr(s, "\nTracerPid:");
        if (tp)
            tracer = strtol(tp + 11, NULL, 10);
        free(s);
        /* Z or X of a thread other than the leader is a thread on its way out
         * (a target that starts and joins threads); of the leader, the process. */
        int leader = strtol(de->d_name, NULL, 10) == (long)pid;
        if (state == 'T' || state == 't' || (leader && (state == 'Z' || state == 'X')) || tracer != 0) {
            bad = 1;
            if (wl < whylen)
                wl += (size_t)snprintf(why + wl, whylen - wl, "%stask %s of pid %d: State %c%s, TracerPid %ld",
                                       wl ? "; " : "", de->d_name, (int)pid, state,
                                       state == 'T' ? " (stopped)" : state == 't' ? " (tracing stop)"
                                       : state == 'Z' ? " (zombie: it exited)" : "", tracer);
        }
    }
    closedir(d);
    if (!ntasks) {
        snprintf(why, whylen, "pid %d has no tasks (it exited)", (int)pid);
        return -1;
    }
    return bad ? -1 : 0;
}

pid_t h_tracer_pid(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    char *s = h_read_file(path, NULL);
    if (!s)
        return -1;
    const char *tp = strstr(s, "\nTracerPid:");
    pid_t tracer = tp ? (pid_t)strtol(tp + 11, NULL, 10) : 0;
    free(s);
    return tracer;
}

pid_t h_wait_traced(pid_t pid, double timeout)
{
    double end = now_s() + timeout;
    pid_t tracer;
    while ((tracer = h_tracer_pid(pid)) == 0 && now_s() < end) {
        reap_targets();
        sleep_s(0.005);
    }
    return tracer;
}

/* ---- running commands ------------------------------------------------------- */

struct buf { char *s; size_t n, cap; };

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (b->n + n + 1 > nc)
            nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns)
            die("out of memory");
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static int verbose(void)
{
    return getenv("PYFLAME_TEST_VERBOSE") != NULL;
}

void h_run(h_result *r, const char *const *argv, double timeout)
{
    memset(r, 0, sizeof(*r));
    size_t cl = 0;
    for (int i = 0; argv[i] && cl < sizeof(r->cmd) - 1; i++) {
        int quote = argv[i][0] == '\0' || strpbrk(argv[i], " \t'\"") != NULL;
        cl += (size_t)snprintf(r->cmd + cl, sizeof(r->cmd) - cl, quote ? "%s'%s'" : "%s%s",
                               i ? " " : "", argv[i]);
    }
    int ofd[2], efd[2];
    if (pipe2(ofd, O_CLOEXEC) < 0 || pipe2(efd, O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t parent = getpid();
    double start = now_s();
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        child_setup(parent);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(ofd[1], 1);
        dup2(efd[1], 2);
        exec_retry(argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    reg_add(pid, NULL);
    close(ofd[1]);
    close(efd[1]);
    struct buf out = { 0 }, err = { 0 };
    buf_add(&out, "", 0);
    buf_add(&err, "", 0);
    struct pollfd pfd[2] = { { ofd[0], POLLIN, 0 }, { efd[0], POLLIN, 0 } };
    int wst = 0, exited = 0;
    double end = start + timeout, drain_end = 0;
    for (;;) {
        if (!exited && waitpid(pid, &wst, WNOHANG) == pid) {
            exited = 1;
            r->elapsed = now_s() - start;
            drain_end = now_s() + 0.2;   /* grandchildren may hold the pipes */
        }
        reap_targets();
        if (pfd[0].fd < 0 && pfd[1].fd < 0) {
            if (exited)
                break;
        }
        double t = now_s();
        if (exited && t >= drain_end)
            break;
        if (!exited && t >= end) {
            r->timed_out = 1;
            kill(-pid, SIGKILL);
            waitpid(pid, &wst, 0);
            exited = 1;
            r->elapsed = now_s() - start;
            drain_end = now_s() + 0.2;
            continue;
        }
        if (pfd[0].fd < 0 && pfd[1].fd < 0) {
            sleep_s(0.005);
            continue;
        }
        int n = poll(pfd, 2, 10);
        if (n <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            char tmp[65536];
            ssize_t got = read(pfd[i].fd, tmp, sizeof(tmp));
            if (got > 0) {
                buf_add(i ? &err : &out, tmp, (size_t)got);
            } else if (got == 0 || errno != EINTR) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (pfd[i].fd >= 0)
            close(pfd[i].fd);
    if (kill(-pid, 0) == 0) {
        r->stray = 1;
        kill(-pid, SIGKILL);
    }
    reg_del(pid);
    r->out = out.s;
    r->out_len = out.n;
    r->err = err.s;
    r->err_len = err.n;
    if (r->timed_out) {
        r->status = -1;
    } else if (WIFEXITED(wst)) {
        r->status = WEXITSTATUS(wst);
    } else if (WIFSIGNALED(wst)) {
        r->signaled = WTERMSIG(wst);
        r->status = 128 + r->signaled;
    }
    if (verbose())
        fprintf(stderr, "harness: %s\n", h_result_str(r));
}

void h_pyflame_run(h_result *r, double timeout, const char *const *args)
{
    const char *argv[128];
    int n = 0;
    argv[n++] = h_pyflame();
    for (int i = 0; args && args[i] && n < 127; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    h_run(r, argv, timeout);
}

void h_pyflame_runl(h_result *r, double timeout, ...)
{
    const char *args[128];
    int n = 0;
    va_list ap;
    va_start(ap, timeout);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 127)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    h_pyflame_run(r, timeout, args);
}

void h_result_free(h_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static void excerpt(char *dst, size_t cap, const char *s, size_t len)
{
    size_t lim = cap - 16;
    if (len <= lim) {
        snprintf(dst, cap, "%s", s);
    } else {
        snprintf(dst, cap, "%.*s ...[%zu bytes]", (int)lim, s, len);
    }
}

const char *h_result_str(h_result *r)
{
    char o[1200], e[1200];
    excerpt(o, sizeof(o), r->out ? r->out : "", r->out_len);
    excerpt(e, sizeof(e), r->err ? r->err : "", r->err_len);
    char st[64];
    if (r->timed_out)
        snprintf(st, sizeof(st), "TIMED OUT");
    else if (r->signaled)
        snprintf(st, sizeof(st), "killed by signal %d", r->signaled);
    else
        snprintf(st, sizeof(st), "exit %d", r->status);
    snprintf(r->summary, sizeof(r->summary), "`%.400s` -> %s after %.2f s%s; stderr: \"%s\"; stdout: \"%s\"",
             r->cmd, st, r->elapsed, r->stray ? " (left processes behind)" : "", e, o);
    return r->summary;
}

/* ---- paths ------------------------------------------------------------------ */

const char *h_pyflame(void)
{
    const char *p = getenv("PYFLAME");
    if (!p || !*p)
        die("PYFLAME is not set (run from the repo root: PYFLAME=$PWD/pyflame %s)", "build/tests/integration/test_...");
    return p;
}

const char *h_targets_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0])
        return dir;
    const char *env = getenv("PYFLAME_TEST_TARGETS");
    char cand[PATH_MAX];
    struct stat st;
    if (env && *env) {
        if (!realpath(env, dir))
            die("PYFLAME_TEST_TARGETS=%s: %s", env, strerror(errno));
        return dir;
    }
    char pf[PATH_MAX];
    if (realpath(h_pyflame(), pf)) {
        char *slash = strrchr(pf, '/');
        if (slash) {
            *slash = '\0';
            fmt(cand, sizeof(cand), "%s/tests/targets", pf);
            if (stat(cand, &st) == 0 && S_ISDIR(st.st_mode) && realpath(cand, dir))
                return dir;
        }
    }
    if (realpath("tests/targets", dir))
        return dir;
    die("cannot find tests/targets (set PYFLAME_TEST_TARGETS)");
}

char *h_target_path(const char *name, char *out)
{
    if (name[0] == '/')
        snprintf(out, PATH_MAX, "%s", name);
    else
        fmt(out, PATH_MAX, "%s/%s", h_targets_dir(), name);
    ck_assert_msg(access(out, R_OK) == 0, "target program %s: %s", out, strerror(errno));
    return out;
}

int h_marker_lines(const char *file, const char *name, int *lines, int max)
{
    char path[PATH_MAX];
    h_target_path(file, path);
    char *text = h_read_file(path, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    char marker[300];
    snprintf(marker, sizeof(marker), "# LINE:%s", name);
    size_t ml = strlen(marker);
    int n = 0, lineno = 1;
    for (char *s = text; *s;) {
        char *eol = strchr(s, '\n');
        size_t len = eol ? (size_t)(eol - s) : strlen(s);
        for (char *m = s; (m = strstr(m, marker)) && m < s + len; m++) {
            char after = m[ml];
            if (m + ml <= s + len && (after == '\n' || after == '\0' || after == ' ' || after == '\t' || after == '\r')) {
                if (n < max)
                    lines[n] = lineno;
                n++;
                break;
            }
        }
        if (!eol)
            break;
        s = eol + 1;
        lineno++;
    }
    free(text);
    ck_assert_msg(n > 0, "marker \"%s\" not found in %s", marker, path);
    return n < max ? n : max;
}

int h_marker_line(const char *file, const char *name)
{
    int lines[2];
    int n = h_marker_lines(file, name, lines, 2);
    ck_assert_msg(n == 1, "marker \"# LINE:%s\" appears more than once in %s", name, file);
    return lines[0];
}

/* ---- interpreters -------------------------------------------------------------- */

#define MAX_PYTHONS 64

static h_python pythons[MAX_PYTHONS];
static int npythons = -1;
static char looked_in[4096];

static int is_elf(const char *path)
{
    unsigned char m[4] = { 0 };
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, m, 4);
    close(fd);
    return n == 4 && m[0] == 0x7f && m[1] == 'E' && m[2] == 'L' && m[3] == 'F';
}

/* 1 if the ELF file has no DT_NEEDED libpython*, 0 if it has, -1 on error. */
static int elf_is_static(const char *path)
{
    if (elf_version(EV_CURRENT) == EV_NONE)
        return -1;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    int result = -1;
    if (e && elf_kind(e) == ELF_K_ELF) {
        result = 1;
        Elf_Scn *scn = NULL;
        while ((scn = elf_nextscn(e, scn))) {
            GElf_Shdr sh;
            if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC)
                continue;
            Elf_Data *data = elf_getdata(scn, NULL);
            size_t count = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
            for (size_t i = 0; data && i < count; i++) {
                GElf_Dyn dyn;
                if (!gelf_getdyn(data, (int)i, &dyn))
                    break;
                if (dyn.d_tag == DT_NEEDED) {
                    const char *name = elf_strptr(e, sh.sh_link, dyn.d_un.d_val);
                    if (name && strstr(name, "libpython"))
                        result = 0;
                }
            }
        }
    }
    if (e)
        elf_end(e);
    close(fd);
    return result;
}

static int name_is_pythonxy(const char *name)
{
    if (strncmp(name, "python", 6) != 0)
        return 0;
    const char *s = name + 6;
    if (!isdigit((unsigned char)*s))
        return 0;
    while (isdigit((unsigned char)*s))
        s++;
    if (*s++ != '.' || !isdigit((unsigned char)*s))
        return 0;
    while (isdigit((unsigned char)*s))
        s++;
    return *s == '\0';
}

struct found { char path[PATH_MAX]; const char *origin; int require_elf; };
static struct found found[256];
static int nfound;

static void add_candidate(const char *path, const char *origin, int require_elf)
{
    if (nfound >= 256)
        return;
    snprintf(found[nfound].path, PATH_MAX, "%s", path);
    found[nfound].origin = origin;
    found[nfound].require_elf = require_elf;
    nfound++;
}

static void scan_dir(const char *dir, const char *origin)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char names[64][64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64)
        if (name_is_pythonxy(de->d_name) && strlen(de->d_name) < 64)
            snprintf(names[n++], 64, "%s", de->d_name);
    closedir(d);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        fmt(path, sizeof(path), "%s/%s", dir, names[i]);
        add_candidate(path, origin, 1);
    }
}

static int cmp_python(const void *a, const void *b)
{
    const h_python *x = a, *y = b;
    if (x->major != y->major)
        return x->major - y->major;
    if (x->minor != y->minor)
        return x->minor - y->minor;
    if (x->is_static != y->is_static)
        return x->is_static - y->is_static;
    return x->micro - y->micro;
}

static int only_allows(const char *label)
{
    const char *only = getenv("PYFLAME_TEST_ONLY");
    if (!only || !*only)
        return 1;
    char *copy = strdup(only), *save = NULL;
    int ok = 0;
    for (char *t = strtok_r(copy, ",:", &save); t; t = strtok_r(NULL, ",:", &save))
        if (*t && strncmp(label, t, strlen(t)) == 0)
            ok = 1;
    free(copy);
    return ok;
}

static void looked(const char *s)
{
    size_t l = strlen(looked_in);
    fmt(looked_in + l, sizeof(looked_in) - l, "%s%s", l ? ", " : "", s);
}

static void discover(void)
{
    if (npythons >= 0)
        return;
    npythons = 0;
    nfound = 0;
    looked_in[0] = '\0';

    /* pyenv */
    const char *root = getenv("PYENV_ROOT");
    char rootbuf[PATH_MAX];
    if (!root || !*root) {
        const char *home = getenv("HOME");
        snprintf(rootbuf, sizeof(rootbuf), "%s/.pyenv", home ? home : "/root");
        root = rootbuf;
    }
    char vdir[PATH_MAX + 16];
    snprintf(vdir, sizeof(vdir), "%s/versions", root);
    {
        char tmp[PATH_MAX + 32];
        snprintf(tmp, sizeof(tmp), "%s/*/bin", vdir);
        looked(tmp);
    }
    DIR *d = opendir(vdir);
    if (d) {
        char names[64][256];
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)) && n < 64)
            if (de->d_name[0] != '.')
                snprintf(names[n++], 256, "%s", de->d_name);
        closedir(d);
        for (int i = 0; i < n; i++) {
            char bin[PATH_MAX];
            fmt(bin, sizeof(bin), "%s/%.200s/bin", vdir, names[i]);
            scan_dir(bin, "pyenv");
        }
    }
    /* PATH */
    const char *path = getenv("PATH");
    looked("$PATH");
    if (path) {
        char *copy = strdup(path), *save = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
            if (*dir == '/')
                scan_dir(dir, "PATH");
        free(copy);
    }
    looked("/usr/bin, /usr/local/bin");
    scan_dir("/usr/bin", "/usr/bin");
    scan_dir("/usr/local/bin", "/usr/local/bin");
    /* PYFLAME_TEST_PYTHONS */
    const char *extra = getenv("PYFLAME_TEST_PYTHONS");
    looked("$PYFLAME_TEST_PYTHONS");
    if (extra && *extra) {
        char *copy = strdup(extra), *save = NULL;
        for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save))
            if (*p)
                add_candidate(p, "PYFLAME_TEST_PYTHONS", 0);
        free(copy);
    }

    h_python all[MAX_PYTHONS];
    int nall = 0;
    dev_t devs[MAX_PYTHONS];
    ino_t inos[MAX_PYTHONS];
    for (int i = 0; i < nfound && nall < MAX_PYTHONS; i++) {
        struct found *f = &found[i];
        h_python py;
        memset(&py, 0, sizeof(py));
        if (f->require_elf && !is_elf(f->path))
            continue;   /* e.g. a pyenv shim */
        const char *argv[] = {
            f->path, "-S", "-E", "-c",
            "import sys; sys.stdout.write('%d %d %d %s' % (sys.version_info[0], sys.version_info[1], "
            "sys.version_info[2], sys.executable))",
            NULL
        };
        h_result r;
        h_run(&r, argv, 20);
        int ok = r.status == 0 &&
                 sscanf(r.out, "%d %d %d %4095s", &py.major, &py.minor, &py.micro, py.path) == 4;
        if (!ok) {
            if (!f->require_elf || strcmp(f->origin, "pyenv") == 0)
                h_skip("python %s: not usable: %s", f->path, h_result_str(&r));
            h_result_free(&r);
            continue;
        }
        h_result_free(&r);
        /* Keep the path as found when it is a real ELF interpreter; follow
         * sys.executable for wrappers given in PYFLAME_TEST_PYTHONS. */
        if (is_elf(f->path)) {
            char abs[PATH_MAX];
            if (f->path[0] == '/' || !realpath(f->path, abs))
                fmt(py.path, sizeof(py.path), "%s", f->path);
            else
                snprintf(py.path, sizeof(py.path), "%s", abs);
        }
        if (!realpath(py.path, py.real))
            continue;
        struct stat st;
        if (stat(py.real, &st) != 0)
            continue;
        int dup = 0;
        for (int j = 0; j < nall; j++)
            if (strcmp(all[j].real, py.real) == 0 || (devs[j] == st.st_dev && inos[j] == st.st_ino))
                dup = 1;
        if (dup)
            continue;
        int s = elf_is_static(py.real);
        py.is_static = s == 1;
        py.origin = f->origin;
        snprintf(py.label, sizeof(py.label), "%d.%d.%d%s", py.major, py.minor, py.micro,
                 py.is_static ? "-static" : "");
        devs[nall] = st.st_dev;
        inos[nall] = st.st_ino;
        all[nall++] = py;
    }
    qsort(all, (size_t)nall, sizeof(all[0]), cmp_python);
    /* unique labels */
    for (int i = 0; i < nall; i++) {
        int k = 1;
        for (int j = 0; j < i; j++)
            if (strncmp(all[j].label, all[i].label, strlen(all[i].label)) == 0)
                k++;
        if (k > 1) {
            size_t l = strlen(all[i].label);
            snprintf(all[i].label + l, sizeof(all[i].label) - l, "-%d", k);
        }
    }

    /* the expected set */
    static const int expected[][3] = {
        { 2, 7, 0 }, { 3, 6, 0 }, { 3, 7, 0 }, { 3, 8, 0 }, { 3, 9, 0 }, { 3, 10, 0 },
        { 3, 11, 0 }, { 3, 12, 0 }, { 3, 13, 0 }, { 3, 11, 1 },
    };
    for (size_t e = 0; e < sizeof(expected) / sizeof(expected[0]); e++) {
        int have = 0;
        for (int i = 0; i < nall; i++)
            if (all[i].major == expected[e][0] && all[i].minor == expected[e][1] &&
                all[i].is_static == expected[e][2])
                have = 1;
        if (!have)
            h_skip("python %d.%d%s: not installed (looked in %s)", expected[e][0], expected[e][1],
                   expected[e][2] ? " (static, no libpython)" : "", looked_in);
    }
    for (int i = 0; i < nall; i++) {
        if (!only_allows(all[i].label)) {
            h_skip("python %s: excluded by PYFLAME_TEST_ONLY=%s", all[i].label, getenv("PYFLAME_TEST_ONLY"));
            continue;
        }
        pythons[npythons++] = all[i];
    }
    size_t l = 0;
    char list[2048] = "";
    for (int i = 0; i < npythons; i++)
        l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%s", i ? " " : "", pythons[i].label);
    h_note("pythons: %s", npythons ? list : "(none)");
}

int h_python_count(void)
{
    discover();
    return npythons;
}

const h_python *h_python_get(int i)
{
    discover();
    ck_assert_msg(i >= 0 && i < npythons, "no python #%d (have %d)", i, npythons);
    return &pythons[i];
}

const h_python *h_python_find(int major, int minor, int want_static)
{
    discover();
    for (int i = 0; i < npythons; i++)
        if (pythons[i].major == major && pythons[i].minor == minor &&
            (want_static < 0 || pythons[i].is_static == want_static))
            return &pythons[i];
    return NULL;
}

const h_python *h_python_default(void)
{
    discover();
    for (int i = npythons - 1; i >= 0; i--)
        if (pythons[i].major == 3 && !pythons[i].is_static)
            return &pythons[i];
    ck_assert_msg(npythons > 0, "no python interpreter found");
    return &pythons[npythons - 1];
}

/* ---- setup ----------------------------------------------------------------------- */

void h_init(void)
{
    const char *pf = h_pyflame();
    if (access(pf, X_OK) != 0)
        die("PYFLAME=%s is not executable: %s", pf, strerror(errno));
    h_targets_dir();
    if (!suite_tmp[0]) {
        snprintf(suite_tmp, sizeof(suite_tmp), "/tmp/pyflame-test.XXXXXX");
        if (!mkdtemp(suite_tmp))
            die("mkdtemp: %s", strerror(errno));
        suite_tmp_owner = getpid();
        if (!atexit_done) {
            atexit(cleanup_at_exit);
            atexit_done = 1;
        }
    }
    discover();
}

int h_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    double t0 = now_s();
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    h_kill_all();   /* also removes the suite's temporary directory */
    h_note("%.1f s", now_s() - t0);
    return failed ? 1 : 0;
}

/* ---- collapsed output --------------------------------------------------------------- */

static int parse_count(const char *s, const char *end, long *out)
{
    if (s >= end)
        return -1;
    long v = 0;
    for (const char *p = s; p < end; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

int h_parse_collapsed(const char *text, h_profile *p)
{
    memset(p, 0, sizeof(*p));
    if (!text)
        text = "";
    size_t len = strlen(text);
    if (len && text[len - 1] != '\n')
        p->no_final_newline = 1;
    size_t cap = 0;
    for (const char *s = text; *s;) {
        const char *eol = strchr(s, '\n');
        const char *end = eol ? eol : s + strlen(s);
        p->nlines++;
        const char *sp = NULL;
        for (const char *q = end; q > s; q--)
            if (q[-1] == ' ') {
                sp = q - 1;
                break;
            }
        long count = 0;
        int bad = !sp || sp == s || parse_count(sp + 1, end, &count) < 0;
        if (!bad && (size_t)(sp - s) == 6 && strncmp(s, "(idle)", 6) == 0) {
            p->idle += count;
            p->idle_line = p->nlines;
        } else if (!bad && (size_t)(sp - s) == 8 && strncmp(s, "(failed)", 8) == 0) {
            p->failed += count;
            p->failed_line = p->nlines;
        } else if (!bad) {
            /* no empty frame */
            if (s[0] == ';' || sp[-1] == ';')
                bad = 1;
            for (const char *q = s; q < sp - 1; q++)
                if (q[0] == ';' && q[1] == ';')
                    bad = 1;
            if (!bad) {
                if (p->nstacks == cap) {
                    cap = cap ? cap * 2 : 64;
                    p->stacks = realloc(p->stacks, cap * sizeof(*p->stacks));
                    if (!p->stacks)
                        die("out of memory");
                }
                h_stack *st = &p->stacks[p->nstacks++];
                st->text = strndup(s, (size_t)(sp - s));
                st->count = count;
                p->stack_total += count;
            }
        }
        if (bad) {
            if (!p->nbad)
                snprintf(p->bad, sizeof(p->bad), "%.*s", (int)(end - s), s);
            p->nbad++;
        }
        if (!eol)
            break;
        s = eol + 1;
    }
    for (size_t i = 0; i < p->nstacks; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->stacks[i].text, p->stacks[j].text) == 0) {
                p->duplicates++;
                break;
            }
    return p->nbad ? -1 : 0;
}

void h_profile_free(h_profile *p)
{
    for (size_t i = 0; i < p->nstacks; i++)
        free(p->stacks[i].text);
    free(p->stacks);
    p->stacks = NULL;
    p->nstacks = 0;
}

long h_profile_total(const h_profile *p)
{
    return p->idle + p->failed + p->stack_total;
}

long h_profile_count(const h_profile *p, const char *stack)
{
    long n = 0;
    for (size_t i = 0; i < p->nstacks; i++)
        if (strcmp(p->stacks[i].text, stack) == 0)
            n += p->stacks[i].count;
    return n;
}

const char *h_profile_str(const h_profile *p, int max)
{
    static char buf[4096];
    size_t l = 0;
    buf[0] = '\0';
    if (p->idle_line)
        l += (size_t)snprintf(buf + l, sizeof(buf) - l, "[line %d] (idle) %ld | ", p->idle_line, p->idle);
    if (p->failed_line && l < sizeof(buf))
        l += (size_t)snprintf(buf + l, sizeof(buf) - l, "[line %d] (failed) %ld | ", p->failed_line, p->failed);
    if (p->nbad && l < sizeof(buf))
        l += (size_t)snprintf(buf + l, sizeof(buf) - l, "%d bad lines, first: \"%s\" | ", p->nbad, p->bad);
    size_t n = p->nstacks;
    char *used = calloc(n + 1, 1);
    for (int k = 0; k < max && (size_t)k < n && l < sizeof(buf); k++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!used[i] && (best == n || p->stacks[i].count > p->stacks[best].count))
                best = i;
        used[best] = 1;
        l += (size_t)snprintf(buf + l, sizeof(buf) - l, "%ld %s | ", p->stacks[best].count, p->stacks[best].text);
    }
    free(used);
    if (n > (size_t)max && l < sizeof(buf))
        l += (size_t)snprintf(buf + l, sizeof(buf) - l, "(%zu more stacks)", n - (size_t)max);
    if (!p->nlines)
        snprintf(buf, sizeof(buf), "(empty output)");
    return buf;
}

int h_split_frames(const char *stack, h_frame *frames, int max, int with_lines)
{
    int n = 0;
    const char *s = stack;
    for (;;) {
        const char *semi = strchr(s, ';');
        const char *end = semi ? semi : s + strlen(s);
        if (end == s)
            return -1;
        if (n < max) {
            h_frame *f = &frames[n];
            const char *fe = end;
            f->line = -1;
            if (with_lines) {
                const char *c = fe;
                while (c > s && c[-1] != ':')
                    c--;
                long line;
                if (c == s || parse_count(c, fe, &line) < 0)
                    return -1;
                f->line = (int)line;
                fe = c - 1;
            }
            const char *c = fe;
            while (c > s && c[-1] != ':')
                c--;
            if (c == s || c - 1 == s)
                return -1;   /* no ':' or empty file */
            snprintf(f->func, sizeof(f->func), "%.*s", (int)(fe - c), c);
            snprintf(f->file, sizeof(f->file), "%.*s", (int)(c - 1 - s), s);
        }
        n++;
        if (!semi)
            break;
        s = semi + 1;
    }
    return n < max ? n : max;
}
