/*
 * test_robust_container.c - a target in its own PID and mount namespace
 * (`unshare --pid --mount --fork --mount-proc`, as root) is profiled from
 * the host by its host PID.
 *
 * Inside the namespace a tmpfs is mounted on a directory that is empty on
 * the host, and the interpreter is reached only through it, so that the
 * paths in /proc/PID/maps exist inside the namespace only:
 *   - shared libpython (the newest shared 3.x, and 2.7): the pyenv tree is
 *     bind-mounted under the tmpfs, its original path is hidden by another
 *     tmpfs, and python runs from the new path (LD_LIBRARY_PATH points at
 *     the new lib/);
 *   - static (Debian's python3.11): the executable is copied into the tmpfs.
 * The target script (a copy of cpu.py) lives in the tmpfs too.  pyflame must
 * name the file as the target sees it and every function of the known
 * chain, with --threads the thread IDs it shows must be host TIDs, and -d
 * must work; the target is left running and untraced.
 */
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* Parent PID of pid from /proc/PID/stat, or -1. */
static pid_t ppid_of(pid_t pid)
{
    char path[64];
    h_snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *s = h_read_file(path, NULL);
    if (!s)
        return -1;
    const char *rp = strrchr(s, ')');
    int pp = -1;
    if (rp)
        sscanf(rp + 1, " %*c %d", &pp);
    free(s);
    return pp;
}

/* The descendant of root whose comm is `comm`, or 0. */
static pid_t find_descendant(pid_t root, const char *comm)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *de;
    pid_t found = 0;
    while (!found && (de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(de->d_name);
        char path[64];
        h_snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        char *c = h_read_file(path, NULL);
        if (!c)
            continue;
        c[strcspn(c, "\n")] = '\0';
        int match = strcmp(c, comm) == 0;
        free(c);
        if (!match)
            continue;
        for (pid_t p = pid; p > 1; p = ppid_of(p))
            if (p == root) {
                found = pid;
                break;
            }
    }
    closedir(d);
    return found;
}

static int can_unshare(void)
{
    static int ok = -1;
    if (ok >= 0)
        return ok;
    ok = 0;
    char unshare[PATH_MAX];
    if (geteuid() != 0) {
        h_skip("containers: needs root (unshare --pid --mount)");
        return ok;
    }
    if (!h_find_program("unshare", unshare)) {
        h_skip("containers: unshare(1) is not installed");
        return ok;
    }
    const char *argv[] = { unshare, "--pid", "--mount", "--fork", "--mount-proc", "true", NULL };
    h_result r;
    h_run(&r, argv, 20);
    ok = r.status == 0;
    if (!ok)
        h_skip("containers: unshare --pid --mount does not work here: %s", h_result_str(&r));
    h_result_free(&r);
    return ok;
}

/* The known chain of cpu.py, with the file as the target names it. */
static void expect_chain(const char *out, const char *file, const char *ctx, int per_thread)
{
    h_profile p;
    ck_assert_msg(h_parse_collapsed(out, &p) == 0, "%s: malformed line \"%s\"", ctx, p.bad);
    static const char *const funcs[] = { "<module>", "main", "outer", "middle", "leaf" };
    long good = 0;
    for (size_t i = 0; i < p.nstacks; i++) {
        static h_frame fr[64];
        const char *text = p.stacks[i].text;
        if (per_thread) {
            const char *semi = strchr(text, ';');
            if (!semi)
                continue;
            text = semi + 1;
        }
        int n = h_split_frames(text, fr, 64, 1);
        if (n != 5)
            continue;
        int ok = 1;
        for (int k = 0; k < 5; k++)
            ok = ok && strcmp(fr[k].file, file) == 0 && strcmp(fr[k].func, funcs[k]) == 0 && fr[k].line > 0;
        if (ok)
            good += p.stacks[i].count;
    }
    ck_assert_msg(good > 0 && good * 2 >= p.stack_total,
                  "%s: want mostly %s:<module>;...;%s:leaf stacks (%ld of %ld samples); got:\n%s", ctx, file, file,
                  good, p.stack_total, h_profile_str(&p, 8));
    h_profile_free(&p);
}

