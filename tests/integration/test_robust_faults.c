/*
 * test_robust_faults.c - pyflame against hostile memory.
 *
 * PYFLAME_TEST_FAULTS (src/mem.c) makes a share of the sampler's remote
 * reads fail, come back truncated or scrambled.  For every interpreter
 * found, a busy threaded target (tests/targets/robust_busy.py, which checks
 * its own results) is profiled for ~1 s under several fault mixes, without
 * and with --threads (the runs of one round go in parallel, one target per
 * mix).  Every run must:
 *   - exit 0 within 15 s (never crash, never hang);
 *   - write a parseable collapsed profile (-o), with the bad reads counted as
 *     "(failed) N"; with fail=1.0 every sample is failed;
 *   - stay small (maximum RSS < 64 MiB, from /usr/bin/time);
 *   - leave the target running, with no task stopped or traced, and the
 *     target's own result correct at the end.
 * -d (one snapshot) under faults gives a dump or a one-line error.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAX_RSS_KB (64 * 1024)
#define RUN_TIMEOUT 15.0

static const struct mix {
    const char *faults;
    int all_failed;      /* every sample must be (failed) */
    int some_failed;     /* (failed) N must be there */
} mixes[] = {
    { "fail=0.1,corrupt=0.05,truncate=0.05,seed=7", 0, 1 },
    { "corrupt=0.5,seed=3", 0, 0 },
    { "fail=1.0", 1, 1 },
    { "corrupt=1.0,seed=5", 0, 0 },
};
#define NMIX ((int)(sizeof(mixes) / sizeof(mixes[0])))

static int have_time(void)
{
    return access("/usr/bin/time", X_OK) == 0;
}

/* One pyflame run in the background: env PYFLAME_TEST_FAULTS=... [time] pyflame ... -o out */
struct run {
    h_proc *proc;
    char out[PATH_MAX], rss[PATH_MAX];
    char desc[512];
};

static void run_start(struct run *r, const h_python *py, int mix, int threads, pid_t target, int idx)
{
    char env[128], pid[16];
    h_snprintf(env, sizeof(env), "PYFLAME_TEST_FAULTS=%s", mixes[mix].faults);
    h_pidstr(target, pid);
    h_snprintf(r->out, sizeof(r->out), "%s/out.%d.%d.txt", h_tmpdir(), idx, threads);
    h_snprintf(r->rss, sizeof(r->rss), "%s/rss.%d.%d.txt", h_tmpdir(), idx, threads);
    unlink(r->out);
    unlink(r->rss);
    const char *argv[24];
    int n = 0;
    argv[n++] = "env";
    argv[n++] = env;
    if (have_time()) {
        argv[n++] = "/usr/bin/time";
        argv[n++] = "-o";
        argv[n++] = r->rss;
        argv[n++] = "-f";
        argv[n++] = "maxrss_kb %M";
    }
    argv[n++] = h_pyflame();
    if (threads)
        argv[n++] = "--threads";
    argv[n++] = "-s";
    argv[n++] = "1";
    argv[n++] = "-o";
    argv[n++] = r->out;
    argv[n++] = "-p";
    argv[n++] = pid;
    argv[n] = NULL;
    h_snprintf(r->desc, sizeof(r->desc), "[%s] PYFLAME_TEST_FAULTS=%s pyflame%s -s 1 -p %s", H_CTX(py),
              mixes[mix].faults, threads ? " --threads" : "", pid);
    r->proc = h_spawn(argv, NULL, 0);
}

