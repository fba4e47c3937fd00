/*
 * signals.h - pyflame's own signal handling.  The handlers only record which
 * signals arrived in the single global `signals_pending`; the sampler looks
 * at it once per tick.  SIGCHLD and SIGALRM only interrupt blocking calls
 * (no SA_RESTART), so sleeps end early when a traced thread reports.
 */
#ifndef PYFLAME_SIGNALS_H
#define PYFLAME_SIGNALS_H

#include <signal.h>

#define SIGNALS_STOP   1   /* SIGINT, SIGTERM, SIGHUP: end the run, write the profile */
#define SIGNALS_DUMP   2   /* SIGUSR1: write the profile so far, keep running */

extern volatile sig_atomic_t signals_pending;

void signals_install(void);
/* Which stop signal arrived first (SIGINT, SIGTERM, SIGHUP), or 0. */
int signals_stop_signal(void);
/* Clears SIGNALS_DUMP (signals blocked meanwhile, so nothing is lost). */
void signals_clear_dump(void);

#endif
