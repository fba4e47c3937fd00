/*
 * sampler.h - the sampling loop.  It owns time: ticks on absolute deadlines
 * (CLOCK_MONOTONIC), and on each tick it stops the target's threads (unless
 * non-blocking), reads the GIL holder's stack or every thread's, resumes,
 * and records the samples in the profile.  It ends when the duration is up,
 * when the target exits, or when pyflame is asked to stop (SIGINT, SIGTERM,
 * SIGHUP); SIGUSR1 writes the profile so far through a callback.
 */
#ifndef PYFLAME_SAMPLER_H
#define PYFLAME_SAMPLER_H

#include <sys/types.h>

#include "error.h"
#include "options.h"
#include "profile.h"

struct sampler_result {
    int stop_signal;         /* the signal that ended the run, or 0 */
    int all_exited;          /* every target process exited during the run */
    int child_status;        /* launch mode: the child's wait status, -1 if unknown */
    unsigned long ticks;     /* sampling rounds done */
    unsigned long behind;    /* ticks that started late by more than one period */
    double achieved_rate;    /* ticks per second achieved */
    double asked_rate;       /* ticks per second asked for (0: as fast as possible) */
};

/* Called on SIGUSR1 with the profile so far. */
typedef void (*sampler_dump_fn)(const struct profile *p, void *arg);

/* Profiles the processes of o->pids (already running), or the child `child`
 * (launch mode, child > 0: waits for its interpreter first).  0, or -errno
 * with a message in e (nothing was sampled: an attach or discovery error). */
int sampler_run(const struct options *o, pid_t child, struct profile *p,
                sampler_dump_fn on_dump, void *dump_arg, struct sampler_result *res,
                struct error *e);

#endif