/* Waits for the run and checks everything about it. */
static void run_check(struct run *r, int mix, h_proc *target)
{
    int st = h_proc_wait(r->proc, RUN_TIMEOUT);
    ck_assert_msg(st != -1, "%s: still running after %.0f s (hang); stderr: %s", r->desc, RUN_TIMEOUT,
                  h_proc_stderr(r->proc));
    char err[4096];
    h_snprintf(err, sizeof(err), "%s", h_proc_stderr(r->proc));
    char *rss = h_read_file(r->rss, NULL);
    /* /usr/bin/time reports a signal as "Command terminated by signal N". */
    ck_assert_msg(!rss || !strstr(rss, "signal"), "%s: pyflame crashed: %s; stderr: %s", r->desc, rss, err);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: want exit 0, got status 0x%x; stderr: %s; %s",
                  r->desc, st, err, rss ? rss : "");
    if (rss) {
        const char *m = strstr(rss, "maxrss_kb ");
        long kb = m ? strtol(m + 10, NULL, 10) : -1;
        ck_assert_msg(kb > 0 && kb < MAX_RSS_KB, "%s: maximum RSS %ld KiB (limit %d KiB)", r->desc, kb,
                      MAX_RSS_KB);
        free(rss);
    }
    size_t len = 0;
    char *text = h_read_file(r->out, &len);
    ck_assert_msg(text != NULL, "%s: no output file %s; stderr: %s", r->desc, r->out, err);
    ck_assert_msg(strlen(text) == len, "%s: a NUL byte in the output", r->desc);
    h_profile p;
    int rc = h_parse_collapsed(text, &p);
    ck_assert_msg(rc == 0, "%s: malformed line \"%s\" (%d bad lines)", r->desc, p.bad, p.nbad);
    ck_assert_msg(!p.no_final_newline, "%s: no final newline", r->desc);
    ck_assert_msg(p.idle_line <= 1 && (p.failed_line == 0 || p.failed_line == (p.idle_line ? 2 : 1)),
                  "%s: (idle) on line %d, (failed) on line %d: %.300s", r->desc, p.idle_line, p.failed_line, text);
    long total = h_profile_total(&p);
    ck_assert_msg(total >= 1, "%s: only %ld samples in 1 s: %.300s; stderr: %s", r->desc, total, text, err);
    if (mixes[mix].all_failed)
        ck_assert_msg(p.failed > 0 && p.idle == 0 && p.nstacks == 0,
                      "%s: every sample should be (failed): %.500s", r->desc, text);
    if (mixes[mix].some_failed)
        ck_assert_msg(p.failed > 0, "%s: bad reads should show as (failed) N: %.500s", r->desc, text);
    /* stderr: only pyflame's own one-line notes; never an empty one. */
    for (const char *l = err; *l;) {
        const char *eol = strchr(l, '\n');
        size_t ll = eol ? (size_t)(eol - l) : strlen(l);
        ck_assert_msg(ll > 10 && strncmp(l, "pyflame: ", 9) == 0, "%s: odd line on stderr: \"%.*s\" (all: %s)",
                      r->desc, (int)ll, l, err);
        l += ll + (eol ? 1 : 0);
    }
    h_profile_free(&p);
    free(text);
    char why[1024];
    ck_assert_msg(h_check_running_untraced(target->pid, why, sizeof(why)) == 0, "%s: target harmed: %s (stderr: %s)",
                  r->desc, why, h_proc_stderr(target));
    h_proc_stop(r->proc);
    r->proc = NULL;
}

/* Stops a robust_busy.py target through its stop file and checks its verdict. */
static void target_finish(h_proc *t, const char *stop, const char *ctx)
{
    FILE *f = fopen(stop, "w");
    if (f)
        fclose(f);
    int st = h_proc_wait(t, 20);
    ck_assert_msg(st != -1, "%s: the target did not stop within 20 s of its stop file", ctx);
    ck_assert_msg(strstr(t->out, "result ") != NULL, "%s: no result line (status 0x%x): %s; stderr: %s", ctx, st,
                  t->out, h_proc_stderr(t));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(t->out, "errors=0 eintr=0") != NULL,
                  "%s: the target computed wrong results or saw EINTR (status 0x%x): %s; stderr: %s", ctx, st,
                  strstr(t->out, "result "), h_proc_stderr(t));
}

