/*
 * proctree.h - the descendants of a set of processes, from the parent links
 * in /proc/PID/stat (used by --subprocesses to find new Python children,
 * including those started through a shell).
 */
#ifndef PYFLAME_PROCTREE_H
#define PYFLAME_PROCTREE_H

#include <stddef.h>
#include <sys/types.h>

/* Every live descendant (children, grandchildren, ...) of the roots, in a
 * malloc'ed array.  0 or -errno. */
int proctree_descendants(const pid_t *roots, size_t nroots, pid_t **out, size_t *n);

#endif
