/*
 * test_lifecycle.c - the process lifecycle under every interpreter present:
 * -t exit statuses, targets that fork, get SIGCHLD or set their uid while
 * threaded, targets killed mid-run, SIGINT / SIGTERM / SIGUSR1 to pyflame,
 * --subprocesses, several -p, and many attach/detach cycles.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "integration/harness.h"

/* Reads what is left in an exited target's stdout pipe into t->out. */
static void drain(h_proc *t)
{
    while (t->out_fd >= 0 && t->out_len + 1 < sizeof(t->out)) {
        ssize_t n = read(t->out_fd, t->out + t->out_len, sizeof(t->out) - 1 - t->out_len);
        if (n <= 0)
            break;
        t->out_len += (size_t)n;
        t->out[t->out_len] = '\0';
    }
}

/* The "result ..." line a lifecycle target printed, or "". */
static const char *result_line(const char *out)
{
    static char line[256];
    const char *r = strstr(out, "result ");
    line[0] = '\0';
    if (r) {
        size_t n = strcspn(r, "\n");
        snprintf(line, sizeof(line), "%.*s", (int)n, r);
    }
    return line;
}

/* The expected result of a target run without pyflame. */
static void expected_result(const h_python *py, const char *mode, const char *secs, char *out,
                            size_t cap)
{
    char target[PATH_MAX];
    h_target_path("lifecycle.py", target);
    const char *argv[] = { py->path, target, mode, secs, NULL };
    h_result r;
    h_run(&r, argv, 30);
    ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    snprintf(out, cap, "%s", result_line(r.out));
    h_result_free(&r);
}

/* Waits until pid is traced (pyflame attached), up to timeout seconds. */
static void wait_traced(pid_t pid, double timeout)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    for (double waited = 0; waited < timeout; waited += 0.01) {
        char *st = h_read_file(path, NULL);
        int traced = st && h_match("^TracerPid:[[:space:]]*[1-9]", st);
        free(st);
        if (traced)
            return;
        usleep(10000);
    }
}

static h_proc *start_pyflame(const char *const *args)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = h_pyflame();
    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    return h_spawn(argv, NULL, 0);
}

static void assert_untraced(const h_python *py, pid_t pid)
{
    char why[256];
    ck_assert_msg(h_check_running_untraced(pid, why, sizeof(why)) == 0, "[%s] %s", H_CTX(py), why);
}

/* -t: pyflame exits with the command's status; 128+N when a signal N killed it. */
START_TEST(test_exit_status)
{
    const h_python *py = h_python_get(_i);
    char target[PATH_MAX];
    h_target_path("cpu.py", target);
    h_result r;
    h_pyflame_runl(&r, 20, "-t", py->path, target, "seconds=0.5", "exit=3", "quiet", NULL);
    ck_assert_msg(r.status == 3, "[%s] %s", H_CTX(py), h_result_str(&r));
    h_profile p;
    ck_assert_msg(h_parse_collapsed(r.out, &p) == 0 && p.stack_total > 10, "[%s] %s", H_CTX(py),
                  h_result_str(&r));
    h_profile_free(&p);
    h_result_free(&r);
    h_pyflame_runl(&r, 20, "-t", py->path, target, "seconds=0.3", "signal=15", "quiet", NULL);
    ck_assert_msg(r.status == 128 + 15, "[%s] %s", H_CTX(py), h_result_str(&r));
    h_result_free(&r);
}
END_TEST

/* A target that forks a chain of children while it waits: pyflame waits
 * for its own child only. */
START_TEST(test_fork_chain)
{
    const h_python *py = h_python_get(_i);
    char want[256], target[PATH_MAX], out[PATH_MAX];
    expected_result(py, "fork_chain", "seconds=0.9", want, sizeof(want));
    h_target_path("lifecycle.py", target);
    snprintf(out, sizeof(out), "%s/fork.txt", h_tmpdir());
    h_result r;
    h_pyflame_runl(&r, 30, "-o", out, "-t", py->path, target, "fork_chain", "seconds=0.9", NULL);
    ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    ck_assert_msg(strcmp(result_line(r.out), want) == 0, "[%s] got \"%s\", want \"%s\"", H_CTX(py),
                  result_line(r.out), want);
    char *text = h_read_file(out, NULL);
    h_profile p;
    ck_assert_msg(text && h_parse_collapsed(text, &p) == 0 && p.stack_total > 5, "[%s] profile: %s",
                  H_CTX(py), text ? text : "(none)");
    h_profile_free(&p);
    free(text);
    h_result_free(&r);
}
END_TEST

/* Signals for the target (SIGCHLD all the time; SIGRTs from setuid in a
 * threaded program) are delivered, and the target's results do not change. */
