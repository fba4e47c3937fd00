/*
 * options.h - the command line, parsed once into an immutable struct.
 * No other module reads argv.
 */
#ifndef PYFLAME_OPTIONS_H
#define PYFLAME_OPTIONS_H

#include <sys/types.h>
#include "emit.h"
#include "error.h"

#define OPTIONS_MAX_PIDS 64
#define OPTIONS_MAX_THREAD_FILTERS 64
#define OPTIONS_MAX_OUTPUTS 8

enum options_action {
    ACTION_PROFILE = 0,   /* sample and write a profile */
    ACTION_HELP,          /* print help, exit 0 */
    ACTION_VERSION,       /* print the version line, exit 0 */
    ACTION_PERF_ON,       /* --perf-on: activate CPython's perf trampoline */
    ACTION_PERF_OFF,      /* --perf-off: deactivate it */
};

struct options {
    enum options_action action;
    pid_t pids[OPTIONS_MAX_PIDS];
    int npids;
    char **command;           /* -t: argv of the command to launch (NULL-terminated) */
    double seconds;           /* -s; < 0: until the target exits; 0: one sample */
    double rate;              /* -r: seconds between samples; <= 0: no sleep */
    const char *output;       /* the first -o; NULL = stdout */
    const char *outputs[OPTIONS_MAX_OUTPUTS];   /* every -o (the same profile in each) */
    enum output_format formats[OPTIONS_MAX_OUTPUTS];   /* the format of each */
    int noutputs;
    int exclude_idle;         /* -x */
    int no_line_numbers;      /* -n */
    int threads;              /* --threads */
    int dump;                 /* -d */
    int per_thread;           /* --per-thread */
    int gil_only;             /* --gil */
    const char *thread_filters[OPTIONS_MAX_THREAD_FILTERS];  /* --thread */
    int nthread_filters;
    const char *abi;          /* --abi (normalised: "27", "36", ..., "313"), NULL = auto */
    enum output_format format;/* -f/--format, --flamechart, -d, or from the first -o's extension */
    int qualnames;            /* --qualnames */
    const char *title;        /* --title */
    int nonblocking;          /* --nonblocking */
    int subprocesses;         /* --subprocesses: follow Python child processes */
    int native;               /* --native: mixed Python/C/kernel stacks through perf */
    int inject_method;        /* --inject-method (enum inject_method) */
    int deprecated_pid;       /* a bare PID was given (print the WARNING) */
};

/* Parses argv.  Returns 0, or a negative code with a one-line message in e;
 * e->code == -EINVAL with an empty message means "print the usage". */
int options_parse(int argc, char **argv, struct options *o, struct error *e);

/* The usage text (starts with "Usage: pyflame"). */
const char *options_usage(void);

/* Normalises an --abi value ("27", "2.7", "312", "3.12", ...) to its table
 * name, or returns NULL when unknown. */
const char *options_abi_name(const char *value);

#endif
