/*
 * test_robust_output.c - the output is never half-written.
 *
 *   - -o onto a small tmpfs (64 KiB, as root, in a private mount namespace)
 *     that is full, or fills up while the profile is written, in every
 *     format: a one-line error naming the path, exit 1, the earlier file at
 *     that path intact, no temporary file left; once there is room again,
 *     the same run succeeds and replaces the file;
 *   - -o goes through a temporary name and a rename: a hard link to the
 *     earlier file keeps the earlier contents, a new file gets the usual
 *     0666 & ~umask mode, nothing named *.tmp.* is left after success, and a
 *     reader polling the path while SIGUSR1 makes pyflame write the profile
 *     again and again never sees a partial file;
 *   - -o onto something that is not a regular file (a character device, a
 *     FIFO with a reader, a symbolic link): written through, like a shell
 *     redirection, never replaced by a regular file.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "cannot create %s: %s", path, strerror(errno));
    ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

/* Names in dir that contain ".tmp." (pyflame's temporary files), or "". */
static const char *leftovers(const char *dir)
{
    static char names[1024];
    names[0] = '\0';
    size_t l = 0;
    DIR *d = opendir(dir);
    if (!d)
        return names;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp.") && l < sizeof(names) - 1)
            l += (size_t)snprintf(names + l, sizeof(names) - l, "%s ", de->d_name);
    closedir(d);
    return names;
}

/* Puts the test process (and so pyflame and the targets it starts) in a
 * private mount namespace: mounts made here vanish with it.  0 or skip. */
static int private_mounts(const char *what)
{
    if (geteuid() != 0) {
        h_skip("%s: needs root (mount)", what);
        return -1;
    }
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        h_skip("%s: no private mount namespace here: %s", what, strerror(errno));
        return -1;
    }
    return 0;
}

static int mount_tmpfs(const char *dir, const char *opts, const char *what)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        ck_abort_msg("mkdir %s: %s", dir, strerror(errno));
    if (mount("none", dir, "tmpfs", 0, opts) != 0) {
        h_skip("%s: cannot mount a tmpfs: %s", what, strerror(errno));
        return -1;
    }
    return 0;
}

