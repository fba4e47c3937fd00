/*
 * test_formats.c - one profile of a threaded target, written in every
 * format in the same run (-o repeated), checked by real readers where this
 * machine has them (flamegraph.pl, xmllint, go tool pprof) and by a
 * structural parse of the whole file otherwise (formats_check.py): every
 * format must hold the same sample total.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "integration/harness.h"

static char dir[PATH_MAX / 2];
static long collapsed_total;

/* Runs pyflame once for all formats (in the first test; the others read the files). */
static void profile_once(void)
{
    if (collapsed_total)
        return;
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "threads.py", "depth=5", NULL);
    char pid[16], o[6][PATH_MAX];
    h_pidstr(t->pid, pid);
    snprintf(dir, sizeof(dir), "%.2000s", h_tmpdir());
    const char *ext[6] = { "txt", "svg", "speedscope.json", "pb.gz", "json", "flamechart" };
    for (int i = 0; i < 6; i++)
        snprintf(o[i], sizeof(o[i]), "%s/p.%s", dir, ext[i]);
    h_result r;
    h_pyflame_runl(&r, 40, "--threads", "-s", "5", "-p", pid, "-o", o[0], "-o", o[1], "-o", o[2],
                   "-o", o[3], "-o", o[4], "-o", o[5], NULL);
    ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    h_result_free(&r);
    char *text = h_read_file(o[0], NULL);
    h_profile p;
    ck_assert_msg(text && h_parse_collapsed(text, &p) == 0, "bad collapsed output: %s", text ? text : "");
    collapsed_total = h_profile_total(&p);
    ck_assert_msg(collapsed_total > 100, "only %ld samples", collapsed_total);
    h_profile_free(&p);
    free(text);
    h_proc_stop(t);
}

/* formats_check.py's total for one format. */
static long structural_total(const char *name)
{
    char script[PATH_MAX], python[PATH_MAX];
    snprintf(script, sizeof(script), "%s/../integration/formats_check.py", h_targets_dir());
    if (!h_find_program("python3", python))
        return -2;
    const char *argv[] = { python, script, dir, NULL };
    h_result r;
    h_run(&r, argv, 60);
    ck_assert_msg(r.status == 0, "formats_check.py: %s", h_result_str(&r));
    char pat[64];
    snprintf(pat, sizeof(pat), "%s ", name);
    const char *line = strstr(r.out, pat);
    long v = line ? atol(line + strlen(pat)) : -1;
    h_result_free(&r);
    return v;
}

START_TEST(test_structural)
{
    profile_once();
    long ss = structural_total("speedscope"), fc = structural_total("flamechart");
    if (ss == -2) {
        h_skip("formats structural check: python3 not found");
        return;
    }
    ck_assert_msg(structural_total("collapsed") == collapsed_total, "collapsed total differs");
    ck_assert_msg(ss == collapsed_total, "speedscope holds %ld samples, collapsed %ld", ss, collapsed_total);
    ck_assert_msg(fc == collapsed_total, "flamechart holds %ld samples, collapsed %ld", fc, collapsed_total);
    ck_assert_msg(structural_total("chrome_threads") >= 6, "chrome trace: fewer than 6 threads");
}
END_TEST

START_TEST(test_flamegraph_pl)
{
    profile_once();
    char prog[PATH_MAX];
    const char *nytprof = "/usr/share/perl5/Devel/NYTProf/flamegraph.pl";
    const char *fg = h_find_program("flamegraph.pl", prog) ? prog : access(nytprof, R_OK) == 0 ? nytprof : NULL;
    if (!fg) {
        h_skip("flamegraph.pl not installed (apt-get install libdevel-nytprof-perl ships one)");
        return;
    }
    char in[PATH_MAX];
    snprintf(in, sizeof(in), "%s/p.txt", dir);
    const char *argv[] = { "perl", fg, in, NULL };
    h_result r;
    h_run(&r, argv, 60);
    ck_assert_msg(r.status == 0 && !strstr(r.err, "Ignored"), "flamegraph.pl: %s", h_result_str(&r));
    /* flamegraph.pl writes counts with thousands separators */
    char num[32], grouped[48], want[64];
    snprintf(num, sizeof(num), "%ld", collapsed_total);
    size_t len = strlen(num), k = 0;
    for (size_t i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0)
            grouped[k++] = ',';
        grouped[k++] = num[i];
    }
    grouped[k] = '\0';
    snprintf(want, sizeof(want), "(%s samples, 100%%)", grouped);
    ck_assert_msg(strstr(r.out, want) != NULL, "flamegraph.pl's root is not %s", want);
    h_result_free(&r);
}
END_TEST