START_TEST(test_target_signals)
{
    const h_python *py = h_python_get(_i);
    const char *modes[] = { "sigchld", "setuid" };
    for (int m = 0; m < 2; m++) {
        char want[256];
        expected_result(py, modes[m], "seconds=1", want, sizeof(want));
        int started = 0, reaped = 0;
        h_proc *t = h_target_startl(py, "lifecycle.py", modes[m], "seconds=1", NULL);
        char pid[16];
        h_pidstr(t->pid, pid);
        h_result r;
        h_pyflame_runl(&r, 90, "--threads", "-s", "-1", "-r", "0.002", "-p", pid, NULL);
        ck_assert_msg(r.status == 0, "[%s] %s: %s", H_CTX(py), modes[m], h_result_str(&r));
        int st = h_proc_wait(t, 10);
        drain(t);
        ck_assert_msg(st == 0, "[%s] %s: target status %d: %s", H_CTX(py), modes[m], st,
                      h_proc_stderr(t));
        if (m == 0) {
            /* how many children it starts depends on the load; all must be reaped */
            ck_assert_msg(sscanf(result_line(t->out), "result %d %d", &started, &reaped) == 2 &&
                          started == reaped && started >= 3, "[%s] sigchld: got \"%s\"", H_CTX(py),
                          result_line(t->out));
        } else {
            ck_assert_msg(strcmp(result_line(t->out), want) == 0, "[%s] %s: got \"%s\", want \"%s\"",
                          H_CTX(py), modes[m], result_line(t->out), want);
        }
        h_profile p;
        ck_assert_msg(h_parse_collapsed(r.out, &p) == 0 && p.stack_total > 20, "[%s] %s: %s",
                      H_CTX(py), modes[m], h_result_str(&r));
        h_profile_free(&p);
        h_result_free(&r);
        h_proc_stop(t);
    }
}
END_TEST

/* A target killed by SIGKILL mid-run: what was collected is written, exit 0. */
START_TEST(test_target_killed)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    char pid[16], out[PATH_MAX];
    h_pidstr(t->pid, pid);
    snprintf(out, sizeof(out), "%s/killed.txt", h_tmpdir());
    const char *args[] = { "-s", "-1", "-o", out, "-p", pid, NULL };
    h_proc *f = start_pyflame(args);
    wait_traced(t->pid, 10);
    usleep(300000);
    kill(t->pid, SIGKILL);
    int st = h_proc_wait(f, 10);
    ck_assert_msg(st == 0, "[%s] pyflame status %d: %s", H_CTX(py), st, h_proc_stderr(f));
    char *text = h_read_file(out, NULL);
    h_profile p;
    ck_assert_msg(text && h_parse_collapsed(text, &p) == 0 && p.stack_total > 10, "[%s] profile: %s",
                  H_CTX(py), text ? text : "(none)");
    h_profile_free(&p);
    free(text);
    h_proc_stop(f);
    h_proc_stop(t);
}
END_TEST

/* SIGINT / SIGTERM / SIGHUP to pyflame: the profile so far is written, exit 0,
 * and the target runs on, neither stopped nor traced.  SIGUSR1 writes the
 * profile so far and carries on. */
START_TEST(test_pyflame_signals)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_startl(py, "threads.py", "depth=3", NULL);
    char pid[16], out[PATH_MAX];
    h_pidstr(t->pid, pid);
    int sigs[] = { SIGINT, SIGTERM, SIGHUP };
    for (int k = 0; k < 3; k++) {
        snprintf(out, sizeof(out), "%s/sig%d.txt", h_tmpdir(), sigs[k]);
        const char *args[] = { "--threads", "-s", "-1", "-o", out, "-p", pid, NULL };
        h_proc *f = start_pyflame(args);
        wait_traced(t->pid, 10);
        usleep(300000);
        if (k == 0) {
            kill(f->pid, SIGUSR1);
            usleep(300000);
            char *partial = h_read_file(out, NULL);
            h_profile p;
            ck_assert_msg(partial && h_parse_collapsed(partial, &p) == 0 && p.stack_total > 10,
                          "[%s] SIGUSR1 wrote: %s", H_CTX(py), partial ? partial : "(nothing)");
            h_profile_free(&p);
            free(partial);
            ck_assert_msg(h_proc_alive(f), "[%s] SIGUSR1 ended the run", H_CTX(py));
        }
        kill(f->pid, sigs[k]);
        int st = h_proc_wait(f, 10);
        ck_assert_msg(st == 0, "[%s] after signal %d pyflame status %d: %s", H_CTX(py), sigs[k], st,
                      h_proc_stderr(f));
        char *text = h_read_file(out, NULL);
        h_profile p;
        ck_assert_msg(text && h_parse_collapsed(text, &p) == 0 && p.stack_total > 10,
                      "[%s] signal %d: profile %s", H_CTX(py), sigs[k], text ? text : "(none)");
        h_profile_free(&p);
        free(text);
        h_proc_stop(f);
        ck_assert_msg(h_proc_alive(t), "[%s] the target died", H_CTX(py));
        assert_untraced(py, t->pid);
    }
    h_proc_stop(t);
}
END_TEST

