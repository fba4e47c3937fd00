/*
 * harness.h - shared helpers for pyflame's integration suites
 * (tests/integration/test_*.c, each its own Check program linked with
 * harness.c; `make check-integration` runs them from the repo root with
 * PYFLAME=/abs/path/to/pyflame).
 *
 * Typical suite:
 *
 *     int main(void) {
 *         h_init();                         // discover pythons, print SKIPs (once)
 *         Suite *s = suite_create("threads");
 *         TCase *tc = tcase_create("per-python");
 *         tcase_set_timeout(tc, 30);
 *         tcase_add_loop_test(tc, test_x, 0, h_python_count());
 *         suite_add_tcase(s, tc);
 *         return h_run_suite(s);             // fork mode, exit status 0/1
 *     }
 *
 *     START_TEST(test_x) {
 *         const h_python *py = h_python_get(_i);
 *         h_proc *t = h_target_start(py, "cpu.py", NULL);    // waits for "ready"
 *         char pid[16]; h_pidstr(t->pid, pid);
 *         h_result r;
 *         h_pyflame_runl(&r, 10, "-s", "1", "-p", pid, NULL);
 *         ck_assert_msg(r.status == 0, "[%s] %s", py->label, h_result_str(&r));
 *         h_profile p;
 *         h_parse_collapsed(r.out, &p);
 *         ...
 *         h_profile_free(&p); h_result_free(&r); h_proc_stop(t);
 *     }
 *
 * Conventions
 *  - Functions whose comment says "fails the test" call ck_assert_msg on
 *    conditions that mean the test environment itself is broken (a marker
 *    missing in a target, a target that never printed "ready", fork failure).
 *  - Process hygiene: every process the harness starts (targets, pyflame
 *    runs, helpers) is put in its own process group, gets
 *    PR_SET_PDEATHSIG=SIGKILL (so it dies with the test process: Check's
 *    fork mode ends a failing test with _exit and a timed-out one with
 *    SIGKILL, and neither runs any cleanup) and is registered; h_kill_all()
 *    kills every registered group and reaps it (it runs at normal exit too).
 *    Targets also end by themselves after `seconds=` (default 120).
 *    Temporary files live under one directory per suite, made by h_init and
 *    removed by h_run_suite in the parent, so failed tests leave none.
 *    Use Check's fork mode (h_run_suite does, unless CK_FORK=no).
 *  - While h_run()/h_proc_wait() wait, they reap registered targets that
 *    exited (as a shell would), so an exited target never lingers as a zombie
 *    that would look alive to pyflame.
 *  - exec of a command is retried for up to 3 s on ETXTBSY/EACCES, so a
 *    concurrent `make` relinking pyflame does not fail a run.
 *  - Interpreter labels ("3.12.1", "3.11.2-static") go in every failure
 *    message: use H_CTX(py) / "[%s]" with py->label.
 *
 * Environment
 *  PYFLAME               absolute path of the pyflame binary (required)
 *  PYENV_ROOT            pyenv root (default ~/.pyenv): versions/x/bin/pythonX.Y
 *  PYFLAME_TEST_PYTHONS  extra interpreters, colon-separated paths
 *  PYFLAME_TEST_ONLY     only interpreters whose label starts with one of these
 *                        comma/colon-separated prefixes ("3.12,2.7", "3.11.2-static")
 *  PYFLAME_TEST_TARGETS  directory of target programs (default: tests/targets
 *                        next to $PYFLAME, else ./tests/targets)
 *  PYFLAME_TEST_VERBOSE  if set, print every pyflame command and its result
 */
#ifndef PYFLAME_TEST_HARNESS_H
#define PYFLAME_TEST_HARNESS_H

#include <check.h>
#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- setup ------------------------------------------------------------- */

/* Call once in main() before building the suite: discovers the interpreters
 * (printing the SKIP lines once) and checks $PYFLAME.  Fails loudly (exit 2)
 * if PYFLAME is unset or not executable. */
void h_init(void);

/* Runs the suite in fork mode (CK_FORK=no is honoured for debugging) with
 * CK_NORMAL output; frees it; returns 0 if everything passed, else 1. */
int h_run_suite(Suite *s);

/* Prints "SKIP <message>" on stdout (flushed).  Use it for every skipped
 * case: never skip silently. */
void h_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints a note "# <message>" on stdout (flushed). */
void h_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- interpreters -------------------------------------------------------- */

