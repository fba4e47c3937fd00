/*
 * test_robust_input.c - bad input gives one line on stderr and exit 1, and
 * never touches the target:
 *   - PIDs that are not PIDs (0, negative, huge, not a number), a PID that
 *     does not exist, a kernel thread (PID 2, kthreadd), a zombie, processes
 *     that are not Python (sleep, a C program compiled here);
 *   - a target already traced by another tracer (a tiny ptrace program
 *     compiled here, and strace when installed): the message names the
 *     tracer's PID as /proc/PID/status shows it; a tracer on one secondary
 *     thread only must not leave the other threads stopped;
 *   - -o into a missing directory, onto a directory, onto a read-only file
 *     (a read-only bind mount as root; a 0444 file as an unprivileged user):
 *     refused before attaching, the existing file untouched;
 *   - contradictory options (-p with -t, -d with -t, --flamechart with -f svg);
 *   - an interpreter still starting (attach right after exec) or finalizing
 *     (spinning in atexit, then in __del__ during finalization): a clean
 *     profile or a one-line error, never garbage, the target unharmed;
 *   - permission denied (pyflame as uid 65534 against a root-owned Python):
 *     the hint names kernel.yama.ptrace_scope / CAP_SYS_PTRACE.
 */
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* ---- helpers ------------------------------------------------------------------ */

/* A one-line error and exit 1, nothing on stdout, quickly. */
static void expect_error(h_result *r, const char *ctx)
{
    ck_assert_msg(!r->timed_out, "%s: pyflame hung: %s", ctx, h_result_str(r));
    ck_assert_msg(r->status == 1, "%s: want exit 1: %s", ctx, h_result_str(r));
    ck_assert_msg(r->out_len == 0, "%s: want nothing on stdout: %s", ctx, h_result_str(r));
    ck_assert_msg(h_is_one_line(r->err), "%s: want exactly one line on stderr: %s", ctx, h_result_str(r));
    ck_assert_msg(!r->stray, "%s: pyflame left processes behind: %s", ctx, h_result_str(r));
}

static void expect_untouched(h_proc *t, const char *ctx)
{
    char why[1024];
    ck_assert_msg(h_check_running_untraced(t->pid, why, sizeof(why)) == 0, "%s: target harmed: %s", ctx, why);
}

/* TracerPid of one task (or -1). */
static long tracer_of(pid_t pid, pid_t tid)
{
    char path[128];
    h_snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
    char *s = h_read_file(path, NULL);
    if (!s)
        return -1;
    const char *tp = strstr(s, "\nTracerPid:");
    long v = tp ? strtol(tp + 11, NULL, 10) : -1;
    free(s);
    return v;
}

/* 1 if the decimal number n appears in s as a whole number. */
static int mentions_number(const char *s, long n)
{
    char num[32];
    h_snprintf(num, sizeof(num), "%ld", n);
    size_t l = strlen(num);
    for (const char *p = s; (p = strstr(p, num)); p++)
        if ((p == s || !isdigit((unsigned char)p[-1])) && !isdigit((unsigned char)p[l]))
            return 1;
    return 0;
}

/* Compiles C source into tmpdir/name; returns the path (static). */
static const char *compile_c(const char *name, const char *src)
{
    static char exe[PATH_MAX];
    char cfile[PATH_MAX];
    h_snprintf(cfile, sizeof(cfile), "%s/%s.c", h_tmpdir(), name);
    h_snprintf(exe, sizeof(exe), "%s/%s", h_tmpdir(), name);
    FILE *f = fopen(cfile, "w");
    ck_assert_msg(f != NULL, "cannot write %s", cfile);
    fputs(src, f);
    fclose(f);
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    const char *argv[] = { cc, "-O1", "-o", exe, cfile, NULL };
    h_result r;
    h_run(&r, argv, 60);
    ck_assert_msg(r.status == 0, "cannot compile %s: %s", name, h_result_str(&r));
    h_result_free(&r);
    return exe;
}

/* A C program that is not Python: prints ready, spins and sleeps. */
static const char plain_c[] =
    "#include <stdio.h>\n#include <unistd.h>\n"
    "volatile unsigned long counter;\n"
    "int main(int argc, char **argv) { puts(\"ready\"); fflush(stdout); if (argc > 1) return 3;\n"
    "  for (;;) { for (int i = 0; i < 1000000; i++) counter += i; usleep(1000); } }\n";

/* A tracer: PTRACE_SEIZEs the tasks of PID (argv[2]: "main" the main thread,
 * "last" the newest thread only, "all" every thread), prints ready and
 * passes on any signal its tracees get until it is killed. */