START_TEST(test_faults)
{
    const h_python *py = h_python_get(_i);
    if (!have_time() && _i == 0)
        h_skip("memory bound: /usr/bin/time is not installed (apt-get install time); RSS not checked");
    /* One target per (mix, mode); all the runs go in parallel. */
    h_proc *targets[2 * NMIX];
    char stops[2 * NMIX][PATH_MAX];
    /* Started together (an interpreter can take a while to start on a busy
     * machine), then each waited for. */
    char script[PATH_MAX];
    h_target_path("robust_busy.py", script);
    for (int k = 0; k < 2 * NMIX; k++) {
        char stoparg[PATH_MAX + 8];
        h_snprintf(stops[k], sizeof(stops[k]), "%s/stop.%d", h_tmpdir(), k);
        h_snprintf(stoparg, sizeof(stoparg), "stop=%s", stops[k]);
        const char *argv[] = { py->path, script, "threads=1", stoparg, NULL };
        targets[k] = h_spawn(argv, NULL, 0);
    }
    for (int k = 0; k < 2 * NMIX; k++) {
        for (int w = 0; w < 3000 && !strstr(targets[k]->out, "ready\n"); w++)
            if (h_proc_wait(targets[k], 0.01) != -1)
                break;   /* it exited */
        ck_assert_msg(strstr(targets[k]->out, "ready\n") != NULL, "[%s] robust_busy.py did not start: %s",
                      H_CTX(py), h_proc_stderr(targets[k]));
    }
    struct run runs[2 * NMIX];
    for (int k = 0; k < 2 * NMIX; k++)
        run_start(&runs[k], py, k % NMIX, k / NMIX, targets[k]->pid, k);
    for (int k = 0; k < 2 * NMIX; k++) {
        ck_assert_msg(h_proc_alive(targets[k]), "[%s] %s: the target died (status 0x%x): %s", H_CTX(py),
                      mixes[k % NMIX].faults, targets[k]->wstatus, h_proc_stderr(targets[k]));
        run_check(&runs[k], k % NMIX, targets[k]);
    }
    /* -d under faults: a dump (exit 0) or a one-line error (exit 1). */
    static const char *const dump_mixes[] = { "corrupt=0.5,seed=9", "fail=1.0", "truncate=0.5,seed=2" };
    for (size_t k = 0; k < sizeof(dump_mixes) / sizeof(dump_mixes[0]); k++) {
        char env[128], pid[16];
        h_snprintf(env, sizeof(env), "PYFLAME_TEST_FAULTS=%s", dump_mixes[k]);
        h_pidstr(targets[0]->pid, pid);
        const char *argv[] = { "env", env, h_pyflame(), "-d", "-p", pid, NULL };
        h_result r;
        h_run(&r, argv, RUN_TIMEOUT);
        ck_assert_msg(!r.timed_out && !r.signaled && (r.status == 0 || (r.status == 1 && h_is_one_line(r.err))),
                      "[%s] -d under %s: want a dump or a one-line error: %s", H_CTX(py), dump_mixes[k],
                      h_result_str(&r));
        h_result_free(&r);
        char why[1024];
        ck_assert_msg(h_check_running_untraced(targets[0]->pid, why, sizeof(why)) == 0,
                      "[%s] -d under %s: target harmed: %s", H_CTX(py), dump_mixes[k], why);
    }
    for (int k = 0; k < 2 * NMIX; k++) {
        char ctx[256];
        h_snprintf(ctx, sizeof(ctx), "[%s] target of %s%s", H_CTX(py), mixes[k % NMIX].faults,
                  k >= NMIX ? " --threads" : "");
        target_finish(targets[k], stops[k], ctx);
        h_proc_stop(targets[k]);
    }
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("robust_faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 90);
    tcase_add_loop_test(tc, test_faults, 0, h_python_count());
    suite_add_tcase(s, tc);
    return h_run_suite(s);
}