/* Fills the file system of dir; then frees `leave` bytes again. */
static void fill(const char *dir, off_t leave)
{
    char path[PATH_MAX];
    h_snprintf(path, sizeof(path), "%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "cannot create %s: %s", path, strerror(errno));
    char buf[4096];
    memset(buf, 'f', sizeof(buf));
    off_t size = 0;
    for (;;) {
        ssize_t n = write(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        size += n;
    }
    if (leave > 0)
        ck_assert(ftruncate(fd, size > leave ? size - leave : 0) == 0);
    close(fd);
}

static const struct fmt {
    const char *name, *ext;
} formats[] = {
    { "collapsed", "txt" }, { "flamechart", "txt" }, { "svg", "svg" },
    { "speedscope", "speedscope.json" }, { "pprof", "pb.gz" }, { "chrome", "json" },
};
#define NFMT ((int)(sizeof(formats) / sizeof(formats[0])))

/* stderr without pyflame's "sampling fell behind" notes (high -r on a busy machine). */
static const char *err_without_behind(const char *err)
{
    static char buf[8192];
    size_t n = 0;
    for (const char *l = err; *l;) {
        const char *eol = strchr(l, '\n');
        size_t ll = eol ? (size_t)(eol - l) + 1 : strlen(l);
        if (strncmp(l, "pyflame: sampling fell behind", 29) != 0 && n + ll < sizeof(buf)) {
            memcpy(buf + n, l, ll);
            n += ll;
        }
        l += ll;
    }
    buf[n] = '\0';
    return buf;
}

/* Appends to fails (size FAILS) what is wrong with a run that had to fail
 * for lack of space: exit 1, one line naming the path and the reason. */
#define FAILS 8192
static void check_write_failure(h_result *r, const char *path, const char *ctx, char *fails, size_t *fl)
{
    const char *why = NULL;
    if (r->timed_out || r->status != 1)
        why = "want exit 1";
    else if (!h_is_one_line(err_without_behind(r->err)))
        why = "want one line on stderr";
    else if (!strstr(r->err, path))
        why = "the message should name the path";
    else if (!strstr(r->err, "No space left"))
        why = "the message should say why (No space left on device)";
    if (why && *fl < FAILS)
        *fl += (size_t)snprintf(fails + *fl, FAILS - *fl, "%s: %s: %s\n", ctx, why, h_result_str(r));
}

static void check_intact(const char *path, const char *want, const char *dir, const char *ctx, char *fails,
                         size_t *fl)
{
    char *s = h_read_file(path, NULL);
    if ((!s || strcmp(s, want) != 0) && *fl < FAILS)
        *fl += (size_t)snprintf(fails + *fl, FAILS - *fl, "%s: the earlier file changed: \"%.100s\"\n", ctx,
                                s ? s : "(gone)");
    free(s);
    if (leftovers(dir)[0] && *fl < FAILS)
        *fl += (size_t)snprintf(fails + *fl, FAILS - *fl, "%s: temporary files left: %s\n", ctx, leftovers(dir));
}

START_TEST(test_tmpfs_full)
{
    if (private_mounts("-o onto a full tmpfs") < 0)
        return;
    char dir[PATH_MAX];
    h_snprintf(dir, sizeof(dir), "%s/small", h_tmpdir());
    if (mount_tmpfs(dir, "size=64k", "-o onto a full tmpfs") < 0)
        return;
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    static char fails[FAILS];
    size_t fl = 0;
    fails[0] = '\0';

    /* 1. Nothing left at all: every format fails cleanly. */
    char out[NFMT][PATH_MAX], earlier[NFMT][128];
    for (int f = 0; f < NFMT; f++) {
        h_snprintf(out[f], sizeof(out[f]), "%s/profile-%s.%s", dir, formats[f].name, formats[f].ext);
        h_snprintf(earlier[f], sizeof(earlier[f]), "earlier %s profile\n", formats[f].name);
        write_file(out[f], earlier[f]);
    }
    fill(dir, 0);
    for (int f = 0; f < NFMT; f++) {
        h_result r;
        h_pyflame_runl(&r, 20, "-s", "0.2", "-f", formats[f].name, "-o", out[f], "-p", pid, NULL);
        char ctx[128];
        h_snprintf(ctx, sizeof(ctx), "[%s] -f %s onto a full tmpfs", H_CTX(py), formats[f].name);
        check_write_failure(&r, out[f], ctx, fails, &fl);
        check_intact(out[f], earlier[f], dir, ctx, fails, &fl);
        char why[512];
        ck_assert_msg(h_check_running_untraced(t->pid, why, sizeof(why)) == 0, "%s: %s", ctx, why);
        h_result_free(&r);
    }

    /* 2. Room for 8 KiB: big profiles (a flame chart of ~100 samples, an SVG
     * with its script) fill it up while being written. */
    char filler[PATH_MAX];
    h_snprintf(filler, sizeof(filler), "%s/filler", dir);
    unlink(filler);
    fill(dir, 8192);
    static const char *const big[][6] = {
        { "flamechart", "-r", "0.004", "-s", "0.5", NULL },
        { "svg", "-r", "0.004", "-s", "0.3", NULL },
    };
    for (size_t b = 0; b < sizeof(big) / sizeof(big[0]); b++) {
        int f = 0;
        while (strcmp(formats[f].name, big[b][0]) != 0)
            f++;
        h_result r;
        h_pyflame_runl(&r, 20, "-f", big[b][0], big[b][1], big[b][2], big[b][3], big[b][4], "-o", out[f], "-p",
                       pid, NULL);
        char ctx[128];
        h_snprintf(ctx, sizeof(ctx), "[%s] -f %s filling a tmpfs with 8 KiB free", H_CTX(py), big[b][0]);
        check_write_failure(&r, out[f], ctx, fails, &fl);
        check_intact(out[f], earlier[f], dir, ctx, fails, &fl);
        h_result_free(&r);
    }

    /* 3. Room again: the same run succeeds and replaces the file. */
    unlink(filler);
    h_result r;
    h_pyflame_runl(&r, 20, "-s", "0.2", "-o", out[0], "-p", pid, NULL);
    ck_assert_msg(r.status == 0 && r.err_len == 0, "[%s] -o after freeing space: %s", H_CTX(py), h_result_str(&r));
    char *s = h_read_file(out[0], NULL);
    h_profile p;
    ck_assert_msg(s && h_parse_collapsed(s, &p) == 0 && h_profile_total(&p) > 0,
                  "[%s] -o after freeing space: not a profile: %.200s", H_CTX(py), s ? s : "(none)");
    h_profile_free(&p);
    free(s);
    ck_assert_msg(leftovers(dir)[0] == '\0', "temporary files left: %s", leftovers(dir));
    h_result_free(&r);
    h_proc_stop(t);
    umount2(dir, MNT_DETACH);
    ck_assert_msg(fl == 0, "\n%s", fails);
}
END_TEST

START_TEST(test_temp_and_rename)
{
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    char dir[PATH_MAX], out[PATH_MAX], hard[PATH_MAX];
    h_snprintf(dir, sizeof(dir), "%s/rename", h_tmpdir());
    ck_assert(mkdir(dir, 0755) == 0);
    h_snprintf(out, sizeof(out), "%s/profile.txt", dir);
    h_snprintf(hard, sizeof(hard), "%s/hardlink.txt", dir);
    write_file(out, "earlier\n");
    ck_assert(link(out, hard) == 0);
    mode_t um = umask(022);
    h_result r;
    h_pyflame_runl(&r, 20, "-s", "0.2", "-o", out, "-p", pid, NULL);
    ck_assert_msg(r.status == 0 && r.err_len == 0 && r.out_len == 0, "[%s] %s", H_CTX(py), h_result_str(&r));
    h_result_free(&r);
    char *s = h_read_file(hard, NULL);
    ck_assert_msg(s && strcmp(s, "earlier\n") == 0,
                  "[%s] the earlier file was rewritten in place (its hard link now holds \"%.100s\"), not "
                  "replaced by a rename", H_CTX(py), s ? s : "(gone)");
    free(s);
    s = h_read_file(out, NULL);
    h_profile p;
    ck_assert_msg(s && h_parse_collapsed(s, &p) == 0 && h_profile_total(&p) > 0, "[%s] not a profile: %.200s",
                  H_CTX(py), s ? s : "(none)");
    h_profile_free(&p);
    free(s);
    ck_assert_msg(leftovers(dir)[0] == '\0', "[%s] temporary files left after success: %s", H_CTX(py),
                  leftovers(dir));

    /* A new file, in every format: mode 0666 & ~umask, no leftovers. */
    for (int f = 0; f < NFMT; f++) {
        char path[PATH_MAX];
        h_snprintf(path, sizeof(path), "%s/new-%s.%s", dir, formats[f].name, formats[f].ext);
        h_pyflame_runl(&r, 20, "-s", "0.1", "-o", path, "-p", pid, NULL);
        ck_assert_msg(r.status == 0 && r.err_len == 0, "[%s] -o %s: %s", H_CTX(py), path, h_result_str(&r));
        h_result_free(&r);
        struct stat st;
        ck_assert_msg(stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0, "[%s] -o %s: no file",
                      H_CTX(py), path);
        ck_assert_msg((st.st_mode & 0777) == 0644, "[%s] -o %s: mode %o, want 0644 (0666 & ~umask 022)", H_CTX(py),
                      path, (unsigned)(st.st_mode & 0777));
        ck_assert_msg(leftovers(dir)[0] == '\0', "[%s] temporary files left after -o %s: %s", H_CTX(py), path,
                      leftovers(dir));
    }
    umask(um);
    h_proc_stop(t);
}
END_TEST

/* A complete flamechart: pairs of lines (timestamp, stack or (idle)/(failed)),
 * ending with a newline. */
static int flamechart_complete(const char *s, size_t len, char *why, size_t wl)
{
    if (len == 0)
        return 1;   /* nothing sampled yet: an empty profile is complete */
    if (s[len - 1] != '\n') {
        h_snprintf(why, wl, "no final newline (%zu bytes)", len);
        return 0;
    }
    int line = 0;
    for (const char *l = s; *l; line++) {
        const char *eol = strchr(l, '\n');
        size_t ll = (size_t)(eol - l);
        if (line % 2 == 0) {
            if (ll == 0 || strspn(l, "0123456789") != ll) {
                h_snprintf(why, wl, "line %d is not a timestamp: \"%.*s\"", line + 1, (int)(ll > 80 ? 80 : ll), l);
                return 0;
            }
        } else if (!(ll > 0 && (l[ll - 1] == ';' || (ll == 6 && !strncmp(l, "(idle)", 6)) ||
                                (ll == 8 && !strncmp(l, "(failed)", 8))))) {
            h_snprintf(why, wl, "line %d is not a stack: \"%.*s\"", line + 1, (int)(ll > 80 ? 80 : ll), l);
            return 0;
        }
        l = eol + 1;
    }
    if (line % 2) {
        h_snprintf(why, wl, "odd number of lines (%d)", line);
        return 0;
    }
    return 1;
}

START_TEST(test_never_partial)
{
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    char dir[PATH_MAX], out[PATH_MAX];
    h_snprintf(dir, sizeof(dir), "%s/partial", h_tmpdir());
    ck_assert(mkdir(dir, 0755) == 0);
    h_snprintf(out, sizeof(out), "%s/profile.txt", dir);
    const char *argv[] = { h_pyflame(), "--flamechart", "-r", "0.001", "-s", "2.5", "-o", out, "-p", pid, NULL };
    h_proc *pf = h_spawn(argv, NULL, 0);
    /* Wait for the handlers, then ask for a dump every 40 ms and read the
     * path as fast as possible meanwhile. */
    h_sleep_ms(100);
    double end = now_s() + 2.0, next_dump = 0;
    int reads = 0, versions = 0, dumps = 0;
    size_t last_len = 0;
    while (now_s() < end && h_proc_alive(pf)) {
        if (now_s() >= next_dump) {
            kill(pf->pid, SIGUSR1);
            dumps++;
            next_dump = now_s() + 0.04;
        }
        size_t len = 0;
        char *s = h_read_file(out, &len);
        if (!s)
            continue;
        reads++;
        char why[256];
        ck_assert_msg(flamechart_complete(s, len, why, sizeof(why)),
                      "[%s] read %d of %s while pyflame rewrote it: a partial profile (%s)", H_CTX(py), reads, out,
                      why);
        if (len != last_len)
            versions++;
        last_len = len;
        free(s);
    }
    int st = h_proc_wait(pf, 15);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "[%s] pyflame: status 0x%x, stderr %s",
                  H_CTX(py), st, h_proc_stderr(pf));
    ck_assert_msg(err_without_behind(h_proc_stderr(pf))[0] == '\0', "[%s] pyflame wrote to stderr: %s", H_CTX(py),
                  h_proc_stderr(pf));
    h_proc_stop(pf);
    size_t len = 0;
    char *s = h_read_file(out, &len);
    char why[256];
    ck_assert_msg(s && len > 0 && flamechart_complete(s, len, why, sizeof(why)), "[%s] the final profile: %s",
                  H_CTX(py), s ? why : "missing");
    free(s);
    ck_assert_msg(leftovers(dir)[0] == '\0', "[%s] temporary files left: %s", H_CTX(py), leftovers(dir));
    h_note("[%s] never partial: %d SIGUSR1 dumps, %d reads, %d distinct versions seen", H_CTX(py), dumps, reads,
           versions);
    ck_assert_msg(versions >= 2, "[%s] the test saw only %d version(s) of the file: it proves nothing", H_CTX(py),
                  versions);
    h_proc_stop(t);
}
END_TEST

/* -o onto a character device, a FIFO and a symbolic link (in a private tmpfs
 * so that no real device is at risk): written through, never replaced. */
START_TEST(test_not_regular_files)
{
    if (private_mounts("-o onto a device, a FIFO, a symlink") < 0)
        return;
    char dir[PATH_MAX];
    h_snprintf(dir, sizeof(dir), "%s/special", h_tmpdir());
    if (mount_tmpfs(dir, "size=1m", "-o onto a device, a FIFO, a symlink") < 0)
        return;
    const h_python *py = h_python_default();
    h_proc *t = h_target_startl(py, "cpu.py", NULL);
    char pid[16];
    h_pidstr(t->pid, pid);
    char fails[4096] = "";
    size_t fl = 0;

    /* A copy of /dev/null (char 1:3). */
    char null[PATH_MAX];
    h_snprintf(null, sizeof(null), "%s/null", dir);
    ck_assert_msg(mknod(null, S_IFCHR | 0666, makedev(1, 3)) == 0, "mknod %s: %s", null, strerror(errno));
    h_result r;
    h_pyflame_runl(&r, 20, "-s", "0.1", "-o", null, "-p", pid, NULL);
    struct stat st;
    if (lstat(null, &st) != 0 || !S_ISCHR(st.st_mode))
        fl += (size_t)snprintf(fails + fl, sizeof(fails) - fl,
                               "-o onto a character device (a copy of /dev/null): it was replaced by a %s (exit %d); "
                               "as root, `pyflame -o /dev/null` would do this to /dev/null\n",
                               S_ISREG(st.st_mode) ? "regular file" : "something else", r.status);
    else if (r.status != 0)
        fl += (size_t)snprintf(fails + fl, sizeof(fails) - fl, "-o onto a character device: %s\n", h_result_str(&r));
    h_result_free(&r);

    /* A FIFO with a reader. */
    char fifo[PATH_MAX], got[PATH_MAX];
    h_snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    h_snprintf(got, sizeof(got), "%s/fifo.read", dir);
    ck_assert(mkfifo(fifo, 0644) == 0);
    char cmd[3 * PATH_MAX];
    h_snprintf(cmd, sizeof(cmd), "exec cat '%s' > '%s'", fifo, got);
    const char *cargv[] = { "sh", "-c", cmd, NULL };
    h_proc *reader = h_spawn(cargv, NULL, 0);
    h_pyflame_runl(&r, 20, "-s", "0.1", "-o", fifo, "-p", pid, NULL);
    int rst = h_proc_wait(reader, 3);
    size_t glen = 0;
    char *gs = h_read_file(got, &glen);
    if (lstat(fifo, &st) != 0 || !S_ISFIFO(st.st_mode))
        fl += (size_t)snprintf(fails + fl, sizeof(fails) - fl,
                               "-o onto a FIFO: it was replaced by a regular file (exit %d); its reader got %zu bytes "
                               "and %s\n", r.status, glen, rst == -1 ? "waits forever" : "ended");
    else if (r.status != 0 || glen == 0)
        fl += (size_t)snprintf(fails + fl, sizeof(fails) - fl, "-o onto a FIFO: reader got %zu bytes; %s\n", glen,
                               h_result_str(&r));
    free(gs);
    h_proc_stop(reader);
    h_result_free(&r);

    /* A symbolic link to a file: the file gets the profile, the link stays. */
    char real[PATH_MAX], sym[PATH_MAX];
    h_snprintf(real, sizeof(real), "%s/real.txt", dir);
    h_snprintf(sym, sizeof(sym), "%s/link.txt", dir);
    write_file(real, "earlier\n");
    ck_assert(symlink("real.txt", sym) == 0);
    h_pyflame_runl(&r, 20, "-s", "0.1", "-o", sym, "-p", pid, NULL);
    char *rs = h_read_file(real, NULL);
    if (lstat(sym, &st) != 0 || !S_ISLNK(st.st_mode))
        fl += (size_t)snprintf(fails + fl, sizeof(fails) - fl,
                               "-o onto a symbolic link: the link was replaced by a regular file (exit %d) and its "
                               "target still holds \"%.20s\"; `pyflame -o /dev/stdout` would replace /dev/stdout\n",
                               r.status, rs ? rs : "");
    else if (r.status != 0 || !rs || strcmp(rs, "earlier\n") == 0)
        fl += (size_t)snprintf(fails + fl, sizeof(fails) - fl, "-o onto a symbolic link: target not written; %s\n",
                               h_result_str(&r));
    free(rs);
    h_result_free(&r);
    ck_assert_msg(leftovers(dir)[0] == '\0', "temporary files left: %s", leftovers(dir));
    h_proc_stop(t);
    umount2(dir, MNT_DETACH);
    ck_assert_msg(fl == 0, "[%s]\n%s", H_CTX(py), fails);
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("robust_output");
    TCase *tc = tcase_create("output");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tmpfs_full);
    tcase_add_test(tc, test_temp_and_rename);
    tcase_add_test(tc, test_never_partial);
    tcase_add_test(tc, test_not_regular_files);
    suite_add_tcase(s, tc);
    return h_run_suite(s);
}
