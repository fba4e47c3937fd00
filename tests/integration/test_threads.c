/*
 * test_threads.c - --threads, --per-thread, --thread, --gil, -x and -d on a
 * target whose threads each sit at a known depth in a known function
 * (tests/targets/threads.py), under every interpreter present.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "integration/harness.h"

#define DEPTH 50
#define DEPTH_ARG "depth=50"

static const char *const workers[] = { "spin_a", "spin_b", "sleeper", "blocked", "hasher" };
#define NWORKERS 5

/* Which worker a stack belongs to, judged by its leaf; -1 for the main
 * thread, -2 for a stack that is neither (torn or unexpected). */
static int classify(const char *stack, int *chain_frames)
{
    h_frame fr[256];
    *chain_frames = 0;
    if (strncmp(stack, "thread ", 7) == 0) {   /* --per-thread root */
        stack = strchr(stack, ';');
        if (!stack)
            return -2;
        stack++;
    }
    int n = h_split_frames(stack, fr, 256, 1);
    if (n <= 0)
        return -2;
    int start = 0;
    for (int i = start; i < n; i++)
        if (strcmp(fr[i].func, "chain") == 0)
            (*chain_frames)++;
    const char *leaf = fr[n - 1].func;
    if (strcmp(leaf, "main") == 0 && strcmp(fr[start].func, "<module>") == 0)
        return -1;
    for (int w = 0; w < NWORKERS; w++)
        if (strcmp(leaf, workers[w]) == 0)
            return w;
    return -2;
}

/* --threads: every worker shows its full stack on every tick, none is torn. */
START_TEST(test_threads_full_stacks)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_startl(py, "threads.py", DEPTH_ARG, NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_pyflame_runl(&r, 20, "--threads", "-s", "1", "-r", "0.01", "-p", pid, NULL);
    ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    h_profile p;
    ck_assert_msg(h_parse_collapsed(r.out, &p) == 0, "[%s] bad line %s", H_CTX(py), p.bad);
    long per_worker[NWORKERS] = { 0 }, bad = 0, main_count = 0;
    char badstack[512] = "";
    for (size_t i = 0; i < p.nstacks; i++) {
        int chain = 0, w = classify(p.stacks[i].text, &chain);
        if (w >= 0 && chain == DEPTH) {
            per_worker[w] += p.stacks[i].count;
        } else if (w == -1) {
            main_count += p.stacks[i].count;
        } else {
            bad += p.stacks[i].count;
            snprintf(badstack, sizeof(badstack), "%.500s", p.stacks[i].text);
        }
    }
    ck_assert_msg(bad == 0, "[%s] %ld torn or unexpected samples, e.g. %s", H_CTX(py), bad, badstack);
    ck_assert_msg(p.failed == 0, "[%s] %ld failed samples", H_CTX(py), p.failed);
    long ticks = main_count;
    ck_assert_msg(ticks >= 20, "[%s] only %ld ticks: %s", H_CTX(py), ticks, h_profile_str(&p, 10));
    for (int w = 0; w < NWORKERS; w++)
        ck_assert_msg(per_worker[w] == ticks, "[%s] %s seen in %ld of %ld ticks", H_CTX(py),
                      workers[w], per_worker[w], ticks);
    char why[256];
    ck_assert_msg(h_check_running_untraced(t->pid, why, sizeof(why)) == 0, "[%s] %s", H_CTX(py), why);
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
}
END_TEST