typedef struct h_python {
    char label[48];           /* "3.12.1", "3.11.2-static" (unique) */
    char path[PATH_MAX];      /* absolute path as found */
    char real[PATH_MAX];      /* realpath(path) */
    int major, minor, micro;
    int is_static;            /* the executable has no DT_NEEDED libpython */
    const char *origin;       /* "pyenv", "PATH", "/usr/bin", "PYFLAME_TEST_PYTHONS" */
} h_python;

/* Sources, deduplicated by realpath and inode: $PYENV_ROOT/versions/V/bin/pythonX.Y,
 * pythonX.Y on $PATH (ELF files only, so pyenv shims are ignored), /usr/bin and
 * /usr/local/bin, $PYFLAME_TEST_PYTHONS.  Sorted by version, static after shared.
 * Expected on the reference machine: 2.7, 3.6 ... 3.13 and a static 3.11; each one
 * that is missing is reported by a "SKIP python X.Y: not installed (looked in ...)"
 * line, printed once per process.  Discovery runs once (h_init does it). */
int h_python_count(void);
const h_python *h_python_get(int i);          /* 0 <= i < h_python_count() */
/* The first interpreter of that version (want_static: 0 shared, 1 static,
 * -1 either), or NULL. */
const h_python *h_python_find(int major, int minor, int want_static);
/* The newest shared (non-static) 3.x, else the newest anything; fails the
 * test if there is no interpreter at all. */
const h_python *h_python_default(void);

/* "[3.12.1] " style prefix for messages. */
#define H_CTX(py) ((py) ? (py)->label : "no-python")

/* ---- paths and target programs ------------------------------------------ */

const char *h_pyflame(void);                  /* $PYFLAME */
const char *h_targets_dir(void);              /* absolute tests/targets */
/* Absolute path of tests/targets/NAME into out (PATH_MAX bytes); fails the
 * test if the file does not exist.  Returns out. */
char *h_target_path(const char *name, char *out);

/* Line numbers of marker comments "# LINE:NAME" (NAME followed by a blank or
 * the end of line) in FILE (a target name like "cpu.py" or an absolute path).
 * h_marker_line: the unique line; fails the test if NAME is absent or
 * appears more than once.  h_marker_lines: all lines (at most max, ascending),
 * returns how many; fails the test if there are none. */
int h_marker_line(const char *file, const char *name);
int h_marker_lines(const char *file, const char *name, int *lines, int max);

/* ---- processes ------------------------------------------------------------ */

typedef struct h_proc {
    pid_t pid;                /* also the process group id */
    int out_fd;               /* read end of its stdout (or -1) */
    char errfile[64];         /* its stderr goes to this temp file */
    char desc[256];           /* "cpu.py under 3.12.1" for messages */
    int reaped;               /* 1 once waited for; then wstatus is valid */
    int wstatus;
    char out[4096];           /* stdout read so far (NUL-terminated) */
    size_t out_len;
} h_proc;

/* Starts `py->path TARGETS/script args...` (args NULL-terminated, may be
 * NULL) and waits up to 15 s for the line "ready" on its stdout.  Fails the
 * test (with the target's stderr) if it exits or times out first. */
h_proc *h_target_start(const h_python *py, const char *script, const char *const *args);
/* Same with a variadic NULL-terminated argument list. */
h_proc *h_target_startl(const h_python *py, const char *script, ...) __attribute__((sentinel));
/* Starts argv (execvp) with stdout piped; if ready_line is not NULL, waits up
 * to timeout seconds for that line and fails the test if it does not come. */
h_proc *h_spawn(const char *const *argv, const char *ready_line, double timeout);
/* 1 if the process has not exited (reaps it if it has). */
int h_proc_alive(h_proc *p);
/* Waits up to timeout seconds for it to exit; returns the wait status, or -1. */
int h_proc_wait(h_proc *p, double timeout);
/* Contents of its stderr so far (static buffer, truncated to ~4 KiB). */
const char *h_proc_stderr(h_proc *p);
/* SIGKILLs its process group, reaps it, removes the temp file, frees p.
 * NULL is fine. */
void h_proc_stop(h_proc *p);
/* Stops every process the harness started and still knows about. */
void h_kill_all(void);
/* A PID that does not exist right now (a reaped child's). */
pid_t h_dead_pid(void);
/* Formats a pid into buf (>= 16 bytes); returns buf. */
char *h_pidstr(pid_t pid, char *buf);

/* Checks every task of pid (/proc/PID/task/TID/status): it must exist, not be
 * stopped ('T') or traced ('t'), and TracerPid must be 0; the leader must not
 * be a zombie or dead (other threads may be: they are exiting).  Returns 0 if so, else -1 with a description in why. */
int h_check_running_untraced(pid_t pid, char *why, size_t whylen);

