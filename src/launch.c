/* launch.c - see launch.h. */
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int launch_command(char *const argv[], pid_t *child, struct error *e)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return error_set(e, -errno, "cannot create a pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(pfd[0]);
        close(pfd[1]);
        return error_set(e, -err, "cannot fork: %s", strerror(err));
    }
    if (pid == 0) {
        /* The child: default signal dispositions, then exec. */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            sigaction(sig, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        close(pfd[0]);
        execvp(argv[0], argv);
        int err = errno;
        ssize_t w = write(pfd[1], &err, sizeof(err));
        (void)w;
        _exit(127);
    }
    close(pfd[1]);
    int err = 0;
    ssize_t r;
    do {
        r = read(pfd[0], &err, sizeof(err));
    } while (r < 0 && errno == EINTR);
    close(pfd[0]);
    if (r == (ssize_t)sizeof(err)) {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        return error_set(e, -err, "Child process exited with status %d: cannot execute \"%s\": %s",
                         WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), argv[0],
                         strerror(err));
    }
    *child = pid;
    return 0;
}

int launch_exit_code(int wait_status)
{
    if (WIFEXITED(wait_status))
        return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status))
        return 128 + WTERMSIG(wait_status);
    return 1;
}
