/*
 * test_core.c - pyflame's core behaviour against every CPython found
 * (see harness.h for discovery): stacks, file names, function names and line
 * numbers of a known call chain (tests/targets/cpu.py), -n, -x and idle
 * accounting (tests/targets/sleeper.py), -s 0, -r, -s -1 with a target that
 * exits, -t launch mode and its exit status, -o, flamegraph.pl compatibility,
 * and the command line errors.  After every attach the target must still run,
 * with no task stopped or traced.
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- expectations -------------------------------------------------------------- */

#define MAX_HOT 8

/* The known stack of cpu.py: <module> -> main -> outer -> middle -> leaf. */
typedef struct cpu_stack {
    char file[PATH_MAX];
    char prefix[6 * PATH_MAX];     /* "F:<module>:L;...;F:leaf:" */
    char nolines[6 * PATH_MAX];    /* "F:<module>;F:main;F:outer;F:middle;F:leaf" */
    int hot[MAX_HOT];
    int nhot;
} cpu_stack;

static void cpu_stack_init(cpu_stack *c)
{
    h_target_path("cpu.py", c->file);
    const char *f = c->file;
    snprintf(c->prefix, sizeof(c->prefix), "%s:<module>:%d;%s:main:%d;%s:outer:%d;%s:middle:%d;%s:leaf:",
             f, h_marker_line("cpu.py", "module_call"), f, h_marker_line("cpu.py", "main_call"),
             f, h_marker_line("cpu.py", "outer_call"), f, h_marker_line("cpu.py", "middle_call"), f);
    snprintf(c->nolines, sizeof(c->nolines), "%s:<module>;%s:main;%s:outer;%s:middle;%s:leaf",
             f, f, f, f, f);
    c->nhot = h_marker_lines("cpu.py", "leaf_hot", c->hot, MAX_HOT);
}

/* Samples that show the known stack with the leaf on a hot-loop line. */
static long cpu_known(const h_profile *p, const cpu_stack *c)
{
    long n = 0;
    char want[sizeof(c->prefix) + 16];
    for (int i = 0; i < c->nhot; i++) {
        snprintf(want, sizeof(want), "%s%d", c->prefix, c->hot[i]);
        n += h_profile_count(p, want);
    }
    return n;
}

static const char *cpu_expected_str(const cpu_stack *c)
{
    static char buf[sizeof(c->prefix) + 64];
    size_t l = (size_t)snprintf(buf, sizeof(buf), "%s{", c->prefix);
    for (int i = 0; i < c->nhot; i++)
        l += (size_t)snprintf(buf + l, sizeof(buf) - l, "%s%d", i ? "," : "", c->hot[i]);
    snprintf(buf + l, sizeof(buf) - l, "}");
    return buf;
}

/* The first successful run of this test that wrote to stderr (each test is
 * its own process in fork mode). */
static char quiet_violation[1024];

/* A successful pyflame run: exit 0, well-formed collapsed output (every
 * stack line ^.+ [0-9]+$ with no empty frame, final newline).  Its stderr is
 * checked by expect_quiet_stderr at the end of the test, so that functional
 * failures are reported first. */
static void expect_ok_profile(const h_python *py, h_result *r, h_profile *p)
{
    ck_assert_msg(!r->timed_out && r->status == 0, "[%s] pyflame failed: %s", H_CTX(py), h_result_str(r));
    /* the one warning a successful run may give: it could not keep the rate
     * (this machine may be busy) */
    if (r->err_len && !h_match("^pyflame: sampling fell behind: [^\n]*\n$", r->err) && !quiet_violation[0])
        snprintf(quiet_violation, sizeof(quiet_violation), "`%.300s` wrote \"%.600s\"", r->cmd, r->err);
    ck_assert_msg(!r->stray, "[%s] pyflame left processes behind: %s", H_CTX(py), h_result_str(r));
    int rc = h_parse_collapsed(r->out, p);
    ck_assert_msg(rc == 0, "[%s] malformed collapsed line \"%s\" (%d bad lines): %s", H_CTX(py), p->bad,
                  p->nbad, h_result_str(r));
    ck_assert_msg(!p->no_final_newline, "[%s] output does not end with a newline: %s", H_CTX(py),
                  h_result_str(r));
    ck_assert_msg(p->idle_line <= 1, "[%s] (idle) is on line %d, not first: %s", H_CTX(py), p->idle_line,
                  h_profile_str(p, 6));
}

/* Interface rule (shared/reference/pyflame-cli.md, "Traps"): on success
 * stderr stays empty when it is not a terminal. */
static void expect_quiet_stderr(const h_python *py)
{
    ck_assert_msg(!quiet_violation[0],
                  "[%s] a successful run wrote to stderr (it must stay empty when stderr is not a terminal): %s",
                  H_CTX(py), quiet_violation);
}