static const char tracer_c[] =
    "#include <dirent.h>\n#include <signal.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
    "#include <string.h>\n#include <sys/ptrace.h>\n#include <sys/wait.h>\n#include <unistd.h>\n"
    "int main(int argc, char **argv) {\n"
    "  int pid = atoi(argv[1]); const char *mode = argc > 2 ? argv[2] : \"main\";\n"
    "  char dir[64]; snprintf(dir, sizeof dir, \"/proc/%d/task\", pid);\n"
    "  int tids[256], n = 0, last = 0; DIR *d = opendir(dir); struct dirent *de;\n"
    "  if (!d) { perror(dir); return 1; }\n"
    "  while ((de = readdir(d)) && n < 256) if (de->d_name[0] != '.') tids[n++] = atoi(de->d_name);\n"
    "  closedir(d);\n"
    "  for (int i = 0; i < n; i++) if (tids[i] > last) last = tids[i];\n"
    "  for (int i = 0; i < n; i++) {\n"
    "    int t = tids[i];\n"
    "    if (strcmp(mode, \"all\") && !(strcmp(mode, \"main\") == 0 && t == pid) &&\n"
    "        !(strcmp(mode, \"last\") == 0 && t == last)) continue;\n"
    "    if (ptrace(PTRACE_SEIZE, t, 0, 0) != 0) { perror(\"PTRACE_SEIZE\"); return 1; }\n"
    "    printf(\"traced %d\\n\", t);\n"
    "  }\n"
    "  puts(\"ready\"); fflush(stdout);\n"
    "  for (;;) { int st; int w = waitpid(-1, &st, __WALL);\n"
    "    if (w < 0) { pause(); continue; }\n"
    "    if (WIFSTOPPED(st)) { int s = WSTOPSIG(st);\n"
    "      if ((st >> 16) == PTRACE_EVENT_STOP) ptrace(PTRACE_LISTEN, w, 0, 0);\n"
    "      else ptrace(PTRACE_CONT, w, 0, s == SIGTRAP ? 0 : s); } }\n"
    "}\n";

/* ---- PIDs that are not PIDs ----------------------------------------------------- */

static const char *const bad_pids[] = { "0", "-1", "-42", "99999999999", "abc", "12abc", "", "0x10",
                                        "2147483648" };

START_TEST(test_bad_pid_values)
{
    const char *v = bad_pids[_i];
    char ctx[128];
    h_result r;
    h_snprintf(ctx, sizeof(ctx), "-p '%s'", v);
    h_pyflame_runl(&r, 10, "-s", "0.2", "-p", v, NULL);
    expect_error(&r, ctx);
    h_result_free(&r);
    if (v[0] && v[0] != '-') {   /* as a bare PID (a leading '-' is an option) */
        h_snprintf(ctx, sizeof(ctx), "bare PID '%s'", v);
        h_pyflame_runl(&r, 10, "-s", "0.2", v, NULL);
        ck_assert_msg(!r.timed_out && r.status == 1 && r.out_len == 0, "%s: want exit 1: %s", ctx,
                      h_result_str(&r));
        /* The bare form prints the usage after the message, as Pyflame did:
         * the first line must still be the error. */
        ck_assert_msg(strstr(r.err, "failed to parse") != NULL, "%s: %s", ctx, h_result_str(&r));
        h_result_free(&r);
    }
}
END_TEST

START_TEST(test_no_such_pid)
{
    char pid[16];
    h_pidstr(h_dead_pid(), pid);
    h_result r;
    h_pyflame_runl(&r, 10, "-s", "0.2", "-p", pid, NULL);
    expect_error(&r, "no such PID");
    ck_assert_msg(strstr(r.err, pid) != NULL, "the message should name PID %s: %s", pid, h_result_str(&r));
    h_result_free(&r);
    h_pyflame_runl(&r, 10, "--threads", "-d", "-p", pid, NULL);
    expect_error(&r, "no such PID, -d");
    h_result_free(&r);
}
END_TEST

START_TEST(test_kernel_thread)
{
    char *comm = h_read_file("/proc/2/comm", NULL);
    if (!comm || strncmp(comm, "kthreadd", 8) != 0) {
        h_skip("kernel thread: PID 2 is not kthreadd here (%s)", comm ? comm : "no /proc/2");
        free(comm);
        return;
    }
    free(comm);
    static const char *const modes[][4] = {
        { "-s", "0.2", NULL }, { "--threads", "-s", "0.2", NULL }, { "-d", NULL }, { "--nonblocking", "-s", "0.2", NULL },
    };
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        const char *args[8];
        int n = 0;
        for (int k = 0; modes[m][k]; k++)
            args[n++] = modes[m][k];
        args[n++] = "-p";
        args[n++] = "2";
        args[n] = NULL;
        h_result r;
        h_pyflame_run(&r, 10, args);
        char ctx[64];
        h_snprintf(ctx, sizeof(ctx), "kthreadd (%s)", modes[m][0]);
        expect_error(&r, ctx);
        h_result_free(&r);
    }
}
END_TEST

