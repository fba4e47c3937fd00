/* proc.c - reading /proc/PID.  See proc.h. */
#include "proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int proc_maps_read(pid_t pid, struct proc_maps *m)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    m->v = NULL;
    m->n = 0;
    size_t cap = 0;
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &linecap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        struct proc_map pm;
        memset(&pm, 0, sizeof(pm));
        int pathpos = 0;
        unsigned maj, min;
        if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n",
                   &pm.start, &pm.end, pm.perms, &pm.offset, &maj, &min, &pm.inode, &pathpos) < 7)
            continue;
        const char *p = pathpos > 0 && pathpos <= len ? line + pathpos : "";
        while (*p == ' ')
            p++;
        pm.path = strdup(p);
        if (!pm.path) {
            rc = -ENOMEM;
            break;
        }
        if (m->n == cap) {
            cap = cap ? cap * 2 : 64;
            struct proc_map *nv = realloc(m->v, cap * sizeof(*nv));
            if (!nv) {
                free(pm.path);
                rc = -ENOMEM;
                break;
            }
            m->v = nv;
        }
        m->v[m->n++] = pm;
    }
    free(line);
    fclose(f);
    if (rc < 0)
        proc_maps_free(m);
    else if (m->n == 0)
        rc = -ESRCH;   /* no mappings: a kernel thread or a zombie */
    return rc;
}

void proc_maps_free(struct proc_maps *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].path);
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

int proc_tasks(pid_t pid, pid_t **tids, size_t *n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    size_t cap = 16, cnt = 0;
    pid_t *v = malloc(cap * sizeof(*v));
    if (!v) {
        closedir(d);
        return -ENOMEM;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        if (cnt == cap) {
            cap *= 2;
            pid_t *nv = realloc(v, cap * sizeof(*nv));
            if (!nv) {
                free(v);
                closedir(d);
                return -ENOMEM;
            }
            v = nv;
        }
        v[cnt++] = (pid_t)atoi(de->d_name);
    }
    closedir(d);
    *tids = v;
    *n = cnt;
    return 0;
}

static ssize_t read_small_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

int proc_status_long(pid_t pid, const char *field, long *out)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    ssize_t n = read_small_file(path, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    size_t flen = strlen(field);
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            *out = strtol(line + flen + 1, NULL, 10);
            return 0;
        }
        line = next;
    }
    return -ENOENT;
}

/* The last number of the NSpid line of a status file, or 0. */
static pid_t last_nspid(const char *path, int *levels)
{
    char buf[4096];
    *levels = 0;
    if (read_small_file(path, buf, sizeof(buf)) <= 0)
        return 0;
    char *line = strstr(buf, "\nNSpid:");
    if (!line)
        return 0;
    line += 7;
    pid_t last = 0;
    for (char *end; *line && *line != '\n'; line = end) {
        long v = strtol(line, &end, 10);
        if (end == line)
            break;
        last = (pid_t)v;
        (*levels)++;
    }
    return last;
}

pid_t proc_host_tid(pid_t pid, pid_t ns_tid)
{
    char path[96];
    int levels;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (last_nspid(path, &levels) == 0 || levels <= 1)
        return ns_tid;   /* the same namespace as ours (or no NSpid: an old kernel) */
    pid_t *tids = NULL;
    size_t n = 0;
    if (proc_tasks(pid, &tids, &n) < 0)
        return 0;
    pid_t found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tids[i]);
        if (last_nspid(path, &levels) == ns_tid)
            found = tids[i];
    }
    free(tids);
    return found;
}

char proc_thread_state(pid_t pid, pid_t tid)
{
    char path[96], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    if (read_small_file(path, buf, sizeof(buf)) <= 0)
        return 0;
    /* "tid (comm) S ...": comm may contain ')' and spaces; the state follows the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    return p[2];
}

int proc_thread_name(pid_t pid, pid_t tid, char *buf, size_t cap)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
    ssize_t n = read_small_file(path, buf, cap);
    if (n < 0)
        return (int)n;
    while (n > 0 && (buf[n - 1] == '\n'))
        buf[--n] = '\0';
    return 0;
}

int proc_cmdline(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    ssize_t n = read_small_file(path, buf, cap);
    if (n < 0)
        return (int)n;
    while (n > 0 && buf[n - 1] == '\0')
        n--;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return 0;
}

int proc_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_small_file(path, buf, sizeof(buf)) <= 0)
        return 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

int proc_is_kernel_thread(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_small_file(path, buf, sizeof(buf)) <= 0)
        return 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    /* field 9 (flags) counted from the state, which is field 3 */
    unsigned long flags = 0;
    char state;
    int ppid, pgrp, session, tty, tpgid;
    if (sscanf(p + 2, "%c %d %d %d %d %d %lu", &state, &ppid, &pgrp, &session, &tty, &tpgid, &flags) != 7)
        return 0;
    return (flags & 0x00200000UL) != 0;   /* PF_KTHREAD */
}
