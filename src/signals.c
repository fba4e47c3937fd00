/* signals.c - see signals.h. */
#include "signals.h"

#include <string.h>

volatile sig_atomic_t signals_pending;

static void on_signal(int sig)
{
    switch (sig) {
    case SIGINT:
        signals_pending |= SIGNALS_STOP | (1 << 8);
        break;
    case SIGTERM:
        signals_pending |= SIGNALS_STOP | (2 << 8);
        break;
    case SIGHUP:
        signals_pending |= SIGNALS_STOP | (4 << 8);
        break;
    case SIGUSR1:
        signals_pending |= SIGNALS_DUMP;
        break;
    default:
        break;   /* SIGCHLD, SIGALRM: only interrupt the blocking call */
    }
}

void signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);   /* handlers never interrupt each other */
    sa.sa_flags = 0;           /* no SA_RESTART: blocking calls return EINTR */
    int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGCHLD, SIGALRM };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int signals_stop_signal(void)
{
    int v = signals_pending >> 8;
    if (v & 1)
        return SIGINT;
    if (v & 2)
        return SIGTERM;
    if (v & 4)
        return SIGHUP;
    return 0;
}

void signals_clear_dump(void)
{
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    signals_pending &= ~SIGNALS_DUMP;
    sigprocmask(SIG_SETMASK, &old, NULL);
}
