/*
 * emit_chrome.c - the profile as Chrome Trace Event Format JSON (the JSON
 * Object Format: {"traceEvents": [...], "displayTimeUnit": "ms", ...}), for
 * chrome://tracing, Perfetto (ui.perfetto.dev) and speedscope.
 *
 * Tracks: one per thread, pid = the process's pid, tid = the kernel thread
 * id (a thread whose tid is unknown gets a made-up tid of 1000000000 plus its
 * index).  "M" events name every process ("process PID CMDLINE") and thread
 * ("thread NAME (TID)").
 *
 * Slices: complete "X" events built from each thread's consecutive samples.
 * The frame at depth d carries on from one sample to the next when it is
 * the same function (file, name, first line) and every frame above it is the
 * very same frame (same line too): a caller that moved to another line made
 * a new call, so its callees start new slices.  A slice's name is the
 * function (co_qualname under --qualnames); args give the file and the
 * function's first line.  Slices nest by construction: a frame closes no
 * later than its caller.
 *
 * Time base: ts and dur are whole microseconds since the Unix epoch
 * (CLOCK_REALTIME), i.e. absolute, so traces of several runs or tools can be
 * merged; integers of that size are exact in a double, and rounding every
 * boundary (not every duration) keeps the nesting exact.  A slice that rounds
 * to zero microseconds is left out.  A sample lasts until the next sampling
 * round of the profile (the last round lasts one period); a thread that
 * misses rounds gets a gap, and its slices end.
 *
 * Idle samples make "(idle)" slices at depth 0 (consecutive ones merge), and
 * nothing under -x, where they are gaps.  Failed samples make "(failed)"
 * slices.
 *
 * Without a timeline the aggregates of each thread are laid end to end from
 * the profile's start, each lasting count * period: a flame graph on a time
 * axis, not a real timeline.
 */
#include "emit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef PYFLAME_VERSION
#define PYFLAME_VERSION "unknown"
#endif

#define DEFAULT_PERIOD_NS 10000000ULL  /* pyflame's default rate, when the meta has none */
#define SYNTH_TID_BASE 1000000000LL
#define PSEUDO_IDLE (PF_NONE - 1)
#define PSEUDO_FAILED (PF_NONE - 2)

/* ---- tracks and slices --------------------------------------------------------- */

struct track {
    pid_t pid;
    long long tid;
    uint32_t thread;      /* the first pf_thread of the track: its name */
};

struct open_slice {
    uint32_t frame;       /* the pf_frame seen last at this depth, or PSEUDO_* */
    uint32_t first;       /* the pf_frame when the slice began (names it) */
    uint64_t start;
};

struct ctx {
    FILE *out;
    const struct profile *p;
    const struct emit_options *o;
    int first_event;

    const struct track *tr;
    struct open_slice *open;
    size_t depth, open_cap;
    uint64_t cur_end;
};

static void sep(struct ctx *c)
{
    if (!c->first_event)
        fputs(",\n", c->out);
    c->first_event = 0;
}

static int same_function(const struct profile *p, uint32_t a, uint32_t b)
{
    if (a == b)
        return 1;
    if (a >= PSEUDO_FAILED || b >= PSEUDO_FAILED)
        return 0;
    const struct pf_frame *x = profile_frame_get(p, a), *y = profile_frame_get(p, b);
    if (!x || !y)
        return 0;
    return x->file == y->file && x->name == y->name && x->qualname == y->qualname &&
           x->firstlineno == y->firstlineno;
}

static void emit_slice(struct ctx *c, const struct open_slice *s, uint64_t end)
{
    unsigned long long ts = s->start / 1000, te = end / 1000;
    if (te <= ts)
        return;
    sep(c);
    fprintf(c->out, "{\"ph\":\"X\",\"pid\":%d,\"tid\":%lld,\"ts\":%llu,\"dur\":%llu,\"name\":",
            (int)c->tr->pid, c->tr->tid, ts, te - ts);
    if (s->first == PSEUDO_IDLE) {
        fputs("\"(idle)\",\"cat\":\"idle\"}", c->out);
        return;
    }
    if (s->first == PSEUDO_FAILED) {
        fputs("\"(failed)\",\"cat\":\"failed\"}", c->out);
        return;
    }
    const struct pf_frame *f = profile_frame_get(c->p, s->first);
    if (!f) {
        fputs("\"(unknown)\",\"cat\":\"python\"}", c->out);
        return;
    }
    uint32_t name = (c->o && c->o->qualnames && f->qualname != PF_NONE) ? f->qualname : f->name;
    emit_json_string(c->out, profile_str(c->p, name));
    fputs(",\"cat\":\"python\",\"args\":{\"file\":", c->out);
    emit_json_string(c->out, profile_str(c->p, f->file));
    if (f->firstlineno >= 0)
        fprintf(c->out, ",\"firstlineno\":%d", f->firstlineno);
    fputs("}}", c->out);
}

