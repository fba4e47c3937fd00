/*
 * main.c - pyflame: parse the options, launch or find the target, sample,
 * write the profile.  Every error is reported here, once, on one line.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emit.h"
#include "inject.h"
#include "launch.h"
#include "options.h"
#include "perf_native.h"
#include "profile.h"
#include "sampler.h"
#include "signals.h"
#include "target.h"

static void print_version(FILE *out)
{
    char list[128];
    target_abi_list(list, sizeof(list));
    fprintf(out, "pyflame %s linux x86_64 (ABI list: %s)\n", PYFLAME_VERSION, list);
}

/* Checks that the output can be written before anything is attached. */
static int check_output(const char *path, struct error *e)
{
    if (!path || strcmp(path, "-") == 0)
        return 0;
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return error_set(e, -EISDIR, "cannot open file \"%s\" as output: Is a directory", path);
        if (access(path, W_OK) != 0)
            return error_set(e, -errno, "cannot open file \"%s\" as output: %s", path, strerror(errno));
    }
    char *copy = strdup(path);
    if (!copy)
        return error_set(e, -ENOMEM, "out of memory");
    const char *dir = dirname(copy);
    int rc = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = error_set(e, -ENOENT, "cannot open file \"%s\" as output: No such directory \"%s\"",
                       path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        rc = error_set(e, -errno, "cannot open file \"%s\" as output: %s", path, strerror(errno));
    free(copy);
    return rc;
}

struct dump_ctx {
    const struct options *o;
    const struct emit_options *eo;
};

/* Writes the profile to every output (stdout when there is no -o).  0 or -1. */
static int write_outputs(const struct options *o, const struct emit_options *eo,
                         const struct profile *p)
{
    char err[512];
    int rc = 0;
    struct emit_options each = *eo;
    for (int i = 0; i < (o->noutputs ? o->noutputs : 1); i++) {
        const char *path = o->noutputs ? o->outputs[i] : NULL;
        each.format = o->noutputs ? o->formats[i] : o->format;
        if (emit_profile(path, p, &each, err, sizeof(err)) < 0) {
            fprintf(stderr, "pyflame: %s\n", err);
            rc = -1;
        }
    }
    return rc;
}

static void dump_now(const struct profile *p, void *arg)
{
    struct dump_ctx *d = arg;
    write_outputs(d->o, d->eo, p);
}

/* --perf-on / --perf-off for every -p. */
static int perf_switch(const struct options *o)
{
    int on = o->action == ACTION_PERF_ON, status = 0;
    for (int i = 0; i < o->npids; i++) {
        struct inject_options io = { (enum inject_method)o->inject_method, 0 };
        struct inject_result r;
        struct error e = { 0, "" };
        int rc = inject_perf_trampoline_ex(o->pids[i], on, &io, &r, &e);
        if (rc < 0) {
            fprintf(stderr, "pyflame: %s\n", e.msg);
            status = inject_exit_status(rc);
            continue;
        }
        if (rc == INJECT_NOTE)
            printf("PID %d: the perf trampoline was already %s", (int)o->pids[i], on ? "on" : "off");
        else
            printf("PID %d: perf trampoline %s (Python %s, via %s on thread %d, %.0f ms)",
                   (int)o->pids[i], on ? "on" : "off", r.version, inject_method_name(r.used),
                   (int)r.tid, r.latency_ms);
        if (on)
            printf("; perf map: %s", r.map_path);
        putchar('\n');
    }
    return status;
}

int main(int argc, char **argv)
{
    struct options o;
    struct error e = { 0, "" };
    signals_install();

    if (options_parse(argc, argv, &o, &e) < 0) {
        if (e.msg[0])
            fprintf(stderr, "pyflame: %s\n", e.msg);
        if (!e.msg[0] || strstr(e.msg, "requires a command"))
            fputs(options_usage(), stderr);
        return 1;
    }
    if (o.action == ACTION_HELP) {
        print_version(stdout);
        putchar('\n');
        fputs(options_usage(), stdout);
        return 0;
    }
    if (o.action == ACTION_VERSION) {
        print_version(stdout);
        return 0;
    }
    if (o.action == ACTION_PERF_ON || o.action == ACTION_PERF_OFF)
        return perf_switch(&o);
    if (o.deprecated_pid)
        fprintf(stderr, "WARNING: Specifying a PID to trace without -p is deprecated; see Pyflame "
                        "issue #99 for details.\n");
    for (int i = 0; i < o.noutputs; i++) {
        if (check_output(o.outputs[i], &e) < 0) {
            fprintf(stderr, "pyflame: %s\n", e.msg);
            return 1;
        }
    }

    struct emit_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.format = o.format;
    eo.exclude_idle = o.exclude_idle;
    eo.no_line_numbers = o.no_line_numbers;
    eo.per_thread = o.per_thread;
    eo.per_process = o.npids > 1 || o.subprocesses;
    eo.qualnames = o.qualnames;
    eo.title = o.title;

    int keep_events = format_needs_events(o.format);
    for (int i = 0; i < o.noutputs; i++)
        keep_events |= format_needs_events(o.formats[i]);
    struct profile *p = profile_new(keep_events);
    if (!p) {
        fprintf(stderr, "pyflame: out of memory\n");
        return 1;
    }

    pid_t child = 0;
    if (o.command && launch_command(o.command, &child, &e) < 0) {
        fprintf(stderr, "pyflame: %s\n", e.msg);
        profile_free(p);
        return 1;
    }

    struct dump_ctx dctx = { &o, &eo };
    struct sampler_result res;
    memset(&res, 0, sizeof(res));
    res.child_status = -1;
    if (o.native) {
        int rc = perf_native_run(o.pids[0], o.seconds, p, &e);
        if (rc < 0) {
            fprintf(stderr, "pyflame: %s\n", e.msg);
            profile_free(p);
            return perf_native_exit_status(rc);
        }
    } else if (sampler_run(&o, child, p, dump_now, &dctx, &res, &e) < 0) {
        fprintf(stderr, "pyflame: %s\n", e.msg);
        profile_free(p);
        return 1;
    }

    if (res.asked_rate > 0 && res.ticks >= 20 && res.achieved_rate < 0.8 * res.asked_rate)
        fprintf(stderr, "pyflame: sampling fell behind: %.0f samples/s achieved of the %.0f/s "
                        "asked (-r %g)\n", res.achieved_rate, res.asked_rate, o.rate);

    int status = write_outputs(&o, &eo, p) < 0 ? 1 : 0;
    profile_free(p);
    if (status == 0 && child > 0 && !res.stop_signal && res.child_status != -1)
        status = launch_exit_code(res.child_status);
    return status;
}