/* --per-thread roots carry real TIDs; --thread TID keeps only that thread. */
START_TEST(test_threads_per_thread_and_filter)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_startl(py, "threads.py", "depth=3", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_pyflame_runl(&r, 20, "--per-thread", "-s", "0.3", "-p", pid, NULL);
    ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    h_profile p;
    h_parse_collapsed(r.out, &p);
    int spin_tid = 0, roots = 0;
    for (size_t i = 0; i < p.nstacks; i++) {
        const char *s = p.stacks[i].text;
        ck_assert_msg(strncmp(s, "thread ", 7) == 0, "[%s] no thread root: %s", H_CTX(py), s);
        const char *open = strchr(s, '(');
        const char *close = open ? strchr(open, ')') : NULL;
        ck_assert_msg(open && close, "[%s] bad root: %s", H_CTX(py), s);
        int tid = atoi(open + 1);
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)t->pid, tid);
        ck_assert_msg(tid > 0 && access(path, F_OK) == 0, "[%s] TID %d is not a task of %d: %s",
                      H_CTX(py), tid, (int)t->pid, s);
        int chain;
        if (classify(s, &chain) == 0)
            spin_tid = tid;
        roots++;
    }
    ck_assert_msg(spin_tid > 0, "[%s] spin_a not found: %s", H_CTX(py), h_profile_str(&p, 10));
    h_profile_free(&p);
    h_result_free(&r);

    char tidarg[32];
    snprintf(tidarg, sizeof(tidarg), "--thread=%d", spin_tid);
    h_pyflame_runl(&r, 20, tidarg, "-s", "0.3", "-p", pid, NULL);
    ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    h_parse_collapsed(r.out, &p);
    ck_assert_msg(p.nstacks >= 1, "[%s] --thread kept nothing", H_CTX(py));
    for (size_t i = 0; i < p.nstacks; i++) {
        int chain;
        ck_assert_msg(classify(p.stacks[i].text, &chain) == 0, "[%s] --thread %d kept %s", H_CTX(py),
                      spin_tid, p.stacks[i].text);
    }
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
}
END_TEST

/* --gil keeps only the GIL holder; -x drops threads that sleep or wait. */
START_TEST(test_threads_gil_and_idle)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_startl(py, "threads.py", "depth=3", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_profile p;
    const char *modes[2] = { "--gil", "-x" };
    for (int m = 0; m < 2; m++) {
        h_pyflame_runl(&r, 20, "--threads", modes[m], "-s", "0.5", "-p", pid, NULL);
        ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
        h_parse_collapsed(r.out, &p);
        long busy = 0, waking = 0, blocked = 0;
        const char *blocked_stack = "";
        for (size_t i = 0; i < p.nstacks; i++) {
            int chain, w = classify(p.stacks[i].text, &chain);
            /* "blocked" never runs; the sleepers wake every 50 ms for a moment */
            if (w == 3) {
                blocked += p.stacks[i].count;
                blocked_stack = p.stacks[i].text;
            } else if (w == 2 || w == -1) {
                waking += p.stacks[i].count;
            } else {
                busy += p.stacks[i].count;
            }
        }
        /* --gil never keeps it.  -x judges a thread by its CPU time over each
         * tick; on this VM a tick now and then charges the blocked thread
         * with milliseconds it did not use (host steal time during its wake
         * for our stop), so a few of its samples may stay: not one in ten
         * (about one in three if -x kept it). */
        ck_assert_msg(m == 0 ? blocked == 0 : blocked * 10 <= busy,
                      "[%s] %s kept the blocked thread in %ld samples (%ld busy): %s", H_CTX(py),
                      modes[m], blocked, busy, blocked_stack);
        ck_assert_msg(waking * 5 <= busy, "[%s] %s kept %ld samples of sleeping threads (%ld busy)",
                      H_CTX(py), modes[m], waking, busy);
        ck_assert_msg(busy > 0, "[%s] %s kept nothing", H_CTX(py), modes[m]);
        if (m == 0) {
            /* at most one GIL holder per tick */
            ck_assert_msg(busy <= 60, "[%s] --gil: %ld samples in 0.5 s", H_CTX(py), busy);
        }
        h_profile_free(&p);
        h_result_free(&r);
    }
    h_proc_stop(t);
}
END_TEST

