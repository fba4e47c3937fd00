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

/* A successful pyflame run: exit 0, nothing on stderr, well-formed collapsed
 * output (every stack line ^.+ [0-9]+$ with no empty frame, final newline). */
static void expect_ok_profile(const h_python *py, h_result *r, h_profile *p)
{
    ck_assert_msg(!r->timed_out && r->status == 0, "[%s] pyflame failed: %s", H_CTX(py), h_result_str(r));
    ck_assert_msg(r->err_len == 0, "[%s] pyflame succeeded but wrote to stderr: %s", H_CTX(py), h_result_str(r));
    ck_assert_msg(!r->stray, "[%s] pyflame left processes behind: %s", H_CTX(py), h_result_str(r));
    int rc = h_parse_collapsed(r->out, p);
    ck_assert_msg(rc == 0, "[%s] malformed collapsed line \"%s\" (%d bad lines): %s", H_CTX(py), p->bad,
                  p->nbad, h_result_str(r));
    ck_assert_msg(!p->no_final_newline, "[%s] output does not end with a newline: %s", H_CTX(py),
                  h_result_str(r));
    ck_assert_msg(p->idle_line <= 1, "[%s] (idle) is on line %d, not first: %s", H_CTX(py), p->idle_line,
                  h_profile_str(p, 6));
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
    ck_assert_msg(total >= 40 && total <= 110, "[%s] -s 1 -r 0.01 gave %ld samples (want 40..110): %s",
                  H_CTX(py), total, h_profile_str(&p, 6));
    ck_assert_msg(p.idle * 10 <= total, "[%s] a CPU-bound target is mostly idle: %s", H_CTX(py),
                  h_profile_str(&p, 6));
    expect_cpu_stack(py, &c, &p, 95, 30, "-s 1");
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
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
    ck_assert_msg(nonidle >= 15 && known * 100 >= 95 * nonidle,
                  "[%s] -n: %ld of %ld non-idle samples show \"%s\" (want >= 95%%): %s", H_CTX(py), known,
                  nonidle, c.nolines, h_profile_str(&p, 6));
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
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
    ck_assert_msg(total >= 20 && p.idle * 100 >= 90 * total,
                  "[%s] sleeping target: %ld idle of %ld samples (want >= 90%% idle, >= 20 samples): %s",
                  H_CTX(py), p.idle, total, h_profile_str(&p, 6));
    h_profile_free(&p);
    h_result_free(&r);

    /* -x: no (idle) line (empty output expected) */
    h_pyflame_runl(&r, 15, "-x", "-s", "0.5", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    expect_target_ok(py, t, "pyflame -x");
    ck_assert_msg(p.idle_line == 0 && p.idle == 0, "[%s] -x printed an (idle) line: %s", H_CTX(py),
                  h_profile_str(&p, 6));
    ck_assert_msg(p.stack_total * 10 <= total,
                  "[%s] -x on a sleeping target: %ld non-idle samples (expected (nearly) empty output): %s",
                  H_CTX(py), p.stack_total, h_profile_str(&p, 6));
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
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
    h_pyflame_runl(&r, 15, "-s", "0.5", "-r", "0.05", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    long slow = h_profile_total(&p);
    h_profile_free(&p);
    h_result_free(&r);
    h_pyflame_runl(&r, 15, "-s", "0.5", "-r", "0.005", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    long fast = h_profile_total(&p);
    expect_target_ok(py, t, "pyflame -r");
    ck_assert_msg(slow >= 5 && slow <= 13, "[%s] -s 0.5 -r 0.05 gave %ld samples (want 5..13)", H_CTX(py), slow);
    ck_assert_msg(fast >= 40 && fast >= 3 * slow,
                  "[%s] -s 0.5 -r 0.005 gave %ld samples (want >= 40 and >= 3x the %ld of -r 0.05)", H_CTX(py),
                  fast, slow);
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
}
END_TEST

START_TEST(test_target_exits)
{
    const h_python *py = h_python_get(_i);
    cpu_stack c;
    cpu_stack_init(&c);
    h_proc *t = h_target_startl(py, "cpu.py", "seconds=0.6", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_profile p;
    h_pyflame_runl(&r, 15, "-s", "-1", "-p", pid, NULL);
    expect_ok_profile(py, &r, &p);
    ck_assert_msg(r.elapsed < 4.0, "[%s] -s -1: pyflame took %.2f s to notice that the target exited after 0.6 s",
                  H_CTX(py), r.elapsed);
    int st = h_proc_wait(t, 5);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "[%s] target did not exit normally after being profiled (wait status 0x%x, %s); stderr: %s",
                  H_CTX(py), st, st == -1 ? "still running" : "exited", h_proc_stderr(t));
    expect_cpu_stack(py, &c, &p, 80, 20, "-s -1 until the target exits");
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
}
END_TEST

START_TEST(test_launch)
{
    const h_python *py = h_python_get(_i);
    cpu_stack c;
    cpu_stack_init(&c);
    h_result r;
    h_profile p;
    h_pyflame_runl(&r, 20, "-t", py->path, c.file, "seconds=0.5", "quiet", NULL);
    expect_ok_profile(py, &r, &p);
    /* the profile also holds the interpreter's start-up and shutdown */
    expect_cpu_stack(py, &c, &p, 60, 20, "-t python cpu.py");
    h_profile_free(&p);
    h_result_free(&r);

    h_pyflame_runl(&r, 20, "-t", py->path, c.file, "seconds=0.2", "exit=3", "quiet", NULL);
    ck_assert_msg(!r.timed_out && r.status == 3, "[%s] -t with a command that exits 3: want exit 3: %s",
                  H_CTX(py), h_result_str(&r));
    ck_assert_msg(h_parse_collapsed(r.out, &p) == 0 && cpu_known(&p, &c) > 0,
                  "[%s] -t with a command that exits 3: the profile is missing or lacks the expected stack %s: %s",
                  H_CTX(py), cpu_expected_str(&c), h_result_str(&r));
    h_profile_free(&p);
    h_result_free(&r);
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
    ck_assert_msg(r.status == 0 && r.out_len == 0 && r.err_len == 0,
                  "[%s] -o FILE: want exit 0 and nothing on stdout/stderr: %s", H_CTX(py), h_result_str(&r));
    expect_target_ok(py, t, "pyflame -o FILE");
    char *text = h_read_file(out, NULL);
    ck_assert_msg(text != NULL, "[%s] -o %s: the file was not written: %s", H_CTX(py), out, h_result_str(&r));
    h_profile p;
    ck_assert_msg(h_parse_collapsed(text, &p) == 0, "[%s] -o: malformed line in the file: \"%s\"", H_CTX(py), p.bad);
    expect_cpu_stack(py, &c, &p, 95, 15, "-o FILE");
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
    const char *argv[] = { "sh", "-c", "echo ready; exec sleep 100", NULL };
    h_proc *s = h_spawn(argv, "ready", 5);
    usleep(50000);
    h_pyflame_runl(&r, 15, "-s", "0.2", "-o", fail2, "-p", h_pidstr(s->pid, pid), NULL);
    expect_error(&r, "Failed to locate libpython");
    ck_assert_msg(access(fail2, F_OK) != 0, "-o: a failed run (not a Python process) created %s", fail2);
    h_result_free(&r);
    h_proc_stop(s);
    h_proc_stop(t);
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
               "Debian 12 has no package that ships it); only the line format was checked");
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
    suite_add_tcase(s, per);

    TCase *cli = tcase_create("cli");
    tcase_set_timeout(cli, 60);
    tcase_add_test(cli, test_version);
    tcase_add_test(cli, test_no_arguments);
    tcase_add_test(cli, test_no_such_pid);
    tcase_add_test(cli, test_not_python);
    tcase_add_test(cli, test_launch_missing_command);
    if (n > 0) {
        tcase_add_test(cli, test_bad_arguments);
        tcase_add_test(cli, test_output_file);
        tcase_add_test(cli, test_output_bad_dir);
        tcase_add_test(cli, test_flamegraph_compat);
    } else {
        h_skip("bad-argument, -o and flamegraph tests: no python interpreter found");
    }
    suite_add_tcase(s, cli);
    return h_run_suite(s);
}