START_TEST(test_zombie)
{
    /* sh starts `sleep 0` in the background and becomes `sleep 60`, which
     * never reaps it: a zombie whose parent lives on. */
    const char *argv[] = { "sh", "-c", "sleep 0 & exec sleep 60", NULL };
    h_proc *parent = h_spawn(argv, NULL, 0);
    char path[128];
    h_snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)parent->pid, (int)parent->pid);
    pid_t zombie = 0;
    for (int i = 0; i < 500 && !zombie; i++) {
        char *c = h_read_file(path, NULL);
        long z = c ? strtol(c, NULL, 10) : 0;
        free(c);
        if (z > 0) {
            char st[128];
            h_snprintf(st, sizeof(st), "/proc/%ld/stat", z);
            char *s = h_read_file(st, NULL);
            const char *rp = s ? strrchr(s, ')') : NULL;
            if (rp && rp[1] == ' ' && rp[2] == 'Z')
                zombie = (pid_t)z;
            free(s);
        }
        if (!zombie)
            h_sleep_ms(10);
    }
    ck_assert_msg(zombie > 0, "could not make a zombie (no child of %d became one)", (int)parent->pid);
    char pid[16];
    h_pidstr(zombie, pid);
    const char *const modes[][3] = { { "-s", "0.2", NULL }, { "--threads", NULL, NULL }, { "-d", NULL, NULL } };
    for (size_t m = 0; m < 3; m++) {
        const char *args[8];
        int n = 0;
        for (int k = 0; k < 2 && modes[m][k]; k++)
            args[n++] = modes[m][k];
        args[n++] = "-p";
        args[n++] = pid;
        args[n] = NULL;
        h_result r;
        h_pyflame_run(&r, 10, args);
        char ctx[64];
        h_snprintf(ctx, sizeof(ctx), "zombie PID %s (%s)", pid, modes[m][0]);
        expect_error(&r, ctx);
        h_result_free(&r);
    }
    h_proc_stop(parent);
}
END_TEST

START_TEST(test_not_python)
{
    const char *argv1[] = { "sleep", "60", NULL };
    h_proc *s = h_spawn(argv1, NULL, 0);
    h_sleep_ms(50);   /* let it exec */
    const char *exe = compile_c("plain", plain_c);
    const char *argv2[] = { exe, NULL };
    h_proc *c = h_spawn(argv2, "ready", 10);
    h_proc *targets[2] = { s, c };
    for (int i = 0; i < 2; i++) {
        char pid[16];
        h_pidstr(targets[i]->pid, pid);
        const char *const modes[][3] = { { "-s", "0.3", NULL }, { "--threads", "-s", "0.3" }, { "-d", NULL, NULL },
                                         { "--nonblocking", "-s", "0.3" } };
        for (size_t m = 0; m < 4; m++) {
            const char *args[8];
            int n = 0;
            for (int k = 0; k < 3 && modes[m][k]; k++)
                args[n++] = modes[m][k];
            args[n++] = "-p";
            args[n++] = pid;
            args[n] = NULL;
            h_result r;
            h_pyflame_run(&r, 20, args);
            char ctx[256];
            h_snprintf(ctx, sizeof(ctx), "non-Python %s (%s)", targets[i]->desc, modes[m][0]);
            expect_error(&r, ctx);
            expect_untouched(targets[i], ctx);
            h_result_free(&r);
        }
    }
    /* -t of a program that is not Python (and exits at once, so that pyflame
     * does not wait for its 10 s search): an error naming the problem. */
    h_result r;
    const char *targs[] = { "-t", exe, "exit", NULL };
    h_pyflame_run(&r, 90, targs);
    ck_assert_msg(!r.timed_out && r.status == 1 && h_is_one_line(r.err),
                  "-t of a non-Python program: want a one-line error and exit 1: %s", h_result_str(&r));
    h_result_free(&r);
    h_proc_stop(s);
    h_proc_stop(c);
}
END_TEST

/* ---- already traced ------------------------------------------------------------------- */

