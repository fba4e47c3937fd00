/*
 * launch.h - starting the command of `pyflame -t`: fork, exec through PATH,
 * with the user's stdin, stdout and stderr.  A command that cannot be
 * executed is reported here, before any profiling.
 */
#ifndef PYFLAME_LAUNCH_H
#define PYFLAME_LAUNCH_H

#include <sys/types.h>
#include "error.h"

/* Starts argv[0] with argv.  Returns 0 and the child's PID, or -errno with a
 * message ("Child process exited with status 1: cannot execute ...") in e. */
int launch_command(char *const argv[], pid_t *child, struct error *e);

/* The exit status pyflame should give for a child's wait status:
 * its exit code, or 128 + the signal that killed it. */
int launch_exit_code(int wait_status);

#endif
