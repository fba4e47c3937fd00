/* proctree.c - see proctree.h. */
#include "proctree.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct link { pid_t pid, ppid; };

static int read_ppid(pid_t pid, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    char state;
    int pp;
    if (!p || sscanf(p + 1, " %c %d", &state, &pp) != 2)
        return -EIO;
    if (state == 'Z' || state == 'X')
        return -ESRCH;
    *ppid = (pid_t)pp;
    return 0;
}

int proctree_descendants(const pid_t *roots, size_t nroots, pid_t **out, size_t *n)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -errno;
    struct link *links = NULL;
    size_t nl = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(de->d_name), ppid;
        if (read_ppid(pid, &ppid) < 0)
            continue;
        if (nl == cap) {
            cap = cap ? cap * 2 : 512;
            struct link *nlinks = realloc(links, cap * sizeof(*nlinks));
            if (!nlinks) {
                free(links);
                closedir(d);
                return -ENOMEM;
            }
            links = nlinks;
        }
        links[nl].pid = pid;
        links[nl].ppid = ppid;
        nl++;
    }
    closedir(d);

    /* Breadth-first from the roots; `found` doubles as the queue. */
    pid_t *found = malloc((nl + 1) * sizeof(*found));
    if (!found) {
        free(links);
        return -ENOMEM;
    }
    size_t nf = 0;
    for (size_t r = 0; r < nroots; r++) {
        for (size_t i = 0; i < nl; i++)
            if (links[i].ppid == roots[r] && links[i].pid != roots[r])
                found[nf++] = links[i].pid, links[i].ppid = -1;
    }
    for (size_t q = 0; q < nf; q++) {
        for (size_t i = 0; i < nl && nf < nl; i++)
            if (links[i].ppid == found[q])
                found[nf++] = links[i].pid, links[i].ppid = -1;
    }
    free(links);
    *out = found;
    *n = nf;
    return 0;
}