/* -d: one snapshot, every worker thread, the GIL holder marked once. */
START_TEST(test_threads_dump)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_startl(py, "threads.py", "depth=3", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    int stars_seen = 0;
    for (int round = 0; round < 5; round++) {
        h_result r;
        h_pyflame_runl(&r, 20, "-d", "-p", pid, NULL);
        ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
        int stars = 0, headers = 0, seen[NWORKERS] = { 0 };
        /* blocks separated by one empty line: a header, then frames leaf first */
        char *text = strdup(r.out);
        for (char *block = text; block && *block;) {
            char *end = strstr(block, "\n\n");
            if (end)
                *end = '\0';
            char *nl = strchr(block, '\n');
            ck_assert_msg(nl != NULL, "[%s] header without frames: %s", H_CTX(py), block);
            *nl = '\0';
            char *leaf = nl + 1, *leaf_end = strchr(leaf, '\n');
            if (leaf_end)
                *leaf_end = '\0';
            ck_assert_msg(h_match("^[0-9]+\\*?: tid [0-9]+", block), "[%s] bad header %s", H_CTX(py), block);
            headers++;
            int star = strchr(block, '*') != NULL;
            stars += star;
            for (int w = 0; w < NWORKERS; w++) {
                char pat[64];
                snprintf(pat, sizeof(pat), ":%s:[0-9]+$", workers[w]);
                if (h_match(pat, leaf)) {
                    seen[w] = 1;
                    /* Any but `blocked` (waiting on a lock forever) may hold the GIL:
                     * the sleeper does for a moment each time it wakes up. */
                    if (star)
                        ck_assert_msg(w != 3, "[%s] GIL holder is %s", H_CTX(py), workers[w]);
                }
            }
            block = end ? end + 2 : NULL;
        }
        free(text);
        ck_assert_msg(headers >= NWORKERS + 1, "[%s] %d threads in the dump:\n%s", H_CTX(py), headers, r.out);
        for (int w = 0; w < NWORKERS; w++)
            ck_assert_msg(seen[w], "[%s] %s missing from the dump:\n%s", H_CTX(py), workers[w], r.out);
        ck_assert_msg(stars <= 1, "[%s] %d GIL holders in one dump", H_CTX(py), stars);
        stars_seen += stars;
        h_result_free(&r);
    }
    ck_assert_msg(stars_seen > 0, "[%s] no GIL holder marked in 5 dumps", H_CTX(py));
    char why[256];
    ck_assert_msg(h_check_running_untraced(t->pid, why, sizeof(why)) == 0, "[%s] %s", H_CTX(py), why);
    h_proc_stop(t);
}
END_TEST

/* Threads created and joined during the run cost nothing but their samples. */
START_TEST(test_threads_churn)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_startl(py, "threads.py", "depth=3", "churn", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_pyflame_runl(&r, 20, "--threads", "-s", "1", "-r", "0.01", "-p", pid, NULL);
    ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    h_profile p;
    ck_assert_msg(h_parse_collapsed(r.out, &p) == 0, "[%s] bad line %s", H_CTX(py), p.bad);
    ck_assert_msg(p.stack_total > 200, "[%s] %ld samples", H_CTX(py), p.stack_total);
    ck_assert_msg(p.failed * 20 < p.stack_total, "[%s] %ld failed of %ld", H_CTX(py), p.failed,
                  p.stack_total);
    ck_assert_msg(r.err_len == 0 || h_match("^pyflame: sampling fell behind", r.err), "[%s] stderr: %s",
                  H_CTX(py), r.err);
    ck_assert_msg(h_proc_alive(t), "[%s] the target died", H_CTX(py));
    char why[256];
    ck_assert_msg(h_check_running_untraced(t->pid, why, sizeof(why)) == 0, "[%s] %s", H_CTX(py), why);
    h_profile_free(&p);
    h_result_free(&r);
    h_proc_stop(t);
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("per-python");
    tcase_set_timeout(tc, 60);
    int n = h_python_count();
    tcase_add_loop_test(tc, test_threads_full_stacks, 0, n);
    tcase_add_loop_test(tc, test_threads_per_thread_and_filter, 0, n);
    tcase_add_loop_test(tc, test_threads_gil_and_idle, 0, n);
    tcase_add_loop_test(tc, test_threads_dump, 0, n);
    tcase_add_loop_test(tc, test_threads_churn, 0, n);
    suite_add_tcase(s, tc);
    return h_run_suite(s);
}