START_TEST(test_already_traced)
{
    const h_python *py = h_python_default();
    const char *tracer = compile_c("tracer", tracer_c);
    h_proc *t = h_target_startl(py, "robust_busy.py", "threads=2", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    const char *targv[] = { tracer, pid, "main", NULL };
    h_proc *tr = h_spawn(targv, "ready", 10);
    ck_assert_msg(tracer_of(t->pid, t->pid) == tr->pid, "[%s] the tracer did not attach", H_CTX(py));

    const char *const modes[][3] = { { "-s", "0.3", NULL }, { "--threads", "-s", "0.3" }, { "-d", NULL, NULL } };
    for (size_t m = 0; m < 3; m++) {
        const char *args[8];
        int n = 0;
        for (int k = 0; k < 3 && modes[m][k]; k++)
            args[n++] = modes[m][k];
        args[n++] = "-p";
        args[n++] = pid;
        args[n] = NULL;
        h_result r;
        h_pyflame_run(&r, 20, args);
        char ctx[128];
        h_snprintf(ctx, sizeof(ctx), "[%s] traced by PID %d (%s)", H_CTX(py), (int)tr->pid, modes[m][0]);
        expect_error(&r, ctx);
        ck_assert_msg(mentions_number(r.err, tr->pid), "%s: the message must name the tracer PID %d: %s", ctx,
                      (int)tr->pid, h_result_str(&r));
        ck_assert_msg(tracer_of(t->pid, t->pid) == tr->pid, "%s: the other tracer lost its tracee", ctx);
        h_result_free(&r);
    }
    /* --nonblocking never stops the target: it may profile it anyway. */
    h_result r;
    h_pyflame_runl(&r, 20, "--nonblocking", "-s", "0.3", "-p", pid, NULL);
    if (r.status == 0) {
        h_profile p;
        ck_assert_msg(h_parse_collapsed(r.out, &p) == 0 && h_profile_total(&p) > 0,
                      "[%s] --nonblocking on a traced target: bad profile: %s", H_CTX(py), h_result_str(&r));
        h_profile_free(&p);
    } else {
        expect_error(&r, "--nonblocking on a traced target");
        ck_assert_msg(mentions_number(r.err, tr->pid), "[%s] --nonblocking: the message must name the tracer "
                      "PID %d: %s", H_CTX(py), (int)tr->pid, h_result_str(&r));
    }
    h_result_free(&r);
    h_proc_stop(tr);
    h_sleep_ms(50);
    expect_untouched(t, "after the other tracer left");
    h_proc_stop(t);
}
END_TEST

START_TEST(test_traced_by_strace)
{
    char strace[PATH_MAX];
    if (!h_find_program("strace", strace)) {
        h_skip("traced by strace: strace is not installed");
        return;
    }
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    const char *sargv[] = { strace, "-f", "-qq", "-o", "/dev/null", "-p", pid, NULL };
    h_proc *st = h_spawn(sargv, NULL, 0);
    long tp = 0;
    for (int i = 0; i < 500 && tp <= 0; i++) {
        tp = tracer_of(t->pid, t->pid);
        if (tp <= 0)
            h_sleep_ms(10);
    }
    ck_assert_msg(tp > 0, "[%s] strace did not attach", H_CTX(py));
    h_result r;
    h_pyflame_runl(&r, 20, "-s", "0.3", "-p", pid, NULL);
    char ctx[128];
    h_snprintf(ctx, sizeof(ctx), "[%s] traced by strace (PID %ld)", H_CTX(py), tp);
    expect_error(&r, ctx);
    ck_assert_msg(mentions_number(r.err, tp), "%s: the message must name the tracer PID %ld: %s", ctx, tp,
                  h_result_str(&r));
    h_result_free(&r);
    kill(st->pid, SIGINT);   /* strace detaches cleanly on SIGINT */
    h_proc_wait(st, 5);
    h_proc_stop(st);
    h_sleep_ms(50);
    expect_untouched(t, ctx);
    h_proc_stop(t);
}
END_TEST

/* Another tracer holds one secondary thread only: pyflame --threads may
 * profile the rest or refuse, but must leave no thread stopped or traced. */
START_TEST(test_traced_one_thread)
{
    const h_python *py = h_python_default();
    const char *tracer = compile_c("tracer", tracer_c);
    h_proc *t = h_target_startl(py, "robust_busy.py", "threads=3", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    const char *targv[] = { tracer, pid, "last", NULL };
    h_proc *tr = h_spawn(targv, "ready", 10);
    pid_t traced_tid = 0;
    sscanf(strstr(tr->out, "traced ") ? strstr(tr->out, "traced ") : "", "traced %d", &traced_tid);
    ck_assert_msg(traced_tid > 0 && traced_tid != t->pid, "tracer output: %s", tr->out);

    char msgs[4096] = "";
    size_t ml = 0;
    const char *const modes[][3] = { { "--threads", "-s", "0.3" }, { "-s", "0.3", NULL }, { "-d", NULL, NULL } };
    for (size_t m = 0; m < 3; m++) {
        const char *args[8];
        int n = 0;
        for (int k = 0; k < 3 && modes[m][k]; k++)
            args[n++] = modes[m][k];
        args[n++] = "-p";
        args[n++] = pid;
        args[n] = NULL;
        h_result r;
        h_pyflame_run(&r, 20, args);
        char ctx[160];
        h_snprintf(ctx, sizeof(ctx), "[%s] thread %d traced by PID %d (%s)", H_CTX(py), (int)traced_tid,
                 (int)tr->pid, modes[m][0]);
        /* Right now, with the other tracer still there: no task stopped, and
         * no task traced except the other tracer's one. */
        char why[1024];
        if (h_check_running_untraced(t->pid, why, sizeof(why)) != 0) {
            char want[128];
            h_snprintf(want, sizeof(want), "task %d of pid %d: State ", (int)traced_tid, (int)t->pid);
            char tpid[32];
            h_snprintf(tpid, sizeof(tpid), ", TracerPid %d", (int)tr->pid);
            int only_that_one = strchr(why, ';') == NULL && strncmp(why, want, strlen(want)) == 0 &&
                                strstr(why, tpid) != NULL && strstr(why, "stop") == NULL;
            ck_assert_msg(only_that_one, "%s: target harmed while the other tracer holds thread %d: %s", ctx,
                          (int)traced_tid, why);
        }
        ck_assert_msg(!r.timed_out && (r.status == 0 || r.status == 1), "%s: %s", ctx, h_result_str(&r));
        if (r.status == 1) {
            expect_error(&r, ctx);
            /* Collected, so that every mode is tried. */
            if (!mentions_number(r.err, tr->pid) && ml < sizeof(msgs))
                ml += (size_t)snprintf(msgs + ml, sizeof(msgs) - ml,
                                       "%s: the message must name the tracer PID %d: %s\n", ctx, (int)tr->pid,
                                       r.err);
        } else {
            h_profile p;
            ck_assert_msg(h_parse_collapsed(r.out, &p) == 0, "%s: bad profile: %s", ctx, h_result_str(&r));
            h_profile_free(&p);
        }
        h_result_free(&r);
    }
    h_proc_stop(tr);
    h_sleep_ms(50);
    expect_untouched(t, "after the other tracer left");
    h_proc_stop(t);
    ck_assert_msg(ml == 0, "%s", msgs);
}
END_TEST

/* ---- -o that cannot be written -------------------------------------------------------------- */

/* Runs pyflame with -o out against a fresh target and expects a one-line error
 * that names the path, before any attach: quick, target never traced. */
static void expect_output_refused(h_proc *t, const char *out, const char *ctx, const char *const *prefix)
{
    char pid[16];
    h_pidstr(t->pid, pid);
    const char *args[16];
    int n = 0;
    for (int i = 0; prefix && prefix[i]; i++)
        args[n++] = prefix[i];
    if (!prefix)
        args[n++] = h_pyflame();
    args[n++] = "-s";
    args[n++] = "2";
    args[n++] = "-o";
    args[n++] = out;
    args[n++] = "-p";
    args[n++] = pid;
    args[n] = NULL;
    h_result r;
    h_run(&r, args, 20);
    expect_error(&r, ctx);
    ck_assert_msg(strstr(r.err, out) != NULL, "%s: the message should name %s: %s", ctx, out, h_result_str(&r));
    ck_assert_msg(r.elapsed < 1.5, "%s: refused only after %.2f s (it sampled first): %s", ctx, r.elapsed,
                  h_result_str(&r));
    ck_assert_msg(strstr(r.err, "seize") == NULL && strstr(r.err, "ptrace") == NULL,
                  "%s: the output must be checked before attaching: %s", ctx, h_result_str(&r));
    expect_untouched(t, ctx);
    h_result_free(&r);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "cannot create %s: %s", path, strerror(errno));
    ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
}

static void expect_content(const char *path, const char *want, const char *ctx)
{
    char *s = h_read_file(path, NULL);
    ck_assert_msg(s != NULL && strcmp(s, want) == 0, "%s: %s was changed: \"%.200s\"", ctx, path, s ? s : "(gone)");
    free(s);
}

START_TEST(test_output_missing_dir_and_dir)
{
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    char out[PATH_MAX];
    h_snprintf(out, sizeof(out), "%s/no/such/dir/out.txt", h_tmpdir());
    expect_output_refused(t, out, "-o into a missing directory", NULL);
    h_snprintf(out, sizeof(out), "%s/no-such-dir/out.svg", h_tmpdir());
    expect_output_refused(t, out, "-o out.svg into a missing directory", NULL);
    expect_output_refused(t, h_tmpdir(), "-o onto a directory", NULL);
    /* A path through a regular file. */
    char file[PATH_MAX];
    h_snprintf(file, sizeof(file), "%s/plainfile", h_tmpdir());
    write_file(file, "x\n", 0644);
    h_snprintf(out, sizeof(out), "%s/out.txt", file);
    expect_output_refused(t, out, "-o under a regular file", NULL);
    h_proc_stop(t);
}
END_TEST

START_TEST(test_output_readonly_mount)
{
    if (geteuid() != 0) {
        h_skip("-o onto a read-only mount: needs root");
        return;
    }
    char dir[PATH_MAX];
    h_snprintf(dir, sizeof(dir), "%s/ro", h_tmpdir());
    ck_assert(mkdir(dir, 0755) == 0);
    char out[PATH_MAX];
    h_snprintf(out, sizeof(out), "%s/profile.txt", dir);
    write_file(out, "earlier profile 1\n", 0644);
    if (mount(dir, dir, NULL, MS_BIND, NULL) != 0 ||
        mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) {
        h_skip("-o onto a read-only mount: cannot bind-mount read-only here: %s", strerror(errno));
        umount2(dir, MNT_DETACH);
        return;
    }
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    expect_output_refused(t, out, "-o onto a file on a read-only mount", NULL);
    expect_content(out, "earlier profile 1\n", "read-only mount");
    char fresh[PATH_MAX];
    h_snprintf(fresh, sizeof(fresh), "%s/new.txt", dir);
    expect_output_refused(t, fresh, "-o into a directory on a read-only mount", NULL);
    umount2(dir, MNT_DETACH);
    h_proc_stop(t);
}
END_TEST

/* setpriv works and an unprivileged user can run $PYFLAME. */
static int unprivileged_ok(char *setpriv)
{
    if (geteuid() != 0) {
        h_skip("unprivileged runs: the suite is not running as root");
        return 0;
    }
    if (!h_find_program("setpriv", setpriv)) {
        h_skip("unprivileged runs: setpriv is not installed");
        return 0;
    }
    const char *argv[] = { setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", h_pyflame(), "-v", NULL };
    h_result r;
    h_run(&r, argv, 10);
    int ok = r.status == 0;
    if (!ok)
        h_skip("unprivileged runs: uid 65534 cannot run %s: %s", h_pyflame(), h_result_str(&r));
    h_result_free(&r);
    return ok;
}

START_TEST(test_output_readonly_file_unprivileged)
{
    char setpriv[PATH_MAX];
    if (!unprivileged_ok(setpriv))
        return;
    char dir[PATH_MAX];
    h_snprintf(dir, sizeof(dir), "%s/nobody", h_tmpdir());
    ck_assert(mkdir(dir, 0755) == 0);
    ck_assert(chown(dir, 65534, 65534) == 0);
    chmod(h_tmpdir(), 0755);
    char out[PATH_MAX];
    h_snprintf(out, sizeof(out), "%s/profile.txt", dir);
    write_file(out, "earlier profile 2\n", 0444);
    ck_assert(chown(out, 65534, 65534) == 0);
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    const char *prefix[] = { setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", h_pyflame(), NULL };
    /* The output is checked before the attach (which would fail for this user). */
    expect_output_refused(t, out, "-o onto a read-only file (uid 65534)", prefix);
    expect_content(out, "earlier profile 2\n", "read-only file");
    /* A directory this user cannot write. */
    char rodir[PATH_MAX];
    h_snprintf(rodir, sizeof(rodir), "%s/rodir", h_tmpdir());
    ck_assert(mkdir(rodir, 0755) == 0);
    h_snprintf(out, sizeof(out), "%s/profile.txt", rodir);
    expect_output_refused(t, out, "-o into a read-only directory (uid 65534)", prefix);
    h_proc_stop(t);
}
END_TEST

/* ---- contradictory options ----------------------------------------------------------------------- */

START_TEST(test_contradictory_options)
{
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    char pid[16], script[PATH_MAX];
    h_pidstr(t->pid, pid);
    h_target_path("cpu.py", script);
    struct {
        const char *what;
        const char *args[12];
    } cases[] = {
        { "-p then -t", { "-p", pid, "-t", py->path, script, "seconds=1", "quiet", NULL } },
        { "-d then -t", { "-d", "-t", py->path, script, "seconds=1", "quiet", NULL } },
        { "--flamechart -f svg", { "--flamechart", "-f", "svg", "-s", "0.2", "-p", pid, NULL } },
        { "-f svg --flamechart", { "-f", "svg", "--flamechart", "-s", "0.2", "-p", pid, NULL } },
        { "--flamechart -f pprof", { "--flamechart", "-f", "pprof", "-s", "0.2", "-p", pid, NULL } },
        { "-t without command", { "-t", NULL } },
        { "-f unknown", { "-f", "bogus", "-p", pid, NULL } },
        { "--abi=37x", { "--abi=37x", "-p", pid, NULL } },
        { "-s abc", { "-s", "abc", "-p", pid, NULL } },
        { "-r nan", { "-r", "nan", "-p", pid, NULL } },
        { "-r inf", { "-r", "inf", "-p", pid, NULL } },
        { "unknown option", { "--bogus-option", "-p", pid, NULL } },
        { "-p missing argument", { "-p", NULL } },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h_result r;
        h_pyflame_run(&r, 20, cases[i].args);
        ck_assert_msg(!r.timed_out && r.status == 1 && r.out_len == 0,
                      "%s: want exit 1 and nothing on stdout: %s", cases[i].what, h_result_str(&r));
        /* "-t without command" is followed by the usage, as in Pyflame. */
        if (strcmp(cases[i].what, "-t without command") != 0)
            ck_assert_msg(h_is_one_line(r.err), "%s: want one line on stderr: %s", cases[i].what,
                          h_result_str(&r));
        ck_assert_msg(r.elapsed < 1.0, "%s: took %.2f s", cases[i].what, r.elapsed);
        expect_untouched(t, cases[i].what);
        h_result_free(&r);
    }
    h_proc_stop(t);
}
END_TEST

/* ---- starting and finalizing interpreters ----------------------------------------------------------- */

/* A successful run's collapsed output has no garbage: every frame is
 * FILE:FUNC:LINE with a printable, plausible file and function name. */
static void expect_sane_profile(h_result *r, const char *ctx)
{
    h_profile p;
    ck_assert_msg(h_parse_collapsed(r->out, &p) == 0, "%s: malformed line \"%s\": %s", ctx, p.bad,
                  h_result_str(r));
    for (size_t i = 0; i < p.nstacks; i++) {
        char *copy = strdup(p.stacks[i].text), *save = NULL;
        int k = 0;
        for (char *fr = strtok_r(copy, ";", &save); fr; fr = strtok_r(NULL, ";", &save), k++) {
            /* FILE:FUNC:LINE, or FILE:FUNC when CPython itself has no line
             * for the instruction (e.g. the MAKE_CELL prologue of 3.11+).
             * FILE may contain ':'. */
            char *c2 = strrchr(fr, ':');
            if (c2 && (!c2[1] || strspn(c2 + 1, "0123456789") != strlen(c2 + 1))) {
                /* no line: pretend it ends right here */
                c2 = fr + strlen(fr);
            }
            char *c1 = NULL;
            if (c2 && c2 > fr)
                for (char *q = c2 - 1; q > fr; q--)
                    if (*q == ':') {
                        c1 = q;
                        break;
                    }
            int ok = c1 && c2 && c1 > fr && c2 > c1 + 1 &&
                     (fr[0] == '/' || fr[0] == '<' || strstr(fr, ".py:") != NULL);
            for (const char *c = fr; ok && c < c1; c++)
                ok = isprint((unsigned char)*c);
            for (const char *c = c1 ? c1 + 1 : fr; ok && c < c2; c++)
                ok = isalnum((unsigned char)*c) || *c == '_' || *c == '<' || *c == '>' || *c == '.';
            ck_assert_msg(ok, "%s: garbage frame #%d \"%s\" in a stack of %d bytes: %.2000s", ctx, k, fr,
                          (int)strlen(p.stacks[i].text), r->out);
        }
        free(copy);
    }
    h_profile_free(&p);
}

static int py_index_ok(int i) { return i < h_python_count(); }

START_TEST(test_attach_while_starting)
{
    if (!py_index_ok(_i))
        return;
    const h_python *py = h_python_get(_i);
    char script[PATH_MAX];
    h_target_path("cpu.py", script);
    static const int delays_ms[] = { 0, 3, 25 };
    for (size_t d = 0; d < sizeof(delays_ms) / sizeof(delays_ms[0]); d++) {
        const char *argv[] = { py->path, script, "seconds=5", NULL };
        h_proc *t = h_spawn(argv, NULL, 0);
        if (delays_ms[d])
            h_sleep_ms(delays_ms[d]);
        char pid[16];
        h_pidstr(t->pid, pid);
        h_result r;
        const char *threads = (d & 1) ? "--threads" : "-x";
        h_pyflame_runl(&r, 20, threads, "-s", "0.2", "-r", "0.002", "-p", pid, NULL);
        char ctx[160];
        h_snprintf(ctx, sizeof(ctx), "[%s] attach %d ms after spawn (%s)", H_CTX(py), delays_ms[d], threads);
        ck_assert_msg(!r.timed_out && !r.signaled && (r.status == 0 || r.status == 1), "%s: %s", ctx,
                      h_result_str(&r));
        if (r.status == 1)
            expect_error(&r, ctx);
        else
            expect_sane_profile(&r, ctx);
        h_result_free(&r);
        /* The target must go on to run normally. */
        h_proc *tt = t;
        double waited = 0;
        while (!strstr(tt->out, "ready") && waited < 15 && h_proc_alive(tt)) {
            h_proc_wait(tt, 0.05);
            waited += 0.05;
        }
        ck_assert_msg(strstr(tt->out, "ready") != NULL, "%s: the target never became ready (stderr: %s)", ctx,
                      h_proc_stderr(tt));
        expect_untouched(tt, ctx);
        h_proc_stop(t);
    }
}
END_TEST

START_TEST(test_finalizing)
{
    if (!py_index_ok(_i))
        return;
    const h_python *py = h_python_get(_i);
    char marker[PATH_MAX], arg[PATH_MAX + 16];
    h_snprintf(marker, sizeof(marker), "%s/finalizing.%d", h_tmpdir(), _i);
    h_snprintf(arg, sizeof(arg), "marker=%s", marker);
    /* "ready" is printed from the atexit handler, which then spins. */
    h_proc *t = h_target_startl(py, "robust_atexit.py", arg, "seconds=0.5", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    for (int phase = 0; phase < 2; phase++) {
        if (phase == 1) {
            struct stat st;
            int i;
            for (i = 0; i < 500 && (stat(marker, &st) != 0 || st.st_size == 0); i++)
                h_sleep_ms(10);
            if (i == 500) {
                h_note("[%s] the target did not reach its __del__ during finalization (%s)", H_CTX(py),
                       h_proc_stderr(t));
                break;
            }
        }
        for (int threads = 0; threads < 2; threads++) {
            h_result r;
            h_pyflame_runl(&r, 20, threads ? "--threads" : "-r", threads ? "-r" : "0.005", threads ? "0.005" : "-x",
                           "-s", "0.1", "-p", pid, NULL);
            char ctx[160];
            h_snprintf(ctx, sizeof(ctx), "[%s] target %s%s", H_CTX(py),
                     phase ? "finalizing (spinning in __del__)" : "in atexit (spinning)", threads ? " --threads" : "");
            ck_assert_msg(!r.timed_out && !r.signaled && (r.status == 0 || r.status == 1), "%s: %s", ctx,
                          h_result_str(&r));
            if (r.status == 1) {
                expect_error(&r, ctx);
            } else {
                expect_sane_profile(&r, ctx);
                /* When there are stacks, the spinning function shows up. */
                const char *fn = phase == 0 ? "spin_at_exit" : "spin_in_del";
                h_profile p;
                h_parse_collapsed(r.out, &p);
                if (p.nstacks > 0)
                    ck_assert_msg(strstr(r.out, fn) != NULL, "%s: %s is not in the profile: %s", ctx, fn,
                                  h_result_str(&r));
                h_profile_free(&p);
            }
            h_result_free(&r);
            if (h_proc_alive(t))
                expect_untouched(t, ctx);
        }
    }
    int st = h_proc_wait(t, 20);
    ck_assert_msg(st != -1, "[%s] the finalizing target did not exit", H_CTX(py));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "[%s] the finalizing target ended with status 0x%x: %s",
                  H_CTX(py), st, h_proc_stderr(t));
    h_proc_stop(t);
}
END_TEST

/* ---- permission denied ------------------------------------------------------------------------------------ */

START_TEST(test_permission_denied)
{
    char setpriv[PATH_MAX];
    if (!unprivileged_ok(setpriv))
        return;
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    const char *const modes[][3] = { { "-s", "0.3", NULL }, { "--threads", "-s", "0.3" }, { "-d", NULL, NULL },
                                     { "--nonblocking", "-s", "0.3" } };
    for (size_t m = 0; m < 4; m++) {
        const char *args[16];
        int n = 0;
        args[n++] = setpriv;
        args[n++] = "--reuid=65534";
        args[n++] = "--regid=65534";
        args[n++] = "--clear-groups";
        args[n++] = h_pyflame();
        for (int k = 0; k < 3 && modes[m][k]; k++)
            args[n++] = modes[m][k];
        args[n++] = "-p";
        args[n++] = pid;
        args[n] = NULL;
        h_result r;
        h_run(&r, args, 20);
        char ctx[128];
        h_snprintf(ctx, sizeof(ctx), "[%s] uid 65534 against root's PID %s (%s)", H_CTX(py), pid, modes[m][0]);
        expect_error(&r, ctx);
        ck_assert_msg(strstr(r.err, "ptrace_scope") != NULL || strstr(r.err, "CAP_SYS_PTRACE") != NULL,
                      "%s: the message should hint at kernel.yama.ptrace_scope / CAP_SYS_PTRACE: %s", ctx,
                      h_result_str(&r));
        expect_untouched(t, ctx);
        h_result_free(&r);
    }
    h_proc_stop(t);
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("robust_input");
    TCase *tc = tcase_create("input");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_bad_pid_values, 0, (int)(sizeof(bad_pids) / sizeof(bad_pids[0])));
    tcase_add_test(tc, test_no_such_pid);
    tcase_add_test(tc, test_kernel_thread);
    tcase_add_test(tc, test_zombie);
    tcase_add_test(tc, test_not_python);
    tcase_add_test(tc, test_already_traced);
    tcase_add_test(tc, test_traced_by_strace);
    tcase_add_test(tc, test_traced_one_thread);
    tcase_add_test(tc, test_output_missing_dir_and_dir);
    tcase_add_test(tc, test_output_readonly_mount);
    tcase_add_test(tc, test_output_readonly_file_unprivileged);
    tcase_add_test(tc, test_contradictory_options);
    tcase_add_test(tc, test_permission_denied);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("starting");
    tcase_set_timeout(ts, 60);
    tcase_add_loop_test(ts, test_attach_while_starting, 0, h_python_count());
    suite_add_tcase(s, ts);
    TCase *tf = tcase_create("finalizing");
    tcase_set_timeout(tf, 60);
    tcase_add_loop_test(tf, test_finalizing, 0, h_python_count());
    suite_add_tcase(s, tf);
    return h_run_suite(s);
}
