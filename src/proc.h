/*
 * proc.h - what /proc says about a process: its mappings, threads, names,
 * states and tracer.  Paths are always built from the PID; files inside the
 * target's mount namespace are reached through /proc/PID/root.
 */
#ifndef PYFLAME_PROC_H
#define PYFLAME_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_map {
    uint64_t start, end, offset;
    uint64_t inode;
    char perms[5];
    char *path;        /* as in /proc/PID/maps; "" for anonymous mappings */
};

struct proc_maps {
    struct proc_map *v;
    size_t n;
};

/* Reads /proc/PID/maps.  0 or -errno. */
int proc_maps_read(pid_t pid, struct proc_maps *m);
void proc_maps_free(struct proc_maps *m);

/* Lists /proc/PID/task into a malloc'ed array.  0 or -errno. */
int proc_tasks(pid_t pid, pid_t **tids, size_t *n);

/* A field of /proc/PID/status as a number ("TracerPid", "Tgid", ...): 0 or -errno. */
int proc_status_long(pid_t pid, const char *field, long *out);

/* The state letter of /proc/PID/task/TID/stat ('R', 'S', 'D', 'Z', ...), or 0. */
char proc_thread_state(pid_t pid, pid_t tid);

/* The kernel's name of a thread (comm), NUL-terminated. 0 or -errno. */
int proc_thread_name(pid_t pid, pid_t tid, char *buf, size_t cap);

/* The command line with spaces between arguments, NUL-terminated. 0 or -errno. */
int proc_cmdline(pid_t pid, char *buf, size_t cap);

/* The host TID of the thread that its own PID namespace calls ns_tid (the
 * last NSpid entry of /proc/PID/task/TID/status), or 0 when none matches.
 * For processes in the caller's namespace, ns_tid itself. */
pid_t proc_host_tid(pid_t pid, pid_t ns_tid);

/* Does the process exist (and is it not a zombie)?  1, 0. */
int proc_alive(pid_t pid);

/* Is it a kernel thread (no mm)?  1, 0. */
int proc_is_kernel_thread(pid_t pid);

#endif