/* Each "thread NAME (TID)" root names a task of the target as the host sees it. */
static void expect_host_tids(const char *out, pid_t pid, const char *ctx)
{
    int roots = 0;
    for (const char *l = out; (l = strstr(l, "thread ")); l++) {
        if (l != out && l[-1] != '\n')
            continue;
        const char *semi = strchr(l, ';');
        const char *open = NULL;
        for (const char *q = l; semi && q < semi; q++)
            if (*q == '(')
                open = q;
        ck_assert_msg(open != NULL, "%s: root frame without (TID): %.100s", ctx, l);
        long tid = strtol(open + 1, NULL, 10);
        char path[64];
        h_snprintf(path, sizeof(path), "/proc/%d/task/%ld", (int)pid, tid);
        struct stat st;
        ck_assert_msg(tid > 0 && stat(path, &st) == 0,
                      "%s: thread root \"%.60s\" names TID %ld, which is not a task of host PID %d (a TID from "
                      "inside the PID namespace?)", ctx, l, tid, (int)pid);
        roots++;
    }
    ck_assert_msg(roots > 0, "%s: no thread root frames in --per-thread output: %.300s", ctx, out);
}

struct variant {
    const char *what;
    int major, minor, is_static;
};

static const struct variant variants[] = {
    { "shared libpython, bind-mounted tree", 3, -1, 0 },
    { "shared libpython 2.7, bind-mounted tree", 2, 7, 0 },
    { "static python3.11, copied executable", 3, 11, 1 },
};