START_TEST(test_svg)
{
    profile_once();
    char svg[PATH_MAX], prog[PATH_MAX];
    snprintf(svg, sizeof(svg), "%s/p.svg", dir);
    char *text = h_read_file(svg, NULL);
    char want[80];
    snprintf(want, sizeof(want), "<title>all (%ld samples, 100.00%%)</title>", collapsed_total);
    ck_assert_msg(text && strstr(text, want), "the SVG's root is not \"%s\"", want);
    free(text);
    if (!h_find_program("xmllint", prog)) {
        h_skip("xmllint not installed (apt-get install libxml2-utils)");
        return;
    }
    const char *argv[] = { prog, "--noout", svg, NULL };
    h_result r;
    h_run(&r, argv, 30);
    ck_assert_msg(r.status == 0, "xmllint: %s", h_result_str(&r));
    h_result_free(&r);
}
END_TEST

START_TEST(test_pprof)
{
    profile_once();
    char go[PATH_MAX], pb[PATH_MAX];
    if (!h_find_program("go", go)) {
        h_skip("go tool pprof not installed (apt-get install golang-go)");
        return;
    }
    snprintf(pb, sizeof(pb), "%s/p.pb.gz", dir);
    const char *argv[] = { go, "tool", "pprof", "-raw", pb, NULL };
    h_result r;
    h_run(&r, argv, 60);
    ck_assert_msg(r.status == 0, "go tool pprof: %s", h_result_str(&r));
    long total = 0;
    char *save = NULL;
    for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        long count, nanos;
        if (sscanf(line, " %ld %ld:", &count, &nanos) == 2)
            total += count;
    }
    ck_assert_msg(total == collapsed_total, "pprof holds %ld samples, collapsed %ld", total,
                  collapsed_total);
    h_result_free(&r);
}
END_TEST

/* --qualnames: Class.method and the enclosing function of closures on 3.11+,
 * where code objects carry co_qualname; plain names before. */
START_TEST(test_qualnames)
{
    const h_python *py = h_python_get(_i);
    h_proc *t = h_target_startl(py, "shapes.py", "depth=3", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    h_result r;
    h_pyflame_runl(&r, 20, "--qualnames", "-s", "0.3", "-p", pid, NULL);
    ck_assert_msg(r.status == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    int modern = py->major == 3 && py->minor >= 11;
    const char *want = modern ? ":Walker\\.method:[0-9]+;.*:gen\\.<locals>\\.inner:" : ":method:[0-9]+;.*:inner:";
    ck_assert_msg(h_match(want, r.out), "[%s] no %s in: %s", H_CTX(py), want, h_result_str(&r));
    h_result_free(&r);
    h_pyflame_runl(&r, 20, "-s", "0.3", "-p", pid, NULL);
    ck_assert_msg(r.status == 0 && !strstr(r.out, "Walker.method"), "[%s] qualified names without "
                  "--qualnames: %s", H_CTX(py), h_result_str(&r));
    h_result_free(&r);
    h_proc_stop(t);
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("formats");
    TCase *tc = tcase_create("formats");
    tcase_set_timeout(tc, 120);
    /* one process for all cases: they share the profile written once */
    tcase_add_test(tc, test_structural);
    tcase_add_test(tc, test_flamegraph_pl);
    tcase_add_test(tc, test_svg);
    tcase_add_test(tc, test_pprof);
    suite_add_tcase(s, tc);
    TCase *q = tcase_create("qualnames");
    tcase_set_timeout(q, 60);
    tcase_add_loop_test(q, test_qualnames, 0, h_python_count());
    suite_add_tcase(s, q);
    setenv("CK_FORK", "no", 1);
    return h_run_suite(s);
}