static void close_to(struct ctx *c, size_t depth, uint64_t at)
{
    while (c->depth > depth) {
        c->depth--;
        emit_slice(c, &c->open[c->depth], at);
    }
}

/* One sample of the current track lasting [start, end). */
static int sample(struct ctx *c, uint64_t start, uint64_t end, uint32_t stack, unsigned kind)
{
    if (c->depth && start != c->cur_end)
        close_to(c, 0, c->cur_end);             /* a gap */
    uint32_t pseudo[1];
    const uint32_t *fr = NULL;
    size_t n = 0;
    if (kind == SAMPLE_IDLE && c->o && c->o->exclude_idle) {
        close_to(c, 0, start);
        c->cur_end = end;
        return 0;
    }
    if (kind == SAMPLE_IDLE || kind == SAMPLE_FAILED) {
        pseudo[0] = kind == SAMPLE_IDLE ? PSEUDO_IDLE : PSEUDO_FAILED;
        fr = pseudo;
        n = 1;
    } else {
        fr = profile_stack_get(c->p, stack, &n);
    }
    size_t k = 0;
    while (k < n && k < c->depth) {
        if (k > 0 && c->open[k - 1].frame != fr[k - 1])
            break;
        if (!same_function(c->p, c->open[k].frame, fr[k]))
            break;
        k++;
    }
    close_to(c, k, start);
    if (n > c->open_cap) {
        struct open_slice *no = realloc(c->open, n * sizeof(*no));
        if (!no)
            return -ENOMEM;
        c->open = no;
        c->open_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        if (i >= c->depth) {
            c->open[i].first = fr[i];
            c->open[i].start = start;
        }
        c->open[i].frame = fr[i];
    }
    c->depth = n;
    c->cur_end = end;
    return 0;
}

static void metadata(struct ctx *c, const struct track *tracks, size_t ntracks)
{
    char buf[1024];
    size_t np = profile_nprocesses(c->p);
    for (size_t i = 0; i < np; i++) {
        const struct pf_process *pr = profile_process_get(c->p, (uint32_t)i);
        emit_process_name(c->p, (uint32_t)i, buf, sizeof(buf));
        sep(c);
        fprintf(c->out, "{\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"name\":\"process_name\",\"args\":{\"name\":",
                (int)pr->pid);
        emit_json_string(c->out, buf);
        fputs("}}", c->out);
    }
    for (size_t i = 0; i < ntracks; i++) {
        emit_thread_name(c->p, tracks[i].thread, buf, sizeof(buf));
        sep(c);
        fprintf(c->out, "{\"ph\":\"M\",\"pid\":%d,\"tid\":%lld,\"name\":\"thread_name\",\"args\":{\"name\":",
                (int)tracks[i].pid, tracks[i].tid);
        emit_json_string(c->out, buf);
        fputs("}}", c->out);
    }
}

