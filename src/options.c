/*
 * options.c - Pyflame-compatible command line parsing (getopt_long, options
 * and operands may be permuted, long options may be abbreviated), made
 * strict: bad values are errors with exit 1, never aborts.
 */
#include "options.h"

#include "inject.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
"Usage: pyflame [options] [-p] PID\n"
"       pyflame [options] -t command arg1 arg2...\n"
"\n"
"Common options:\n"
"  -p, --pid=PID          The PID to profile (may be given more than once)\n"
"  -t, --trace            Run and profile the command that follows; pyflame exits\n"
"                         with the command's exit status (128+N if killed by signal N)\n"
"  -s, --seconds=SECS     How many seconds to run for (default 1; -1: until the\n"
"                         target exits; 0: take exactly one sample)\n"
"  -r, --rate=RATE        Sample rate, as a fractional value of seconds (default 0.01)\n"
"  -o, --output=PATH      Write the profile to PATH (default: stdout); the format\n"
"                         follows the extension: .svg .speedscope.json .pb.gz .json\n"
"                         .flamechart; -o may be repeated (the same profile in each)\n"
"  -f, --format=FORMAT    collapsed (default), flamechart, svg, speedscope, pprof, chrome\n"
"  -x, --exclude-idle     Exclude idle time from statistics\n"
"  -n, --no-line-numbers  Do not append line numbers to function names\n"
"      --threads          Sample every Python thread on each tick, not just the GIL holder\n"
"      --per-thread       A root frame \"thread NAME (TID)\" per thread (implies --threads)\n"
"      --thread=TID|NAME  Keep only this thread (repeatable; implies --threads)\n"
"      --gil              Keep only the GIL holder's stacks (implies --threads)\n"
"  -d, --dump             Dump the stacks of all threads once, and exit\n"
"      --flamechart       Include timestamps, to make flame charts\n"
"      --qualnames        Use qualified names (Class.method) where Python has them (3.11+)\n"
"      --title=TEXT       Title of an SVG flame graph\n"
"      --nonblocking      Never stop the target; torn stacks are counted as (failed)\n"
"      --subprocesses     Also profile the Python processes the target starts, with a\n"
"                         root frame \"process PID COMMAND\" per process\n"
"      --abi=VERSION      Force the Python ABI (27, 36, 37, ..., 313)\n"
"\n"
"Linux perf (CPython 3.12+):\n"
"      --perf-on          Switch on CPython's perf trampoline in the running process\n"
"                         (-p PID), so that perf names Python frames; prints the perf\n"
"                         map's path.  --perf-off switches it off again\n"
"      --inject-method=M  auto (default), pending-call or direct (3.12, 3.13), or\n"
"                         remote-exec (3.14+, PEP 768): how --perf-on/off run\n"
"                         Python code in the target (see README.rst)\n"
"      --native           Record with perf for -s SECONDS and write mixed Python, C\n"
"                         and kernel stacks (switches the trampoline on and off)\n"
"\n"
"Exit status: 0 on success; with -t, the command's own status; 1 on bad input or\n"
"a failed run; --perf-on/--perf-off/--native: 10-22 by cause (see README.rst).\n"
"  -h, --help             Show help\n"
"  -v, --version          Show the version\n";

const char *options_usage(void) { return usage_text; }

enum {
    OPT_THREADS = 256, OPT_FLAMECHART, OPT_ABI, OPT_PER_THREAD, OPT_THREAD, OPT_GIL,
    OPT_QUALNAMES, OPT_TITLE, OPT_NONBLOCKING, OPT_SUBPROCESSES, OPT_PERF_ON, OPT_PERF_OFF,
    OPT_INJECT_METHOD, OPT_NATIVE,
};

static const struct option long_options[] = {
    { "pid", required_argument, NULL, 'p' },
    { "trace", no_argument, NULL, 't' },
    { "seconds", required_argument, NULL, 's' },
    { "rate", required_argument, NULL, 'r' },
    { "output", required_argument, NULL, 'o' },
    { "format", required_argument, NULL, 'f' },
    { "exclude-idle", no_argument, NULL, 'x' },
    { "no-line-numbers", no_argument, NULL, 'n' },
    { "threads", no_argument, NULL, OPT_THREADS },
    { "per-thread", no_argument, NULL, OPT_PER_THREAD },
    { "thread", required_argument, NULL, OPT_THREAD },
    { "gil", no_argument, NULL, OPT_GIL },
    { "dump", no_argument, NULL, 'd' },
    { "flamechart", no_argument, NULL, OPT_FLAMECHART },
    { "qualnames", no_argument, NULL, OPT_QUALNAMES },
    { "title", required_argument, NULL, OPT_TITLE },
    { "nonblocking", no_argument, NULL, OPT_NONBLOCKING },
    { "subprocesses", no_argument, NULL, OPT_SUBPROCESSES },
    { "perf-on", no_argument, NULL, OPT_PERF_ON },
    { "perf-off", no_argument, NULL, OPT_PERF_OFF },
    { "inject-method", required_argument, NULL, OPT_INJECT_METHOD },
    { "native", no_argument, NULL, OPT_NATIVE },
    { "abi", required_argument, NULL, OPT_ABI },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'v' },
    { NULL, 0, NULL, 0 },
};

