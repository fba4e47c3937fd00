/*
 * test_robust_names.c - output injection.  tests/targets/robust_names.py
 * runs a chain of functions whose file names and function names (and a
 * thread's name) hold ';', spaces, newlines, '<', '&', '"', control bytes,
 * invalid UTF-8, a NUL byte, "]]>", U+2028 and 3000-character names.  For
 * every interpreter it is profiled (--threads, one tick) into every output
 * format: collapsed (also -n, --per-thread and, on 3.11+, --qualnames),
 * flamechart, svg, speedscope, pprof, chrome, and the -d dump; then
 * tests/targets/robust_names_check.py checks each file: collapsed lines parse
 * (one stack per line, the count last, no stack deeper than the target's),
 * no control bytes, UTF-8, the SVG is well-formed (xmllint --noout), the
 * JSON parses, the pprof decompresses into well-formed protobuf.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* A Python 3 to run the checker: Debian's, else the newest shared 3.x found. */
static const char *checker_python(void)
{
    static char path[PATH_MAX];
    if (access("/usr/bin/python3", X_OK) == 0)
        return "/usr/bin/python3";
    const h_python *py = h_python_default();
    if (py && py->major == 3) {
        h_snprintf(path, sizeof(path), "%s", py->path);
        return path;
    }
    return NULL;
}

static const struct kind {
    const char *name;
    const char *args[4];
    int min_minor;            /* 3.x only from this minor (0: every version) */
} kinds[] = {
    { "collapsed", { "-f", "collapsed", NULL }, 0 },
    { "collapsed-n", { "-f", "collapsed", "-n", NULL }, 0 },
    { "per-thread", { "-f", "collapsed", "--per-thread", NULL }, 0 },
    { "qualnames", { "-f", "collapsed", "--qualnames", NULL }, 11 },
    { "flamechart", { "-f", "flamechart", NULL }, 0 },
    { "svg", { "-f", "svg", NULL }, 0 },
    { "speedscope", { "-f", "speedscope", NULL }, 0 },
    { "pprof", { "-f", "pprof", NULL }, 0 },
    { "chrome", { "-f", "chrome", NULL }, 0 },
    { "dump", { "-d", NULL }, 0 },
};
#define NKIND ((int)(sizeof(kinds) / sizeof(kinds[0])))

START_TEST(test_names)
{
    const h_python *py = h_python_get(_i);
    const char *checker_py = checker_python();
    if (!checker_py) {
        h_skip("[%s] hostile names: no Python 3 to run tests/targets/robust_names_check.py", H_CTX(py));
        return;
    }
    h_proc *t = h_target_startl(py, "robust_names.py", NULL);
    int dmain = 0, dworker = 0;
    const char *rl = strstr(t->out, "depths main=");
    ck_assert_msg(rl && sscanf(rl, "depths main=%d worker=%d", &dmain, &dworker) == 2, "[%s] target said: %s",
                  H_CTX(py), t->out);
    int maxdepth = (dmain > dworker ? dmain : dworker) + 2;
    char pid[16];
    h_pidstr(t->pid, pid);

    const char *cargv[64];
    char files[NKIND][PATH_MAX + 32];
    char depth[16], checker[PATH_MAX];
    int nc = 0;
    h_snprintf(depth, sizeof(depth), "%d", maxdepth);
    h_target_path("robust_names_check.py", checker);
    cargv[nc++] = checker_py;
    cargv[nc++] = "-S";
    cargv[nc++] = checker;
    cargv[nc++] = depth;
    for (int k = 0; k < NKIND; k++) {
        if (kinds[k].min_minor && (py->major < 3 || py->minor < kinds[k].min_minor))
            continue;
        char out[PATH_MAX];
        h_snprintf(out, sizeof(out), "%s/names.%d.%s", h_tmpdir(), _i, kinds[k].name);
        const char *args[16];
        int n = 0;
        for (int a = 0; kinds[k].args[a]; a++)
            args[n++] = kinds[k].args[a];
        if (strcmp(kinds[k].name, "dump") != 0) {
            args[n++] = "--threads";
            args[n++] = "-s";
            args[n++] = "0";
        }
        args[n++] = "-o";
        args[n++] = out;
        args[n++] = "-p";
        args[n++] = pid;
        args[n] = NULL;
        h_result r;
        h_pyflame_run(&r, 20, args);
        ck_assert_msg(!r.timed_out && r.status == 0, "[%s] %s: %s", H_CTX(py), kinds[k].name, h_result_str(&r));
        ck_assert_msg(r.err_len == 0, "[%s] %s: stderr: %s", H_CTX(py), kinds[k].name, h_result_str(&r));
        h_result_free(&r);
        char why[1024];
        ck_assert_msg(h_check_running_untraced(t->pid, why, sizeof(why)) == 0, "[%s] %s: target harmed: %s",
                      H_CTX(py), kinds[k].name, why);
        h_snprintf(files[k], sizeof(files[k]), "%s=%s", kinds[k].name, out);
        cargv[nc++] = files[k];
    }
    cargv[nc] = NULL;
    h_result r;
    h_run(&r, cargv, 60);
    ck_assert_msg(r.status == 0, "[%s] hostile names broke the output:\n%s%s", H_CTX(py), r.out, r.err);
    h_result_free(&r);
    h_proc_stop(t);
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("robust_names");
    TCase *tc = tcase_create("names");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_names, 0, h_python_count());
    suite_add_tcase(s, tc);
    return h_run_suite(s);
}