int emit_chrome(FILE *out, const struct profile *p, const struct emit_options *o)
{
    struct ctx c;
    memset(&c, 0, sizeof(c));
    c.out = out;
    c.p = p;
    c.o = o;
    c.first_event = 1;
    const struct profile_meta *meta = profile_meta_get(p);
    uint64_t period = meta->period_ns ? meta->period_ns : DEFAULT_PERIOD_NS;
    int rc = 0;
    errno = 0;

    /* Tracks: one per (pid, tid); threads whose tid is unknown get their own. */
    size_t nthreads = profile_nthreads(p);
    struct track *tracks = malloc((nthreads + 1) * sizeof(*tracks));
    uint32_t *track_of = malloc((nthreads + 1) * sizeof(*track_of));
    size_t ntracks = 0;
    size_t nev = 0;
    const struct pf_event *ev = profile_has_events(p) ? profile_events(p, &nev) : NULL;
    size_t *idx = NULL, *tstart = NULL, *fill = NULL;
    struct emit_round *rounds = NULL;
    size_t nrounds = 0;
    if (!tracks || !track_of) {
        rc = -ENOMEM;
        goto done;
    }
    for (size_t t = 0; t < nthreads; t++) {
        const struct pf_thread *th = profile_thread_get(p, (uint32_t)t);
        const struct pf_process *pr = profile_process_get(p, th->process);
        pid_t pid = pr ? pr->pid : 0;
        long long tid = th->tid ? (long long)th->tid : SYNTH_TID_BASE + (long long)t;
        size_t k;
        for (k = 0; k < ntracks; k++)
            if (tracks[k].pid == pid && tracks[k].tid == tid)
                break;
        if (k == ntracks) {
            tracks[k].pid = pid;
            tracks[k].tid = tid;
            tracks[k].thread = (uint32_t)t;
            ntracks++;
        }
        track_of[t] = (uint32_t)k;
    }

    fputs("{\"traceEvents\":[\n", out);
    metadata(&c, tracks, ntracks);

    if (nev) {
        rounds = emit_rounds(ev, nev, period, &nrounds);
        idx = malloc(nev * sizeof(*idx));
        tstart = calloc(ntracks + 2, sizeof(*tstart));
        fill = calloc(ntracks + 1, sizeof(*fill));
        if (!rounds || !idx || !tstart || !fill) {
            rc = -ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < nev; i++)
            tstart[(ev[i].thread < nthreads ? track_of[ev[i].thread] : ntracks) + 1]++;
        for (size_t t = 1; t <= ntracks + 1; t++)
            tstart[t] += tstart[t - 1];
        for (size_t i = 0; i < nev; i++) {
            size_t t = ev[i].thread < nthreads ? track_of[ev[i].thread] : ntracks;
            idx[tstart[t] + fill[t]++] = i;
        }
        for (size_t t = 0; t < ntracks && rc == 0; t++) {
            c.tr = &tracks[t];
            c.depth = 0;
            int placed = 0;
            uint32_t prev_tick = 0;
            for (size_t k = tstart[t]; k < tstart[t + 1] && rc == 0; k++) {
                const struct pf_event *e = &ev[idx[k]];
                const struct emit_round *r = &rounds[emit_round_of(rounds, nrounds, e->tick)];
                /* A second sample of one round, or one out of order, cannot
                 * be placed without overlapping what is already written. */
                if (placed && (e->tick == prev_tick || r->t < c.cur_end))
                    continue;
                placed = 1;
                prev_tick = e->tick;
                rc = sample(&c, r->t, r->end, e->stack, e->kind);
            }
            close_to(&c, 0, c.cur_end);
        }
    } else {
        size_t nc;
        const struct pf_count *counts = profile_counts(p, &nc);
        for (size_t t = 0; t < ntracks && rc == 0; t++) {
            c.tr = &tracks[t];
            c.depth = 0;
            uint64_t at = meta->start_ns;
            for (size_t i = 0; i < nc && rc == 0; i++) {
                if (counts[i].thread >= nthreads || track_of[counts[i].thread] != t)
                    continue;
                uint64_t len = counts[i].count * period;
                rc = sample(&c, at, at + len, counts[i].stack, counts[i].kind);
                at += len;
            }
            close_to(&c, 0, c.cur_end);
        }
    }
    if (rc == 0) {
        fputs("\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"exporter\":\"pyflame " PYFLAME_VERSION
              "\",\"clock\":\"CLOCK_REALTIME\",\"ts_unit\":\"us since the epoch\",\"period_ns\":", out);
        fprintf(out, "\"%llu\"", (unsigned long long)period);
        if (o && o->title) {
            fputs(",\"title\":", out);
            emit_json_string(out, o->title);
        }
        fputs("}}\n", out);
    }
done:
    free(tracks);
    free(track_of);
    free(rounds);
    free(idx);
    free(tstart);
    free(fill);
    free(c.open);
    if (rc == 0 && ferror(out))
        rc = errno ? -errno : -EIO;
    return rc;
}