static const char *const abi_names[][2] = {
    { "26", "27" }, { "27", "27" }, { "2.6", "27" }, { "2.7", "27" },
    { "36", "36" }, { "3.6", "36" }, { "37", "37" }, { "3.7", "37" },
    { "38", "38" }, { "3.8", "38" }, { "39", "39" }, { "3.9", "39" },
    { "310", "310" }, { "3.10", "310" }, { "311", "311" }, { "3.11", "311" },
    { "312", "312" }, { "3.12", "312" }, { "313", "313" }, { "3.13", "313" },
};

const char *options_abi_name(const char *value)
{
    for (size_t i = 0; i < sizeof(abi_names) / sizeof(abi_names[0]); i++)
        if (strcmp(value, abi_names[i][0]) == 0)
            return abi_names[i][1];
    return NULL;
}

static int parse_pid(const char *s, pid_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v <= 0 || v > INT_MAX)
        return -EINVAL;
    *out = (pid_t)v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || isnan(v))
        return -EINVAL;
    *out = v;
    return 0;
}

/* Pyflame users abbreviate --threads as --thr; with --thread (a filter)
 * beside it, getopt would call that ambiguous.  A proper prefix of "thread"
 * keeps meaning --threads. */
static void fix_threads_abbreviation(int argc, char **argv)
{
    static char threads[] = "--threads";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0 || strcmp(argv[i], "-t") == 0 || strcmp(argv[i], "--trace") == 0)
            return;   /* the rest is a command */
        size_t len = strlen(argv[i]);
        if (len >= 5 && len < 8 && strncmp(argv[i], "--thread", len) == 0)
            argv[i] = threads;
    }
}