START_TEST(test_container)
{
    const struct variant *v = &variants[_i];
    if (!can_unshare())
        return;
    const h_python *py = v->minor < 0 ? h_python_default() : h_python_find(v->major, v->minor, v->is_static);
    if (!py || py->is_static != v->is_static) {
        h_skip("container (%s): no such interpreter here", v->what);
        return;
    }
    /* The namespace-only directory: empty on the host. */
    char ns[PATH_MAX];
    h_snprintf(ns, sizeof(ns), "%s/ns%d", h_tmpdir(), _i);
    ck_assert(mkdir(ns, 0755) == 0);
    char cpu[PATH_MAX];
    h_target_path("cpu.py", cpu);

    char script[8 * PATH_MAX], exe[PATH_MAX], comm[16];
    if (v->is_static) {
        h_snprintf(exe, sizeof(exe), "%s/python-ns", ns);
        h_snprintf(script, sizeof(script),
                  "set -e; mount -t tmpfs none '%s'; cp '%s' '%s'; cp '%s' '%s/cpu_ns.py'; "
                  "'%s' '%s/cpu_ns.py'", ns, py->real, exe, cpu, ns, exe, ns);
        snprintf(comm, sizeof(comm), "python-ns");
    } else {
        /* py->real is PREFIX/bin/pythonX.Y */
        char prefix[PATH_MAX];
        h_snprintf(prefix, sizeof(prefix), "%s", py->real);
        for (int k = 0; k < 2; k++) {
            char *slash = strrchr(prefix, '/');
            ck_assert(slash != NULL);
            *slash = '\0';
        }
        const char *base = strrchr(py->real, '/') + 1;
        h_snprintf(exe, sizeof(exe), "%s/py/bin/%s", ns, base);
        h_snprintf(script, sizeof(script),
                  "set -e; mount -t tmpfs none '%s'; mkdir '%s/py'; mount --bind '%s' '%s/py'; "
                  "cp '%s' '%s/cpu_ns.py'; mount -t tmpfs none '%s'; "
                  "LD_LIBRARY_PATH='%s/py/lib' PYTHONHOME='%s/py' '%s' '%s/cpu_ns.py'",
                  ns, ns, prefix, ns, cpu, ns, prefix, ns, ns, exe, ns);
        snprintf(comm, sizeof(comm), "%.15s", base);
    }
    char unshare[PATH_MAX];
    h_find_program("unshare", unshare);
    const char *argv[] = { unshare, "--pid", "--mount", "--fork", "--mount-proc", "sh", "-c", script, NULL };
    h_proc *u = h_spawn(argv, "ready", 20);
    pid_t pid = 0;
    for (int i = 0; i < 200 && !pid; i++) {
        pid = find_descendant(u->pid, comm);
        if (!pid)
            h_sleep_ms(10);
    }
    ck_assert_msg(pid > 0, "[%s] %s: no process \"%s\" under unshare (PID %d)", H_CTX(py), v->what, comm,
                  (int)u->pid);

    /* Preconditions: the paths it runs from exist inside the namespace only. */
    struct stat st;
    ck_assert_msg(stat(exe, &st) != 0, "[%s] %s exists on the host: the test proves nothing", H_CTX(py), exe);
    char maps[64];
    h_snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
    char *m = h_read_file(maps, NULL);
    ck_assert_msg(m && strstr(m, ns) != NULL, "[%s] the target's maps do not show %s:\n%.1500s", H_CTX(py), ns,
                  m ? m : "(unreadable)");
    free(m);
    char nspid[64];
    h_snprintf(nspid, sizeof(nspid), "/proc/%d/status", (int)pid);
    char *status = h_read_file(nspid, NULL);
    const char *np = status ? strstr(status, "NSpid:") : NULL;
    h_note("[%s] %s: host PID %d, %.*s", H_CTX(py), v->what, (int)pid, np ? (int)strcspn(np, "\n") : 8,
           np ? np : "no NSpid");
    free(status);

    char file[PATH_MAX], pidstr[16], ctx[256];
    h_snprintf(file, sizeof(file), "%s/cpu_ns.py", ns);
    h_pidstr(pid, pidstr);

    h_result r;
    h_pyflame_runl(&r, 20, "-s", "0.5", "-p", pidstr, NULL);
    h_snprintf(ctx, sizeof(ctx), "[%s] %s: pyflame -p %s", H_CTX(py), v->what, pidstr);
    ck_assert_msg(r.status == 0 && r.err_len == 0, "%s: %s", ctx, h_result_str(&r));
    expect_chain(r.out, file, ctx, 0);
    h_result_free(&r);

    h_pyflame_runl(&r, 20, "--per-thread", "-s", "0.3", "-p", pidstr, NULL);
    h_snprintf(ctx, sizeof(ctx), "[%s] %s: pyflame --per-thread -p %s", H_CTX(py), v->what, pidstr);
    ck_assert_msg(r.status == 0 && r.err_len == 0, "%s: %s", ctx, h_result_str(&r));
    expect_chain(r.out, file, ctx, 1);
    expect_host_tids(r.out, pid, ctx);
    h_result_free(&r);

    h_pyflame_runl(&r, 20, "--threads", "-x", "-s", "0.3", "-p", pidstr, NULL);
    h_snprintf(ctx, sizeof(ctx), "[%s] %s: pyflame --threads -x -p %s", H_CTX(py), v->what, pidstr);
    ck_assert_msg(r.status == 0 && r.err_len == 0, "%s: %s", ctx, h_result_str(&r));
    expect_chain(r.out, file, ctx, 0);
    h_result_free(&r);

    h_pyflame_runl(&r, 20, "-d", "-p", pidstr, NULL);
    h_snprintf(ctx, sizeof(ctx), "[%s] %s: pyflame -d -p %s", H_CTX(py), v->what, pidstr);
    ck_assert_msg(r.status == 0 && r.err_len == 0, "%s: %s", ctx, h_result_str(&r));
    char want[PATH_MAX + 16];
    h_snprintf(want, sizeof(want), "%s:leaf:", file);
    ck_assert_msg(strstr(r.out, want) != NULL, "%s: the dump does not show %s: %.500s", ctx, want, r.out);
    h_result_free(&r);

    char why[1024];
    ck_assert_msg(h_check_running_untraced(pid, why, sizeof(why)) == 0, "[%s] %s: target harmed: %s", H_CTX(py),
                  v->what, why);
    h_proc_stop(u);
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("robust_container");
    TCase *tc = tcase_create("container");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_container, 0, (int)(sizeof(variants) / sizeof(variants[0])));
    suite_add_tcase(s, tc);
    return h_run_suite(s);
}