/* TracerPid of pid (first task), 0 if untraced, -1 if it does not exist. */
pid_t h_tracer_pid(pid_t pid);
/* Waits up to timeout seconds until pid is traced; returns its TracerPid
 * (0 if it never became traced, -1 if pid does not exist). */
pid_t h_wait_traced(pid_t pid, double timeout);

/* ---- running commands ------------------------------------------------------- */

typedef struct h_result {
    int status;               /* exit code; 128+N if killed by signal N; -1 on timeout */
    int signaled;             /* signal number, or 0 */
    int timed_out;            /* 1 if it was killed after timeout seconds */
    int stray;                /* 1 if its process group still had members after it exited */
    double elapsed;           /* seconds */
    char *out; size_t out_len;   /* stdout, NUL-terminated */
    char *err; size_t err_len;   /* stderr, NUL-terminated */
    char cmd[1024];           /* the command line, for messages */
    char summary[3072];       /* filled by h_result_str */
} h_result;

/* Runs argv (execvp; argv[0] searched in PATH) with stdin /dev/null,
 * capturing stdout and stderr; kills its process group after timeout seconds.
 * Never fails the test by itself. */
void h_run(h_result *r, const char *const *argv, double timeout);
/* Runs $PYFLAME with args (NULL-terminated, without argv[0]). */
void h_pyflame_run(h_result *r, double timeout, const char *const *args);
void h_pyflame_runl(h_result *r, double timeout, ...) __attribute__((sentinel));
void h_result_free(h_result *r);
/* "`cmd` -> exit 1 after 0.52 s; stderr: "..."; stdout: "..."" (truncated). */
const char *h_result_str(h_result *r);

/* ---- text helpers --------------------------------------------------------- */

/* 1 if the extended regex matches s (whole-string semantics are up to the
 * pattern; REG_NEWLINE is set, so ^ and $ match at line boundaries). */
int h_match(const char *regex, const char *s);
/* Number of '\n' in s. */
int h_count_lines(const char *s);
/* 1 if s is exactly one non-empty line ending in '\n'. */
int h_is_one_line(const char *s);
/* snprintf whose truncation is fine (short paths; keeps -Wformat-truncation quiet). */
void h_snprintf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sleeps ms milliseconds, across signals. */
void h_sleep_ms(int ms);
/* Absolute path of an executable NAME found in PATH into out, or NULL. */
char *h_find_program(const char *name, char *out);
/* A temporary directory of this process (under the suite's directory made by
 * h_init, which h_run_suite removes; removed at exit too). */
const char *h_tmpdir(void);
/* Whole file into a malloc'd NUL-terminated buffer, or NULL. */
char *h_read_file(const char *path, size_t *len);

/* ---- collapsed output ------------------------------------------------------ */

typedef struct h_stack {
    char *text;               /* "file:func:line;...;file:func:line" (root first) */
    long count;
} h_stack;

typedef struct h_profile {
    long idle, failed;        /* (idle) N / (failed) N, 0 if absent */
    int idle_line;            /* 1-based line of "(idle) N", 0 if absent */
    int failed_line;          /* 1-based line of "(failed) N", 0 if absent */
    h_stack *stacks;          /* other lines, in output order */
    size_t nstacks;
    long stack_total;         /* sum of the stacks' counts */
    int nlines;               /* number of lines */
    int nbad;                 /* lines not matching ^.+ [0-9]+$ or with an empty frame */
    char bad[256];            /* the first such line */
    int no_final_newline;     /* 1 if the text is non-empty and does not end with '\n' */
    int duplicates;           /* number of stack texts that appear more than once */
} h_profile;

/* Parses pyflame's collapsed output.  Returns 0, or -1 if any line is bad
 * (p is filled in either way). */
int h_parse_collapsed(const char *text, h_profile *p);
void h_profile_free(h_profile *p);
/* idle + failed + stack_total. */
long h_profile_total(const h_profile *p);
/* Sum of counts of the stacks whose text is exactly `stack`. */
long h_profile_count(const h_profile *p, const char *stack);
/* Up to max lines "COUNT STACK" by descending count (static buffer). */
const char *h_profile_str(const h_profile *p, int max);

typedef struct h_frame {
    char file[PATH_MAX];
    char func[256];
    int line;                 /* -1 if the frame has no line number */
} h_frame;

/* Splits a stack into frames (root first).  with_lines: frames are
 * FILE:FUNC:LINE (else FILE:FUNC; FILE may contain ':').  Returns the number
 * of frames (at most max), or -1 if a frame is malformed. */
int h_split_frames(const char *stack, h_frame *frames, int max, int with_lines);

#endif