int options_parse(int argc, char **argv, struct options *o, struct error *e)
{
    fix_threads_abbreviation(argc, argv);
    memset(o, 0, sizeof(*o));
    o->seconds = 1.0;
    o->rate = 0.01;
    o->format = FORMAT_COLLAPSED;
    int format_set = 0, flamechart = 0, trace = 0, seen_p = 0;

    optind = 1;
    opterr = 0;   /* we print our own one-line messages */
    int c;
    while (!trace && (c = getopt_long(argc, argv, ":dhno:p:r:s:tvxf:", long_options, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (o->npids >= OPTIONS_MAX_PIDS)
                return error_set(e, -EINVAL, "too many -p options (at most %d)", OPTIONS_MAX_PIDS);
            if (parse_pid(optarg, &o->pids[o->npids]) < 0)
                return error_set(e, -EINVAL, "Error: failed to parse \"%s\" as a PID.", optarg);
            o->npids++;
            seen_p = 1;
            break;
        case 't':
            trace = 1;
            break;
        case 's':
            if (parse_double(optarg, &o->seconds) < 0)
                return error_set(e, -EINVAL,
                                 "Error: failed to parse \"%s\" as a number of seconds (-s).", optarg);
            break;
        case 'r':
            if (parse_double(optarg, &o->rate) < 0 || isinf(o->rate))
                return error_set(e, -EINVAL,
                                 "Error: failed to parse \"%s\" as a sampling interval in seconds (-r).",
                                 optarg);
            break;
        case 'o':
            if (!*optarg)
                return error_set(e, -EINVAL, "Error: -o needs a file name.");
            if (o->noutputs >= OPTIONS_MAX_OUTPUTS)
                return error_set(e, -EINVAL, "too many -o options (at most %d)", OPTIONS_MAX_OUTPUTS);
            o->outputs[o->noutputs++] = optarg;
            o->output = o->outputs[0];
            break;
        case 'f': {
            int f = format_parse(optarg);
            if (f < 0 || f == FORMAT_DUMP)
                return error_set(e, -EINVAL,
                                 "Unknown output format \"%s\" (collapsed, flamechart, svg, "
                                 "speedscope, pprof, chrome)", optarg);
            o->format = (enum output_format)f;
            format_set = 1;
            break;
        }
        case 'x': o->exclude_idle = 1; break;
        case 'n': o->no_line_numbers = 1; break;
        case 'd': o->dump = 1; break;
        case OPT_THREADS: o->threads = 1; break;
        case OPT_PER_THREAD: o->per_thread = 1; break;
        case OPT_GIL: o->gil_only = 1; break;
        case OPT_THREAD:
            if (o->nthread_filters >= OPTIONS_MAX_THREAD_FILTERS)
                return error_set(e, -EINVAL, "too many --thread options (at most %d)",
                                 OPTIONS_MAX_THREAD_FILTERS);
            o->thread_filters[o->nthread_filters++] = optarg;
            break;
        case OPT_FLAMECHART: flamechart = 1; break;
        case OPT_QUALNAMES: o->qualnames = 1; break;
        case OPT_TITLE: o->title = optarg; break;
        case OPT_NONBLOCKING: o->nonblocking = 1; break;
        case OPT_SUBPROCESSES: o->subprocesses = 1; break;
        case OPT_PERF_ON: o->action = ACTION_PERF_ON; break;
        case OPT_PERF_OFF: o->action = ACTION_PERF_OFF; break;
        case OPT_NATIVE: o->native = 1; break;
        case OPT_INJECT_METHOD:
            o->inject_method = inject_method_parse(optarg);
            if (o->inject_method < 0)
                return error_set(e, -EINVAL, "Unknown injection method \"%s\" (auto, pending-call, "
                                 "direct, remote-exec)", optarg);
            break;
        case OPT_ABI:
            o->abi = options_abi_name(optarg);
            if (!o->abi)
                return error_set(e, -EINVAL, "Unknown or unsupported ABI version: %s", optarg);
            break;
        case 'h':
            o->action = ACTION_HELP;
            return 0;
        case 'v':
            o->action = ACTION_VERSION;
            return 0;
        case ':':
            if (optopt && optopt < 256)
                return error_set(e, -EINVAL, "option requires an argument -- '%c'", optopt);
            return error_set(e, -EINVAL, "option '%s' requires an argument", argv[optind - 1]);
        case '?':
        default:
            if (optopt && optopt < 256)
                return error_set(e, -EINVAL, "invalid option -- '%c' (see pyflame --help)", optopt);
            return error_set(e, -EINVAL, "unrecognized option '%s' (see pyflame --help)",
                             argv[optind - 1]);
        }
    }

    if (trace) {
        if (o->dump)
            return error_set(e, -EINVAL, "Options -t and -d are not mutually compatible.");
        if (seen_p)
            return error_set(e, -EINVAL, "Options -t and -p are not mutually compatible.");
        if (optind >= argc)
            return error_set(e, -EINVAL, "Option -t requires a command to run.");
        o->command = &argv[optind];
        const char *cmd = o->command[0];
        size_t len = strlen(cmd);
        if (len >= 7 && strcmp(cmd + len - 7, "pyflame") == 0)
            return error_set(e, -EINVAL, "You tried to pyflame a pyflame, naughty!");
    } else if (seen_p) {
        if (optind < argc)
            return error_set(e, -EINVAL, "unexpected argument \"%s\" (see pyflame --help)", argv[optind]);
    } else {
        int left = argc - optind;
        if (left != 1)
            return error_set(e, -EINVAL, "%s", "");   /* usage */
        if (parse_pid(argv[optind], &o->pids[0]) < 0)
            return error_set(e, -EINVAL, "Error: failed to parse \"%s\" as a PID.", argv[optind]);
        o->npids = 1;
        o->deprecated_pid = 1;
    }

    /* The output format: -d, then --flamechart, then -f, then -o's extension
     * (each -o gets the format its extension names, else the common one). */
    if (o->dump) {
        o->format = FORMAT_DUMP;
        o->threads = 1;
        o->seconds = 0;
    } else if (flamechart) {
        if (format_set && o->format != FORMAT_FLAMECHART)
            return error_set(e, -EINVAL, "Options --flamechart and --format=%s are not mutually compatible.",
                             format_name(o->format));
        o->format = FORMAT_FLAMECHART;
    } else if (!format_set && o->output) {
        int f = format_from_path(o->output);
        if (f >= 0)
            o->format = (enum output_format)f;
    }
    for (int i = 0; i < o->noutputs; i++) {
        int f = format_from_path(o->outputs[i]);
        o->formats[i] = (o->dump || flamechart || format_set || f < 0) ? o->format : (enum output_format)f;
    }
    if (o->command)
        o->seconds = -1;   /* trace mode: until the command exits */
    if (o->per_thread || o->gil_only || o->nthread_filters)
        o->threads = 1;   /* they only make sense with every thread sampled */
    if (o->dump && o->command)
        return error_set(e, -EINVAL, "Options -t and -d are not mutually compatible.");
    if (o->action == ACTION_PERF_ON || o->action == ACTION_PERF_OFF) {
        if (o->command || o->native || o->dump)
            return error_set(e, -EINVAL, "Options --perf-on and --perf-off take -p PID only.");
    }
    if (o->native) {
        if (o->command || o->dump || o->threads || o->nonblocking || o->subprocesses || o->npids != 1)
            return error_set(e, -EINVAL, "Option --native takes one -p PID and -s SECONDS (and "
                             "output options) only.");
        if (o->seconds <= 0)
            return error_set(e, -EINVAL, "Option --native needs -s SECONDS greater than 0.");
    }
    return 0;
}