/* The target is still alive, no task stopped or traced. */
static void expect_target_ok(const h_python *py, h_proc *t, const char *after)
{
    char why[1024];
    ck_assert_msg(h_proc_alive(t), "[%s] %s exited after %s (wait status 0x%x); stderr: %s", H_CTX(py),
                  t->desc, after, t->wstatus, h_proc_stderr(t));
    ck_assert_msg(h_check_running_untraced(t->pid, why, sizeof(why)) == 0, "[%s] %s after %s: %s",
                  H_CTX(py), t->desc, after, why);
}

/* At least pct% of the non-idle samples show the known cpu.py stack. */
static void expect_cpu_stack(const h_python *py, const cpu_stack *c, const h_profile *p, int pct,
                             long min_samples, const char *what)
{
    long nonidle = p->failed + p->stack_total;
    long known = cpu_known(p, c);
    ck_assert_msg(nonidle >= min_samples, "[%s] %s: only %ld non-idle samples (want >= %ld): %s", H_CTX(py),
                  what, nonidle, min_samples, h_profile_str(p, 6));
    ck_assert_msg(known * 100 >= (long)pct * nonidle,
                  "[%s] %s: %ld of %ld non-idle samples show the expected stack %s (want >= %d%%); seen: %s",
                  H_CTX(py), what, known, nonidle, cpu_expected_str(c), pct, h_profile_str(p, 6));
}

/* ---- per-interpreter tests -------------------------------------------------------- */