/* --subprocesses on a multiprocessing pool of 3 workers shows every worker. */
START_TEST(test_subprocesses)
{
    const h_python *py = h_python_get(_i);
    char target[PATH_MAX], out[PATH_MAX];
    h_target_path("lifecycle.py", target);
    snprintf(out, sizeof(out), "%s/pool.txt", h_tmpdir());
    h_result r;
    h_pyflame_runl(&r, 40, "--subprocesses", "-o", out, "-t", py->path, target, "pool", "seconds=1.5",
                   NULL);
    ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    ck_assert_msg(strcmp(result_line(r.out), "result 3") == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    char *text = h_read_file(out, NULL);
    h_profile p;
    ck_assert_msg(text && h_parse_collapsed(text, &p) == 0, "[%s] profile: %s", H_CTX(py),
                  text ? text : "(none)");
    int pids[16], npids = 0;
    for (size_t i = 0; i < p.nstacks; i++) {
        const char *s = p.stacks[i].text;
        ck_assert_msg(strncmp(s, "process ", 8) == 0, "[%s] no process root: %s", H_CTX(py), s);
        if (!strstr(s, ":pool_work:"))
            continue;
        int pid = atoi(s + 8), seen = 0;
        for (int k = 0; k < npids; k++)
            seen |= pids[k] == pid;
        if (!seen && npids < 16)
            pids[npids++] = pid;
    }
    ck_assert_msg(npids == 3, "[%s] pool_work seen in %d processes:\n%s", H_CTX(py), npids,
                  h_profile_str(&p, 12));
    h_profile_free(&p);
    free(text);
    h_result_free(&r);
}
END_TEST

/* Several -p: one root frame per process. */
START_TEST(test_several_pids)
{
    const h_python *py = h_python_get(_i);
    h_proc *a = h_target_startl(py, "cpu.py", NULL);
    h_proc *b = h_target_startl(py, "cpu.py", NULL);
    char pa[16], pb[16];
    h_pidstr(a->pid, pa);
    h_pidstr(b->pid, pb);
    h_result r;
    h_pyflame_runl(&r, 20, "-s", "0.5", "-p", pa, "-p", pb, NULL);
    ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    char ra[32], rb[32];
    snprintf(ra, sizeof(ra), "^process %s ", pa);
    snprintf(rb, sizeof(rb), "^process %s ", pb);
    ck_assert_msg(h_match(ra, r.out) && h_match(rb, r.out), "[%s] %s", H_CTX(py), h_result_str(&r));
    h_result_free(&r);
    assert_untraced(py, a->pid);
    assert_untraced(py, b->pid);
    h_proc_stop(a);
    h_proc_stop(b);
}
END_TEST

/* 100 attach/detach cycles on a busy threaded target: it never ends up
 * stopped or traced, gets no signal it would not get without pyflame, and
 * computes the right result. */
START_TEST(test_attach_cycles)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_startl(py, "lifecycle.py", "checksum", "seconds=60", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    for (int cycle = 0; cycle < 100; cycle++) {
        h_result r;
        h_pyflame_runl(&r, 10, cycle % 2 ? "--threads" : "-x", "-s", "0", "-p", pid, NULL);
        ck_assert_msg(r.status == 0, "[%s] cycle %d: %s", H_CTX(py), cycle, h_result_str(&r));
        h_result_free(&r);
        assert_untraced(py, t->pid);
    }
    kill(t->pid, SIGUSR2);   /* finish now */
    int st = h_proc_wait(t, 30);
    drain(t);
    ck_assert_msg(st == 0, "[%s] target status %d: %s", H_CTX(py), st, h_proc_stderr(t));
    ck_assert_msg(strcmp(result_line(t->out), "result OK") == 0, "[%s] got \"%s\"", H_CTX(py),
                  result_line(t->out));
    h_proc_stop(t);
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("per-python");
    tcase_set_timeout(tc, 180);
    int n = h_python_count();
    tcase_add_loop_test(tc, test_exit_status, 0, n);
    tcase_add_loop_test(tc, test_fork_chain, 0, n);
    tcase_add_loop_test(tc, test_target_signals, 0, n);
    tcase_add_loop_test(tc, test_target_killed, 0, n);
    tcase_add_loop_test(tc, test_pyflame_signals, 0, n);
    tcase_add_loop_test(tc, test_subprocesses, 0, n);
    tcase_add_loop_test(tc, test_several_pids, 0, n);
    tcase_add_loop_test(tc, test_attach_cycles, 0, n);
    suite_add_tcase(s, tc);
    return h_run_suite(s);
}
