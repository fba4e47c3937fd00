/*
 * emit.c - choose the writer for a format and write the profile to stdout or,
 * atomically, to a file: the data goes to a temporary file in the target's
 * directory, is flushed and fsync'ed, and only then renamed over the path.
 * Paths that are not regular files (devices, FIFOs) are written in place.
 */
#include "emit.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int (*emit_fn)(FILE *, const struct profile *, const struct emit_options *);

static emit_fn writer_for(enum output_format f)
{
    switch (f) {
    case FORMAT_COLLAPSED: return emit_collapsed;
    case FORMAT_FLAMECHART: return emit_flamechart;
    case FORMAT_DUMP: return emit_dump;
    case FORMAT_SVG: return emit_svg;
    case FORMAT_SPEEDSCOPE: return emit_speedscope;
    case FORMAT_PPROF: return emit_pprof;
    case FORMAT_CHROME: return emit_chrome;
    default: return NULL;
    }
}

/* Runs a writer and flushes; a stdio error is reported with its errno
 * (ENOSPC, EPIPE, ...) rather than as a bare EIO. */
static int run_writer(emit_fn fn, FILE *f, const struct profile *p, const struct emit_options *o)
{
    errno = 0;
    int rc = fn(f, p, o);
    int saved = errno;
    if (rc == 0 && fflush(f) != 0)
        rc = -errno;
    if (rc == 0 && ferror(f))
        rc = -EIO;
    if (rc == -EIO && saved && saved != EIO)
        rc = -saved;
    return rc;
}

/* Where a symlink points (its target may not exist yet), malloc'ed, or NULL. */
static char *link_target(const char *path)
{
    char *r = realpath(path, NULL);
    if (r)
        return r;
    char buf[4096];
    ssize_t n = readlink(path, buf, sizeof(buf) - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    if (buf[0] == '/')
        return strdup(buf);
    /* relative to the link's directory */
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    char *out = malloc(dirlen + (size_t)n + 1);
    if (out) {
        memcpy(out, path, dirlen);
        memcpy(out + dirlen, buf, (size_t)n + 1);
    }
    return out;
}

static int write_in_place(const char *path, emit_fn fn, const struct profile *p,
                          const struct emit_options *o, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        snprintf(errbuf, errlen, "cannot open file \"%s\" as output: %s", path, strerror(e));
        return -e;
    }
    int rc = run_writer(fn, f, p, o);
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc < 0)
        snprintf(errbuf, errlen, "cannot write \"%s\": %s", path, strerror(-rc));
    return rc;
}

int emit_profile(const char *path, const struct profile *p, const struct emit_options *o,
                 char *errbuf, size_t errlen)
{
    emit_fn fn = writer_for(o->format);
    if (!fn) {
        snprintf(errbuf, errlen, "unknown output format");
        return -EINVAL;
    }
    if (!path || strcmp(path, "-") == 0) {
        int rc = run_writer(fn, stdout, p, o);
        if (rc < 0 && rc != -EPIPE)
            snprintf(errbuf, errlen, "cannot write the profile to stdout: %s", strerror(-rc));
        return rc;
    }

    /* A device, a FIFO or /dev/stdout is written in place: renaming a file
     * over it would replace it.  A symlink to a regular file is followed, so
     * the link stays and its target is replaced. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return write_in_place(path, fn, p, o, errbuf, errlen);
    char *resolved = NULL;
    struct stat lst;
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
        resolved = link_target(path);
    const char *target = resolved ? resolved : path;

    size_t len = strlen(target);
    char *tmp = malloc(len + 32);
    if (!tmp) {
        free(resolved);
        snprintf(errbuf, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(tmp, len + 32, "%s.tmp.XXXXXX", target);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, errlen, "cannot open file \"%s\" as output: %s", path, strerror(e));
        free(tmp);
        free(resolved);
        return -e;
    }
    /* Respect the umask like a plain open(O_CREAT, 0666) would. */
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);

    FILE *f = fdopen(fd, "w");
    int rc = f ? 0 : -errno;
    if (f) {
        rc = run_writer(fn, f, p, o);
        if (rc == 0 && fsync(fileno(f)) != 0 && errno != EINVAL)
            rc = -errno;
        if (fclose(f) != 0 && rc == 0)
            rc = -errno;
    } else {
        close(fd);
    }
    if (rc == 0 && rename(tmp, target) != 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        snprintf(errbuf, errlen, "cannot write \"%s\": %s", path, strerror(-rc));
    }
    free(tmp);
    free(resolved);
    return rc;
}
