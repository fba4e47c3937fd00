/* ptrace_cost.c - the floor under pyflame's per-sample cost, measured without pyflame.
 *
 *   build/bench/ptrace_cost [SECONDS]
 *
 * Forks a child that spins, counting loop iterations in shared memory, and
 * measures, as key value lines on stdout:
 *
 *   stop_cont_wall_us    PTRACE_INTERRUPT + waitpid(stop) + PTRACE_CONT, wall time
 *   stop_cont_cpu_us     the same, the tracer's CPU (user+sys) per round trip
 *   target_loss_us       the spinning child's lost time per round trip, at
 *                        10,000 round trips/s (its progress vs running free,
 *                        free runs before and after, averaged)
 *   wakeup_cpu_us        the tracer's CPU per clock_nanosleep tick at 10,000/s
 *   readv64_cpu_us       CPU per process_vm_readv of 64 bytes
 *   readv4k_cpu_us       CPU per process_vm_readv of 4096 bytes
 *
 * One blocking sample costs at least one round trip plus one wakeup plus the
 * reads; a non-blocking sample at least one wakeup plus the reads.  The
 * target loss times the rate is the least slowdown a blocking sampler causes.
 * All of it is only meaningful on an otherwise idle machine.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile uint64_t *counter;
static char child_buf[4096];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void sleep_until(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int round_trip(pid_t pid)
{
    int status;
    if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) != 0)
        return -1;
    for (;;) {
        if (waitpid(pid, &status, __WALL) != pid)
            return -1;
        if (WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP)
            break;
        /* another stop (a signal): pass it on and wait again */
        ptrace(PTRACE_CONT, pid, NULL, (void *)(long)(WIFSTOPPED(status) ? WSTOPSIG(status) : 0));
        if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) != 0)
            return -1;
    }
    return ptrace(PTRACE_CONT, pid, NULL, NULL);
}

/* The child's progress rate (iterations/s) over SECS, optionally with a round
 * trip every PERIOD seconds (0: none); *trips gets their number. */
static double progress(pid_t pid, double secs, double period, long *trips)
{
    long n = 0;
    uint64_t c0 = *counter;
    double t0 = now_s(), next = t0;
    if (period <= 0) {
        sleep_until(t0 + secs);
    } else {
        while ((next += period) < t0 + secs) {
            sleep_until(next);
            if (round_trip(pid) == 0)
                n++;
        }
        sleep_until(t0 + secs);
    }
    uint64_t c1 = *counter;
    double t1 = now_s();
    if (trips)
        *trips = n;
    return (double)(c1 - c0) / (t1 - t0);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (secs <= 0)
        secs = 1.0;
    counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counter == MAP_FAILED)
        return perror("mmap"), 1;
    memset(child_buf, 7, sizeof(child_buf));
    pid_t pid = fork();
    if (pid < 0)
        return perror("fork"), 1;
    if (pid == 0) {
        for (;;)
            (*counter)++;
    }
    if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) != 0) {
        perror("ptrace(PTRACE_SEIZE)");
        kill(pid, SIGKILL);
        return 1;
    }
    usleep(100000);

    /* Back-to-back round trips. */
    long n = (long)(20000 * secs);
    double c0 = cpu_s(), t0 = now_s();
    for (long i = 0; i < n; i++)
        if (round_trip(pid) != 0)
            return perror("round trip"), 1;
    double t1 = now_s(), c1 = cpu_s();
    printf("stop_cont_wall_us %.3f\n", (t1 - t0) / n * 1e6);
    printf("stop_cont_cpu_us %.3f\n", (c1 - c0) / n * 1e6);

    /* What the child loses per round trip at 10,000/s. */
    {
        long trips = 0;
        double free1 = progress(pid, secs / 2, 0, NULL);
        double traced = progress(pid, secs, 1e-4, &trips);
        double free2 = progress(pid, secs / 2, 0, NULL);
        double free_rate = (free1 + free2) / 2;
        double lost = (free_rate - traced) / free_rate * secs;   /* seconds lost */
        printf("target_loss_us %.3f\n", trips ? lost / trips * 1e6 : 0.0);
    }

    /* Wakeups alone, at 10,000/s. */
    long ticks = (long)(10000 * secs);
    c0 = cpu_s();
    t0 = now_s();
    for (long i = 1; i <= ticks; i++)
        sleep_until(t0 + i * 1e-4);
    c1 = cpu_s();
    printf("wakeup_cpu_us %.3f\n", (c1 - c0) / ticks * 1e6);

    /* process_vm_readv, 64 bytes and 4096 bytes (the child runs meanwhile). */
    static const size_t sizes[] = { 64, 4096 };
    static const char *snames[] = { "readv64_cpu_us", "readv4k_cpu_us" };
    for (int k = 0; k < 2; k++) {
        char buf[4096];
        long m = (long)(200000 * secs);
        c0 = cpu_s();
        for (long i = 0; i < m; i++) {
            struct iovec local = { buf, sizes[k] }, remote = { child_buf, sizes[k] };
            if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)sizes[k])
                return perror("process_vm_readv"), 1;
        }
        c1 = cpu_s();
        printf("%s %.3f\n", snames[k], (c1 - c0) / m * 1e6);
    }

    kill(pid, SIGKILL);
    waitpid(pid, NULL, __WALL);
    return 0;
}
