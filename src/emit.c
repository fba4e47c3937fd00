/*
 * emit.c - choose the writer for a format and write the profile to stdout or,
 * atomically, to a file: the data goes to a temporary file in the target's
 * directory, is flushed and fsync'ed, and only then renamed over the path.
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

int emit_profile(const char *path, const struct profile *p, const struct emit_options *o,
                 char *errbuf, size_t errlen)
{
    emit_fn fn = writer_for(o->format);
    if (!fn) {
        snprintf(errbuf, errlen, "unknown output format");
        return -EINVAL;
    }
    if (!path || strcmp(path, "-") == 0) {
        int rc = fn(stdout, p, o);
        if (rc == 0 && fflush(stdout) != 0)
            rc = -errno;
        if (rc < 0 && rc != -EPIPE)
            snprintf(errbuf, errlen, "cannot write the profile to stdout: %s", strerror(-rc));
        return rc;
    }

    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp) {
        snprintf(errbuf, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(tmp, len + 32, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, errlen, "cannot open file \"%s\" as output: %s", path, strerror(e));
        free(tmp);
        return -e;
    }
    /* Respect the umask like a plain open(O_CREAT, 0666) would. */
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);

    FILE *f = fdopen(fd, "w");
    int rc = f ? 0 : -errno;
    if (f) {
        rc = fn(f, p, o);
        if (rc == 0 && fflush(f) != 0)
            rc = -errno;
        if (rc == 0 && ferror(f))
            rc = -EIO;
        if (rc == 0 && fsync(fileno(f)) != 0 && errno != EINVAL)
            rc = -errno;
        if (fclose(f) != 0 && rc == 0)
            rc = -errno;
    } else {
        close(fd);
    }
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        snprintf(errbuf, errlen, "cannot write \"%s\": %s", path, strerror(-rc));
    }
    free(tmp);
    return rc;
}