START_TEST(test_cpu_stack)
{
    const h_python *py = h_python_get(_i);
    cpu_stack c;
    cpu_stack_init(&c);
    h_proc *t = h_target_start(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_profile p;
    h_pyflame_runl(&r, 15, "-s", "1", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    expect_target_ok(py, t, "pyflame -s 1");
    long total = h_profile_total(&p);
    /* the upper bound is strict (-r is honoured); the lower one allows for a loaded machine */
    ck_assert_msg(total >= 10 && total <= 105, "[%s] -s 1 -r 0.01 gave %ld samples in %.2f s (want 10..105): %s",
                  H_CTX(py), total, r.elapsed, h_profile_str(&p, 6));
    ck_assert_msg(p.idle * 10 <= total, "[%s] a CPU-bound target is mostly idle: %s", H_CTX(py),
                  h_profile_str(&p, 6));
    expect_cpu_stack(py, &c, &p, 95, 10, "-s 1");
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
    expect_quiet_stderr(py);
}
END_TEST

START_TEST(test_no_line_numbers)
{
    const h_python *py = h_python_get(_i);
    cpu_stack c;
    cpu_stack_init(&c);
    h_proc *t = h_target_start(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_profile p;
    h_pyflame_runl(&r, 15, "-n", "-s", "0.5", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    expect_target_ok(py, t, "pyflame -n");
    ck_assert_msg(p.duplicates == 0, "[%s] -n: %d stack lines are printed more than once (lines not merged): %s",
                  H_CTX(py), p.duplicates, h_profile_str(&p, 8));
    for (size_t i = 0; i < p.nstacks; i++) {
        h_frame fr[64];
        int n = h_split_frames(p.stacks[i].text, fr, 64, 0);
        ck_assert_msg(n > 0, "[%s] -n: malformed stack \"%s\"", H_CTX(py), p.stacks[i].text);
        for (int k = 0; k < n; k++)
            ck_assert_msg(strspn(fr[k].func, "0123456789") != strlen(fr[k].func),
                          "[%s] -n: frame %d of \"%s\" still has a line number", H_CTX(py), k, p.stacks[i].text);
    }
    long nonidle = p.failed + p.stack_total;
    long known = h_profile_count(&p, c.nolines);
    ck_assert_msg(nonidle >= 5 && known * 100 >= 95 * nonidle,
                  "[%s] -n: %ld of %ld non-idle samples show \"%s\" (want >= 95%%): %s", H_CTX(py), known,
                  nonidle, c.nolines, h_profile_str(&p, 6));
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
    expect_quiet_stderr(py);
}
END_TEST

START_TEST(test_idle)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_start(py, "sleeper.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_profile p;

    /* without -x: "(idle) N" first, nearly every sample idle */
    h_pyflame_runl(&r, 15, "-s", "0.5", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    expect_target_ok(py, t, "pyflame -s 0.5 on a sleeping target");
    long total = h_profile_total(&p);
    ck_assert_msg(p.idle_line == 1, "[%s] sleeping target: no \"(idle) N\" first line: %s", H_CTX(py),
                  h_profile_str(&p, 6));
    ck_assert_msg(total >= 5 && p.idle * 100 >= 90 * total,
                  "[%s] sleeping target: %ld idle of %ld samples (want >= 90%% idle, >= 5 samples): %s",
                  H_CTX(py), p.idle, total, h_profile_str(&p, 6));
    h_profile_free(&p);
    h_result_free(&r);

    /* -x: no (idle) line (empty output expected) */
    h_pyflame_runl(&r, 15, "-x", "-s", "0.5", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    expect_target_ok(py, t, "pyflame -x");
    ck_assert_msg(p.idle_line == 0 && p.idle == 0, "[%s] -x printed an (idle) line: %s", H_CTX(py),
                  h_profile_str(&p, 6));
    ck_assert_msg(p.nlines > 0 || r.out_len == 0, "[%s] -x: no samples, but the output is not empty: %s",
                  H_CTX(py), h_result_str(&r));
    ck_assert_msg(p.stack_total * 10 <= total,
                  "[%s] -x on a sleeping target: %ld non-idle samples (expected (nearly) empty output): %s",
                  H_CTX(py), p.stack_total, h_profile_str(&p, 6));
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
    expect_quiet_stderr(py);
}
END_TEST

START_TEST(test_one_sample)
{
    const h_python *py = h_python_get(_i);
    cpu_stack c;
    cpu_stack_init(&c);
    h_proc *t = h_target_start(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_profile p;
    h_pyflame_runl(&r, 10, "-s", "0", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    expect_target_ok(py, t, "pyflame -s 0");
    ck_assert_msg(h_profile_total(&p) == 1, "[%s] -s 0 gave %ld samples, want exactly 1: %s", H_CTX(py),
                  h_profile_total(&p), h_profile_str(&p, 6));
    ck_assert_msg(r.elapsed < 2.0, "[%s] -s 0 took %.2f s", H_CTX(py), r.elapsed);
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
    expect_quiet_stderr(py);
}
END_TEST

START_TEST(test_rate)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_start(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_profile p;
    /* -s 0.5 -r 0.05 gives at most 11 samples, -r 0.005 must give more than
     * that.  The upper bounds are strict; a sampler starved by a loaded
     * machine gets up to three tries for the lower ones. */
    long slow = 0, fast = 0;
    for (int attempt = 0; attempt < 3 && (slow < 3 || fast <= 13); attempt++) {
        h_pyflame_runl(&r, 15, "-s", "0.5", "-r", "0.05", "-p", pid, NULL);
        expect_ok_profile(py, &r, &p);
        slow = h_profile_total(&p);
        ck_assert_msg(slow <= 13, "[%s] -s 0.5 -r 0.05 gave %ld samples (want <= 13): %s", H_CTX(py), slow,
                      h_profile_str(&p, 3));
        h_profile_free(&p);
        h_result_free(&r);
        h_pyflame_runl(&r, 15, "-s", "0.5", "-r", "0.005", "-p", pid, NULL);
        expect_ok_profile(py, &r, &p);
        fast = h_profile_total(&p);
        ck_assert_msg(fast <= 103, "[%s] -s 0.5 -r 0.005 gave %ld samples (want <= 103)", H_CTX(py), fast);
        h_profile_free(&p);
        h_result_free(&r);
    }
    expect_target_ok(py, t, "pyflame -r");
    ck_assert_msg(slow >= 3, "[%s] -s 0.5 -r 0.05 gave %ld samples (want 3..13), three times", H_CTX(py), slow);
    ck_assert_msg(fast > 13, "[%s] -s 0.5 -r 0.005 gave %ld samples, no more than -r 0.05 can (%ld, max 13), "
                  "three times", H_CTX(py), fast, slow);
    h_proc_stop(t);
    expect_quiet_stderr(py);
}
END_TEST

START_TEST(test_target_exits)
{
    const h_python *py = h_python_get(_i);
    cpu_stack c;
    cpu_stack_init(&c);
    h_proc *t = h_target_startl(py, "cpu.py", "seconds=1", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_profile p;
    h_pyflame_runl(&r, 15, "-s", "-1", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    ck_assert_msg(r.elapsed < 6.0, "[%s] -s -1: pyflame took %.2f s to notice that the target exited after 1 s",
                  H_CTX(py), r.elapsed);
    int st = h_proc_wait(t, 5);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "[%s] target did not exit normally after being profiled (wait status 0x%x, %s); stderr: %s",
                  H_CTX(py), st, st == -1 ? "still running" : "exited", h_proc_stderr(t));
    expect_cpu_stack(py, &c, &p, 75, 5, "-s -1 until the target exits");
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
    expect_quiet_stderr(py);
}
END_TEST

START_TEST(test_launch)
{
    const h_python *py = h_python_get(_i);
    cpu_stack c;
    cpu_stack_init(&c);
    h_result r;
    h_profile p;
    h_pyflame_runl(&r, 20, "-t", py->path, c.file, "seconds=1", "quiet", NULL);
    expect_ok_profile(py, &r, &p);
    /* the profile also holds the interpreter's start-up and shutdown */
    expect_cpu_stack(py, &c, &p, 60, 5, "-t python cpu.py");
    h_profile_free(&p);
    h_result_free(&r);

    h_pyflame_runl(&r, 20, "-t", py->path, c.file, "seconds=0.5", "exit=3", "quiet", NULL);
    ck_assert_msg(!r.timed_out && r.status == 3, "[%s] -t with a command that exits 3: want exit 3: %s",
                  H_CTX(py), h_result_str(&r));
    ck_assert_msg(h_parse_collapsed(r.out, &p) == 0 && cpu_known(&p, &c) > 0,
                  "[%s] -t with a command that exits 3: the profile is missing or lacks the expected stack %s: %s",
                  H_CTX(py), cpu_expected_str(&c), h_result_str(&r));
    h_profile_free(&p);
    h_result_free(&r);
    expect_quiet_stderr(py);
}
END_TEST

static int count_frames(const char *stack)
{
    int n = 1;
    for (; *stack; stack++)
        n += *stack == ';';
    return n;
}

/* shapes.py: a method, a generator, a closure, a lambda, 50 recursive frames
 * and an __init__ (under 3.13's hidden shim frame), each with its own call line. */
START_TEST(test_frame_kinds)
{
    const h_python *py = h_python_get(_i);
    enum { DEPTH = 50 };
    char f[PATH_MAX];
    h_target_path("shapes.py", f);
    size_t cap = 16 * PATH_MAX + DEPTH * (PATH_MAX + 32);
    char *prefix = malloc(cap);
    ck_assert_ptr_nonnull(prefix);
    size_t l = (size_t)snprintf(prefix, cap,
                                "%s:<module>:%d;%s:main:%d;%s:method:%d;%s:gen:%d;%s:inner:%d;%s:<lambda>:%d;",
                                f, h_marker_line("shapes.py", "module_call"), f, h_marker_line("shapes.py", "main_call"),
                                f, h_marker_line("shapes.py", "method_call"), f, h_marker_line("shapes.py", "gen_call"),
                                f, h_marker_line("shapes.py", "inner_call"), f, h_marker_line("shapes.py", "lambda_call"));
    for (int k = 0; k < DEPTH - 1; k++)
        l += (size_t)snprintf(prefix + l, cap - l, "%s:recurse:%d;", f, h_marker_line("shapes.py", "recurse_self"));
    l += (size_t)snprintf(prefix + l, cap - l, "%s:recurse:%d;%s:__init__:", f, h_marker_line("shapes.py", "recurse_leaf"), f);
    int hot[MAX_HOT];
    int nhot = h_marker_lines("shapes.py", "leaf_hot", hot, MAX_HOT);

    char depth[16];
    snprintf(depth, sizeof(depth), "depth=%d", DEPTH);
    h_proc *t = h_target_startl(py, "shapes.py", depth, NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_profile p;
    h_pyflame_runl(&r, 15, "-s", "0.5", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    expect_target_ok(py, t, "pyflame on shapes.py");
    long known = 0;
    char *want = malloc(cap + 16);
    ck_assert_ptr_nonnull(want);
    for (int i = 0; i < nhot; i++) {
        snprintf(want, cap + 16, "%s%d", prefix, hot[i]);
        known += h_profile_count(&p, want);
    }
    long nonidle = p.failed + p.stack_total;
    if (!(nonidle >= 10 && known * 100 >= 95 * nonidle)) {
        /* say where the first seen stack differs from the expected one */
        char seen[512] = "(no stack)";
        if (p.nstacks) {
            const char *a = p.stacks[0].text;
            size_t k = 0;
            while (a[k] && a[k] == prefix[k])
                k++;
            size_t from = k > 120 ? k - 120 : 0;
            snprintf(seen, sizeof(seen), "first stack (%ld samples, %d frames) differs at byte %zu: ...%.240s",
                     p.stacks[0].count, count_frames(a), k, a + from);
        }
        ck_abort_msg("[%s] shapes.py: %ld of %ld non-idle samples show the expected %d-frame stack "
                     "(<module> main method gen inner <lambda> recurse*%d __init__); %s; expected ...%.240s; "
                     "profile: %.300s; run: %.600s",
                     H_CTX(py), known, nonidle, DEPTH + 7, DEPTH, seen,
                     prefix + (strlen(prefix) > 240 ? strlen(prefix) - 240 : 0), h_profile_str(&p, 3),
                     h_result_str(&r));
    }
    free(want);
    free(prefix);
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
    expect_quiet_stderr(py);
}
END_TEST

/* ---- single-interpreter tests ------------------------------------------------------ */

/* One line on stderr containing `want`, nothing on stdout, exit 1. */
static void expect_error(h_result *r, const char *want)
{
    ck_assert_msg(!r->timed_out && r->status == 1, "want exit 1: %s", h_result_str(r));
    ck_assert_msg(r->out_len == 0, "want nothing on stdout: %s", h_result_str(r));
    ck_assert_msg(h_is_one_line(r->err), "want a one-line message on stderr: %s", h_result_str(r));
    ck_assert_msg(!want || strstr(r->err, want), "want \"%s\" in the message: %s", want, h_result_str(r));
    ck_assert_msg(!r->stray, "pyflame left processes behind: %s", h_result_str(r));
}

START_TEST(test_version)
{
    h_result r;
    h_pyflame_runl(&r, 5, "-v", NULL);
    ck_assert_msg(r.status == 0 && r.err_len == 0, "-v: %s", h_result_str(&r));
    ck_assert_msg(h_match("^pyflame [0-9]+\\.[0-9]+\\.[0-9]+ linux x86_64 \\(ABI list: 27 36 37 38 39 310 311 312 313\\)\n$",
                          r.out) && h_count_lines(r.out) == 1,
                  "-v: unexpected version line: %s", h_result_str(&r));
    h_result_free(&r);
}
END_TEST

START_TEST(test_no_arguments)
{
    h_result r;
    const char *none[] = { NULL };
    h_pyflame_run(&r, 5, none);
    ck_assert_msg(r.status == 1 && r.out_len == 0, "no arguments: want exit 1 and empty stdout: %s",
                  h_result_str(&r));
    ck_assert_msg(strncmp(r.err, "Usage: pyflame", 14) == 0, "no arguments: want the usage on stderr: %s",
                  h_result_str(&r));
    h_result_free(&r);
}
END_TEST

START_TEST(test_bad_arguments)
{
    /* a live target, so that a wrongly accepted option cannot pass by failing later */
    const h_python *py = h_python_default();
    h_proc *t = h_target_start(py, "sleeper.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    struct { const char *args[8]; const char *want; } cases[] = {
        { { "-p", "abc", NULL }, "failed to parse \"abc\"" },
        { { "-p", "0", NULL }, "failed to parse \"0\"" },
        { { "-s", "abc", "-p", pid, NULL }, "\"abc\"" },
        { { "-r", "abc", "-p", pid, NULL }, "\"abc\"" },
        { { "--bogus", "-p", pid, NULL }, "--bogus" },
        { { "-L", "-p", pid, NULL }, "-- 'L'" },
        { { "--abi=99", "-p", pid, NULL }, "Unknown or unsupported ABI" },
        { { "-p", pid, "-t", py->path, "-c", "pass", NULL }, "mutually compatible" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h_result r;
        h_pyflame_run(&r, 10, cases[i].args);
        expect_error(&r, cases[i].want);
        expect_target_ok(py, t, r.cmd);
        h_result_free(&r);
    }
    h_proc_stop(t);
}
END_TEST

START_TEST(test_no_such_pid)
{
    char pid[16], want[64];
    h_pidstr(h_dead_pid(), pid);
    snprintf(want, sizeof(want), "Failed to seize PID %s", pid);
    h_result r;
    h_pyflame_runl(&r, 10, "-s", "0.2", "-p", pid, NULL);
    expect_error(&r, want);
    h_result_free(&r);
}
END_TEST

START_TEST(test_not_python)
{
    const char *argv[] = { "sh", "-c", "echo ready; exec sleep 100", NULL };
    h_proc *t = h_spawn(argv, "ready", 5);
    usleep(50000);   /* let the exec happen */
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_pyflame_runl(&r, 15, "-s", "0.2", "-p", pid, NULL);
    expect_error(&r, "Failed to locate libpython");
    expect_target_ok(NULL, t, "pyflame on sleep 100");
    h_result_free(&r);
    h_proc_stop(t);
}
END_TEST

START_TEST(test_output_file)
{
    const h_python *py = h_python_default();
    cpu_stack c;
    cpu_stack_init(&c);
    h_proc *t = h_target_start(py, "cpu.py", NULL);
    char pid[16], out[PATH_MAX];
    h_pidstr(t->pid, pid);
    snprintf(out, sizeof(out), "%s/profile.txt", h_tmpdir());
    h_result r;
    h_pyflame_runl(&r, 15, "-s", "0.5", "-o", out, "-p", pid, NULL);
    ck_assert_msg(r.status == 0 && r.out_len == 0, "[%s] -o FILE: want exit 0 and nothing on stdout: %s",
                  H_CTX(py), h_result_str(&r));
    if (r.err_len)
        snprintf(quiet_violation, sizeof(quiet_violation), "`%.300s` wrote \"%.600s\"", r.cmd, r.err);
    expect_target_ok(py, t, "pyflame -o FILE");
    char *text = h_read_file(out, NULL);
    ck_assert_msg(text != NULL, "[%s] -o %s: the file was not written: %s", H_CTX(py), out, h_result_str(&r));
    h_profile p;
    ck_assert_msg(h_parse_collapsed(text, &p) == 0, "[%s] -o: malformed line in the file: \"%s\"", H_CTX(py), p.bad);
    expect_cpu_stack(py, &c, &p, 95, 5, "-o FILE");
    free(text);
    h_profile_free(&p);
    h_result_free(&r);

    /* failed runs create no file: no such PID, and a PID that is not Python */
    char fail1[PATH_MAX], fail2[PATH_MAX], dead[16];
    snprintf(fail1, sizeof(fail1), "%s/fail1.txt", h_tmpdir());
    snprintf(fail2, sizeof(fail2), "%s/fail2.txt", h_tmpdir());
    h_pidstr(h_dead_pid(), dead);
    h_pyflame_runl(&r, 10, "-s", "0.2", "-o", fail1, "-p", dead, NULL);
    expect_error(&r, "Failed to seize PID");
    ck_assert_msg(access(fail1, F_OK) != 0, "-o: a failed run (no such PID) created %s", fail1);
    h_result_free(&r);
    /* ... nor truncates an existing one */
    FILE *f = fopen(fail1, "w");
    ck_assert_msg(f != NULL, "cannot write %s", fail1);
    fputs("old contents\n", f);
    fclose(f);
    h_pyflame_runl(&r, 10, "-s", "0.2", "-o", fail1, "-p", dead, NULL);
    expect_error(&r, "Failed to seize PID");
    text = h_read_file(fail1, NULL);
    ck_assert_msg(text && strcmp(text, "old contents\n") == 0, "-o: a failed run changed the existing %s to \"%s\"",
                  fail1, text ? text : "(removed)");
    free(text);
    unlink(fail1);
    h_result_free(&r);
    const char *argv[] = { "sh", "-c", "echo ready; exec sleep 100", NULL };
    h_proc *s = h_spawn(argv, "ready", 5);
    usleep(50000);
    h_pyflame_runl(&r, 15, "-s", "0.2", "-o", fail2, "-p", h_pidstr(s->pid, pid), NULL);
    expect_error(&r, "Failed to locate libpython");
    ck_assert_msg(access(fail2, F_OK) != 0, "-o: a failed run (not a Python process) created %s", fail2);
    h_result_free(&r);
    h_proc_stop(s);
    h_proc_stop(t);
    expect_quiet_stderr(py);
}
END_TEST

START_TEST(test_output_bad_dir)
{
    const h_python *py = h_python_default();
    h_proc *t = h_target_start(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_pyflame_runl(&r, 15, "-s", "0.3", "-o", "/nonexistent/dir/x", "-p", pid, NULL);
    expect_error(&r, "/nonexistent/dir/x");
    expect_target_ok(py, t, "pyflame -o /nonexistent/dir/x");
    h_result_free(&r);
    h_proc_stop(t);
}
END_TEST

START_TEST(test_launch_missing_command)
{
    h_result r;
    h_pyflame_runl(&r, 10, "-t", "/no/such/cmd", NULL);
    ck_assert_msg(!r.timed_out && r.status == 1, "-t /no/such/cmd: want exit 1: %s", h_result_str(&r));
    ck_assert_msg(strstr(r.err, "Child process exited with status") != NULL,
                  "-t /no/such/cmd: want \"Child process exited with status\": %s", h_result_str(&r));
    ck_assert_msg(r.out_len == 0, "-t /no/such/cmd: want nothing on stdout: %s", h_result_str(&r));
    h_result_free(&r);
}
END_TEST

START_TEST(test_help)
{
    h_result r;
    h_pyflame_runl(&r, 5, "-h", NULL);
    ck_assert_msg(r.status == 0 && r.err_len == 0, "-h: want exit 0 and nothing on stderr: %s", h_result_str(&r));
    ck_assert_msg(h_match("^pyflame [0-9.]+ linux x86_64 \\(ABI list: [0-9 ]+\\)\n\nUsage: pyflame ", r.out),
                  "-h: want the version line, an empty line and the usage on stdout: %s", h_result_str(&r));
    h_result_free(&r);
}
END_TEST

START_TEST(test_trace_errors)
{
    h_result r;
    h_pyflame_runl(&r, 5, "-t", NULL);
    ck_assert_msg(r.status == 1 && r.out_len == 0 && strstr(r.err, "Option -t requires a command to run.") &&
                      strstr(r.err, "\nUsage: pyflame"),
                  "-t without a command: want exit 1, the message and the usage: %s", h_result_str(&r));
    h_result_free(&r);
    h_pyflame_runl(&r, 5, "-t", h_pyflame(), "-v", NULL);
    expect_error(&r, "You tried to pyflame a pyflame, naughty!");
    h_result_free(&r);
}
END_TEST

/* Deprecated `pyflame PID`: a WARNING line, then a normal run. */
START_TEST(test_positional_pid)
{
    const h_python *py = h_python_default();
    cpu_stack c;
    cpu_stack_init(&c);
    h_proc *t = h_target_start(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_pyflame_runl(&r, 15, "-s", "0.3", pid, NULL);
    ck_assert_msg(r.status == 0 && strncmp(r.err, "WARNING: Specifying a PID to trace without -p is deprecated", 59) == 0,
                  "[%s] positional PID: want exit 0 and the deprecation WARNING: %s", H_CTX(py), h_result_str(&r));
    if (!h_is_one_line(r.err))
        snprintf(quiet_violation, sizeof(quiet_violation), "`%.300s` wrote more than the WARNING: \"%.600s\"",
                 r.cmd, r.err);
    h_profile p;
    ck_assert_msg(h_parse_collapsed(r.out, &p) == 0, "[%s] positional PID: malformed line \"%s\"", H_CTX(py), p.bad);
    expect_cpu_stack(py, &c, &p, 95, 3, "positional PID");
    expect_target_ok(py, t, "pyflame PID");
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
    expect_quiet_stderr(py);
}
END_TEST

/* A second pyflame on a traced target fails cleanly; the first one is not
 * disturbed, and the target ends up untraced. */
START_TEST(test_already_traced)
{
    const h_python *py = h_python_default();
    h_proc *t = h_target_start(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    const char *argv[] = { h_pyflame(), "-s", "2", "-p", pid, NULL };
    h_proc *first = h_spawn(argv, NULL, 0);
    pid_t tracer = h_wait_traced(t->pid, 5);
    ck_assert_msg(tracer == first->pid, "[%s] the first pyflame (pid %d) did not attach within 5 s (TracerPid %d)",
                  H_CTX(py), (int)first->pid, (int)tracer);
    h_result r;
    h_pyflame_runl(&r, 10, "-s", "0.2", "-p", pid, NULL);
    expect_error(&r, "Failed to seize PID");
    h_result_free(&r);
    int st = h_proc_wait(first, 10);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "[%s] the first pyflame did not exit 0 (wait status 0x%x); stderr: %s", H_CTX(py), st,
                  h_proc_stderr(first));
    expect_target_ok(py, t, "two pyflames");
    h_proc_stop(first);
    h_proc_stop(t);
}
END_TEST

/* A forced wrong ABI must not hang, and must leave the target untraced. */
START_TEST(test_wrong_abi_terminates)
{
    const h_python *py = h_python_default();
    h_proc *t = h_target_start(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    const char *abis[] = { "--abi=27", "--abi=39", "--abi=311" };
    for (size_t i = 0; i < sizeof(abis) / sizeof(abis[0]); i++) {
        h_result r;
        h_pyflame_runl(&r, 10, abis[i], "-s", "0.3", "-p", pid, NULL);
        ck_assert_msg(!r.timed_out && r.elapsed < 5 && (r.status == 0 || r.status == 1),
                      "[%s] wrong ABI: want a prompt exit 0 or 1: %s", H_CTX(py), h_result_str(&r));
        expect_target_ok(py, t, r.cmd);
        h_result_free(&r);
    }
    h_proc_stop(t);
}
END_TEST

/* -r 0: no sleep between samples, still ends on time. */
START_TEST(test_rate_zero)
{
    const h_python *py = h_python_default();
    h_proc *t = h_target_start(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_profile p;
    h_pyflame_runl(&r, 10, "-s", "0.3", "-r", "0", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    ck_assert_msg(r.elapsed < 3 && h_profile_total(&p) >= 10, "[%s] -r 0 -s 0.3: %ld samples in %.2f s: %s",
                  H_CTX(py), h_profile_total(&p), r.elapsed, h_profile_str(&p, 4));
    expect_target_ok(py, t, "pyflame -r 0");
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
    expect_quiet_stderr(py);
}
END_TEST

/* -t: a command killed by signal N gives 128+N, with the profile written. */
START_TEST(test_launch_signal)
{
    const h_python *py = h_python_default();
    cpu_stack c;
    cpu_stack_init(&c);
    h_result r;
    h_pyflame_runl(&r, 20, "-t", py->path, c.file, "seconds=0.2", "signal=15", "quiet", NULL);
    ck_assert_msg(!r.timed_out && r.status == 128 + 15, "[%s] -t with a command killed by SIGTERM: want exit 143: %s",
                  H_CTX(py), h_result_str(&r));
    h_profile p;
    ck_assert_msg(h_parse_collapsed(r.out, &p) == 0 && cpu_known(&p, &c) > 0,
                  "[%s] -t, command killed by SIGTERM: profile missing or without %s: %s", H_CTX(py),
                  cpu_expected_str(&c), h_result_str(&r));
    h_profile_free(&p);
    h_result_free(&r);
}
END_TEST

/* Every line flamegraph.pl reads must be "^.+ [0-9]+$" with no empty frame; if
 * flamegraph.pl is installed, it must not ignore any line. */
START_TEST(test_flamegraph_compat)
{
    const h_python *py = h_python_default();
    h_proc *cpu = h_target_start(py, "cpu.py", NULL);
    h_proc *idle = h_target_start(py, "sleeper.py", NULL);
    char pid[16], path[PATH_MAX];
    const char *dir = h_tmpdir();
    struct { h_proc *t; const char *opt; const char *name; } runs[] = {
        { cpu, "-s0.3", "cpu.txt" }, { cpu, "-n", "cpu-n.txt" }, { idle, "-s0.3", "idle.txt" },
    };
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        h_result r;
        snprintf(path, sizeof(path), "%s/%s", dir, runs[i].name);
        h_pyflame_runl(&r, 15, "-s", "0.3", runs[i].opt, "-o", path, "-p", h_pidstr(runs[i].t->pid, pid), NULL);
        ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
        char *text = h_read_file(path, NULL);
        ck_assert_msg(text && *text, "[%s] %s: empty profile", H_CTX(py), r.cmd);
        for (char *s = text; *s;) {
            char *eol = strchr(s, '\n');
            ck_assert_msg(eol != NULL, "[%s] %s: last line has no newline", H_CTX(py), r.cmd);
            *eol = '\0';
            ck_assert_msg(h_match("^.+ [0-9]+$", s) && !strstr(s, ";;") && s[0] != ';' && !strstr(s, "; "),
                          "[%s] %s: line not in flamegraph.pl format: \"%s\"", H_CTX(py), r.cmd, s);
            s = eol + 1;
        }
        free(text);
        h_result_free(&r);
    }
    expect_target_ok(py, cpu, "the flamegraph runs");
    expect_target_ok(py, idle, "the flamegraph runs");

    char fg[PATH_MAX];
    const char *env = getenv("FLAMEGRAPH_PL");
    if (env && *env)
        snprintf(fg, sizeof(fg), "%s", env);
    else if (!h_find_program("flamegraph.pl", fg) && !h_find_program("flamegraph", fg)) {
        h_skip("flamegraph.pl run: flamegraph.pl is not installed (not on PATH, FLAMEGRAPH_PL unset; "
               "apt-get install libdevel-nytprof-perl ships one); only the line format was checked");
        fg[0] = '\0';
    }
    for (size_t i = 0; fg[0] && i < sizeof(runs) / sizeof(runs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, runs[i].name);
        const char *argv[] = { "perl", fg, path, NULL };
        h_result r;
        h_run(&r, argv, 30);
        ck_assert_msg(r.status == 0 && strstr(r.out, "<svg") && !strstr(r.err, "Ignored"),
                      "flamegraph.pl did not take every line of %s: %s", runs[i].name, h_result_str(&r));
        h_result_free(&r);
    }
    h_proc_stop(cpu);
    h_proc_stop(idle);
}
END_TEST

int main(void)
{
    h_init();
    int n = h_python_count();
    Suite *s = suite_create("core");

    TCase *per = tcase_create("per-python");
    tcase_set_timeout(per, 60);
    if (n == 0)
        h_skip("every per-interpreter test: no python interpreter found");
    tcase_add_loop_test(per, test_cpu_stack, 0, n);
    tcase_add_loop_test(per, test_no_line_numbers, 0, n);
    tcase_add_loop_test(per, test_idle, 0, n);
    tcase_add_loop_test(per, test_one_sample, 0, n);
    tcase_add_loop_test(per, test_rate, 0, n);
    tcase_add_loop_test(per, test_target_exits, 0, n);
    tcase_add_loop_test(per, test_launch, 0, n);
    tcase_add_loop_test(per, test_frame_kinds, 0, n);
    suite_add_tcase(s, per);

    TCase *cli = tcase_create("cli");
    tcase_set_timeout(cli, 60);
    tcase_add_test(cli, test_version);
    tcase_add_test(cli, test_no_arguments);
    tcase_add_test(cli, test_no_such_pid);
    tcase_add_test(cli, test_not_python);
    tcase_add_test(cli, test_launch_missing_command);
    tcase_add_test(cli, test_help);
    tcase_add_test(cli, test_trace_errors);
    if (n > 0) {
        tcase_add_test(cli, test_bad_arguments);
        tcase_add_test(cli, test_output_file);
        tcase_add_test(cli, test_output_bad_dir);
        tcase_add_test(cli, test_flamegraph_compat);
        tcase_add_test(cli, test_positional_pid);
        tcase_add_test(cli, test_already_traced);
        tcase_add_test(cli, test_wrong_abi_terminates);
        tcase_add_test(cli, test_rate_zero);
        tcase_add_test(cli, test_launch_signal);
    } else {
        h_skip("bad-argument, -o and flamegraph tests: no python interpreter found");
    }
    suite_add_tcase(s, cli);
    return h_run_suite(s);
}
