/*
 * emit_speedscope.c - the profile as a speedscope file
 * (https://www.speedscope.app/file-format-schema.json).
 *
 *   {"$schema": ..., "shared": {"frames": [{name, file, line}, ...]},
 *    "profiles": [{"type": "sampled", "name": ..., "unit": "nanoseconds",
 *                  "startValue": S, "endValue": E,
 *                  "samples": [[root, ..., leaf], ...], "weights": [...]}, ...],
 *    "name": ..., "activeProfileIndex": 0, "exporter": "pyflame VERSION"}
 *
 * One sampled profile per thread when the profile has several threads (named
 * "thread NAME (TID)"), else one.  A frame is the function (co_name, or
 * co_qualname under --qualnames) with its file and current line; under -n the
 * line is co_firstlineno and the lines of one function share a frame.  Idle
 * samples are the frame "(idle)" (left out under -x), failed ones "(failed)".
 *
 * Time base: values are nanoseconds since the first sampling round of the
 * whole profile, so the threads' profiles line up.  With the timeline kept,
 * each event is one sample whose weight is the real length of its sampling
 * round: the time from its round to the next round of the profile (the last
 * round lasts one period).  For a thread sampled in every round this is the
 * interval between its consecutive samples; a thread that misses rounds is
 * not charged for the time it was not seen.  Round times are made monotonic
 * first (a CLOCK_REALTIME step back gives a zero-length round, never a
 * negative weight).  endValue = startValue + the sum of the weights.
 *
 * Without a timeline each (thread, stack, kind) aggregate is one sample of
 * weight count * period, laid end to end from 0.
 */
#include "emit.h"
#include "u64map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef PYFLAME_VERSION
#define PYFLAME_VERSION "unknown"
#endif

#define DEFAULT_PERIOD_NS 10000000ULL  /* pyflame's default rate, when the meta has none */
#define SS_NONE UINT32_MAX


/* ---- the speedscope frame table ---------------------------------------------- */

/* A speedscope frame: a pf_frame that represents it (or PF_NONE for the
 * pseudo frames), and its name when it is a pseudo frame. */
struct ssframe {
    uint32_t pf;
    const char *pseudo;
};

struct ctx {
    FILE *out;
    const struct profile *p;
    const struct emit_options *o;
    uint64_t period;

    struct u64map by_pf;       /* pf_frame id -> speedscope index */
    struct u64map by_func;     /* under -n: (file, name, firstlineno) hash -> index */
    struct ssframe *frames;
    size_t nframes, frames_cap;
    uint32_t idle_ix, failed_ix;

    uint32_t *stackbuf;        /* a stack translated to speedscope indexes */
    size_t stackbuf_cap;
};

static int add_frame(struct ctx *c, uint32_t pf, const char *pseudo, uint32_t *ix)
{
    if (c->nframes == c->frames_cap) {
        size_t ncap = c->frames_cap ? c->frames_cap * 2 : 64;
        struct ssframe *nf = realloc(c->frames, ncap * sizeof(*nf));
        if (!nf)
            return -ENOMEM;
        c->frames = nf;
        c->frames_cap = ncap;
    }
    c->frames[c->nframes].pf = pf;
    c->frames[c->nframes].pseudo = pseudo;
    *ix = (uint32_t)c->nframes++;
    return 0;
}

static uint32_t fn_name_id(const struct ctx *c, const struct pf_frame *f)
{
    if (c->o && c->o->qualnames && f->qualname != PF_NONE)
        return f->qualname;
    return f->name;
}

/* The speedscope index of pf_frame `pf`, made on first use. */
static int frame_index(struct ctx *c, uint32_t pf, uint32_t *ix)
{
    uint32_t v = u64map_get(&c->by_pf, pf);
    if (v != SS_NONE) {
        *ix = v;
        return 0;
    }
    const struct pf_frame *f = profile_frame_get(c->p, pf);
    if (f && c->o && c->o->no_line_numbers) {
        /* One frame per function: key on (file, name, firstlineno).  The key
         * is a hash, so compare for real on a hit and chain by rehashing. */
        uint64_t key = ((uint64_t)f->file << 32) ^ fn_name_id(c, f) ^
                       ((uint64_t)(uint32_t)f->firstlineno * 0x9e3779b97f4a7c15ULL);
        for (;;) {
            uint32_t w = u64map_get(&c->by_func, key);
            if (w == SS_NONE)
                break;
            const struct pf_frame *g = profile_frame_get(c->p, c->frames[w].pf);
            if (g && g->file == f->file && fn_name_id(c, g) == fn_name_id(c, f) &&
                g->firstlineno == f->firstlineno) {
                *ix = w;
                return u64map_put(&c->by_pf, pf, w);
            }
            key = u64map_mix(key + 1);
        }
        if (add_frame(c, pf, NULL, ix) < 0 || u64map_put(&c->by_func, key, *ix) < 0)
            return -ENOMEM;
        return u64map_put(&c->by_pf, pf, *ix);
    }
    if (add_frame(c, pf, f ? NULL : "(unknown)", ix) < 0)
        return -ENOMEM;
    return u64map_put(&c->by_pf, pf, *ix);
}

/* Translate a sample to speedscope indexes; *n = 0 for a sample left out. */
static int sample_frames(struct ctx *c, uint32_t stack, unsigned kind, const uint32_t **out,
                         size_t *n)
{
    *n = 0;
    if (kind == SAMPLE_IDLE || kind == SAMPLE_FAILED) {
        if (kind == SAMPLE_IDLE && c->o && c->o->exclude_idle)
            return 0;
        uint32_t *slot = kind == SAMPLE_IDLE ? &c->idle_ix : &c->failed_ix;
        if (*slot == SS_NONE &&
            add_frame(c, PF_NONE, kind == SAMPLE_IDLE ? "(idle)" : "(failed)", slot) < 0)
            return -ENOMEM;
        *out = slot;
        *n = 1;
        return 0;
    }
    size_t len;
    const uint32_t *fr = profile_stack_get(c->p, stack, &len);
    if (len > c->stackbuf_cap) {
        uint32_t *nb = realloc(c->stackbuf, len * sizeof(*nb));
        if (!nb)
            return -ENOMEM;
        c->stackbuf = nb;
        c->stackbuf_cap = len;
    }
    for (size_t i = 0; i < len; i++)
        if (frame_index(c, fr[i], &c->stackbuf[i]) < 0)
            return -ENOMEM;
    *out = c->stackbuf;
    *n = len;
    return 0;
}

/* ---- writing ------------------------------------------------------------------- */

static void write_stack(FILE *out, const uint32_t *ix, size_t n)
{
    putc('[', out);
    for (size_t i = 0; i < n; i++)
        fprintf(out, i ? ",%u" : "%u", ix[i]);
    putc(']', out);
}

static void profile_head(struct ctx *c, int one, uint32_t thread, uint64_t start)
{
    char name[512];
    if (one && profile_nthreads(c->p) == 0)
        snprintf(name, sizeof(name), "pyflame");
    else
        emit_thread_name(c->p, thread, name, sizeof(name));
    fputs("{\"type\":\"sampled\",\"name\":", c->out);
    emit_json_string(c->out, name);
    fprintf(c->out, ",\"unit\":\"nanoseconds\",\"startValue\":%llu,", (unsigned long long)start);
}

/* Events of one profile: all of them (thread == PF_NONE) or one thread's. */
static int write_timeline_profile(struct ctx *c, const struct pf_event *ev, const size_t *idx,
                                  size_t n, const struct emit_round *rounds, size_t nrounds,
                                  uint64_t base, uint32_t thread, int *first_profile)
{
    /* First pass: is anything kept, and where does it start? */
    uint64_t start = 0, sum = 0;
    int have = 0;
    size_t kept = 0;
    for (size_t k = 0; k < n; k++) {
        const struct pf_event *e = &ev[idx[k]];
        if (e->kind == SAMPLE_IDLE && c->o && c->o->exclude_idle)
            continue;
        size_t r = emit_round_of(rounds, nrounds, e->tick);
        if (!have) {
            start = rounds[r].t - base;
            have = 1;
        }
        kept++;
    }
    if (!kept && thread != PF_NONE)
        return 0;               /* nothing of this thread to show */

    if (!*first_profile)
        putc(',', c->out);
    *first_profile = 0;
    profile_head(c, thread == PF_NONE, thread == PF_NONE ? 0 : thread, start);

    fputs("\"samples\":[", c->out);
    int first = 1;
    for (size_t k = 0; k < n; k++) {
        const struct pf_event *e = &ev[idx[k]];
        const uint32_t *fr;
        size_t len;
        if (e->kind == SAMPLE_IDLE && c->o && c->o->exclude_idle)
            continue;
        if (sample_frames(c, e->stack, e->kind, &fr, &len) < 0)
            return -ENOMEM;
        if (!first)
            putc(',', c->out);
        first = 0;
        write_stack(c->out, fr, len);
    }
    fputs("],\"weights\":[", c->out);
    first = 1;
    uint32_t prev_tick = 0;
    int have_prev = 0;
    for (size_t k = 0; k < n; k++) {
        const struct pf_event *e = &ev[idx[k]];
        /* The round's length; a second sample of the same thread in the same
         * round (only with duplicate events) weighs nothing. */
        size_t r = emit_round_of(rounds, nrounds, e->tick);
        uint64_t w = rounds[r].end - rounds[r].t;
        if (have_prev && prev_tick == e->tick)
            w = 0;
        have_prev = 1;
        prev_tick = e->tick;
        if (e->kind == SAMPLE_IDLE && c->o && c->o->exclude_idle)
            continue;
        fprintf(c->out, first ? "%llu" : ",%llu", (unsigned long long)w);
        first = 0;
        sum += w;
    }
    fprintf(c->out, "],\"endValue\":%llu}", (unsigned long long)(start + sum));
    return 0;
}

static int write_aggregate_profile(struct ctx *c, uint32_t thread, int all, int *first_profile)
{
    size_t nc;
    const struct pf_count *counts = profile_counts(c->p, &nc);
    size_t kept = 0;
    for (size_t i = 0; i < nc; i++) {
        if (!all && counts[i].thread != thread)
            continue;
        if (counts[i].kind == SAMPLE_IDLE && c->o && c->o->exclude_idle)
            continue;
        kept++;
    }
    if (!kept && !all)
        return 0;
    if (!*first_profile)
        putc(',', c->out);
    *first_profile = 0;
    profile_head(c, all, thread, 0);

    fputs("\"samples\":[", c->out);
    int first = 1;
    for (size_t i = 0; i < nc; i++) {
        if (!all && counts[i].thread != thread)
            continue;
        const uint32_t *fr;
        size_t len;
        if (counts[i].kind == SAMPLE_IDLE && c->o && c->o->exclude_idle)
            continue;
        if (sample_frames(c, counts[i].stack, counts[i].kind, &fr, &len) < 0)
            return -ENOMEM;
        if (!first)
            putc(',', c->out);
        first = 0;
        write_stack(c->out, fr, len);
    }
    fputs("],\"weights\":[", c->out);
    first = 1;
    uint64_t sum = 0;
    for (size_t i = 0; i < nc; i++) {
        if (!all && counts[i].thread != thread)
            continue;
        if (counts[i].kind == SAMPLE_IDLE && c->o && c->o->exclude_idle)
            continue;
        uint64_t w = counts[i].count * c->period;
        fprintf(c->out, first ? "%llu" : ",%llu", (unsigned long long)w);
        first = 0;
        sum += w;
    }
    fprintf(c->out, "],\"endValue\":%llu}", (unsigned long long)sum);
    return 0;
}

static void write_frames(struct ctx *c)
{
    fputs("\"shared\":{\"frames\":[", c->out);
    for (size_t i = 0; i < c->nframes; i++) {
        if (i)
            putc(',', c->out);
        const struct ssframe *sf = &c->frames[i];
        if (sf->pseudo) {
            fputs("{\"name\":", c->out);
            emit_json_string(c->out, sf->pseudo);
            putc('}', c->out);
            continue;
        }
        const struct pf_frame *f = profile_frame_get(c->p, sf->pf);
        int line = (c->o && c->o->no_line_numbers) ? f->firstlineno : f->line;
        fputs("{\"name\":", c->out);
        emit_json_string(c->out, profile_str(c->p, fn_name_id(c, f)));
        fputs(",\"file\":", c->out);
        emit_json_string(c->out, profile_str(c->p, f->file));
        if (line >= 0)
            fprintf(c->out, ",\"line\":%d", line);
        putc('}', c->out);
    }
    fputs("]}", c->out);
}

int emit_speedscope(FILE *out, const struct profile *p, const struct emit_options *o)
{
    struct ctx c;
    memset(&c, 0, sizeof(c));
    c.out = out;
    c.p = p;
    c.o = o;
    c.idle_ix = c.failed_ix = SS_NONE;
    const struct profile_meta *meta = profile_meta_get(p);
    c.period = meta->period_ns ? meta->period_ns : DEFAULT_PERIOD_NS;

    size_t nev = 0;
    const struct pf_event *ev = profile_has_events(p) ? profile_events(p, &nev) : NULL;
    size_t nthreads = profile_nthreads(p);
    int several = nthreads > 1;
    int rc = 0;

    size_t *idx = NULL, *tstart = NULL;
    struct emit_round *rounds = NULL;
    size_t nrounds = 0;
    errno = 0;

    /* "profiles" before "shared": the frame table is complete only once
     * every sample has been translated (JSON objects are unordered). */
    fprintf(out, "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\"profiles\":[");
    int first_profile = 1;
    if (nev) {
        rounds = emit_rounds(ev, nev, c.period, &nrounds);
        idx = malloc(nev * sizeof(*idx));
        tstart = calloc(nthreads + 2, sizeof(*tstart));
        if (!rounds || !idx || !tstart) {
            rc = -ENOMEM;
            goto done;
        }
        uint64_t base = rounds[0].t;
        if (several) {
            /* Bucket the events by thread, keeping their order. */
            for (size_t i = 0; i < nev; i++)
                tstart[(ev[i].thread < nthreads ? ev[i].thread : nthreads) + 1]++;
            for (size_t t = 1; t <= nthreads + 1; t++)
                tstart[t] += tstart[t - 1];
            size_t *fill = calloc(nthreads + 1, sizeof(*fill));
            if (!fill) {
                rc = -ENOMEM;
                goto done;
            }
            for (size_t i = 0; i < nev; i++) {
                size_t t = ev[i].thread < nthreads ? ev[i].thread : nthreads;
                idx[tstart[t] + fill[t]++] = i;
            }
            free(fill);
            for (size_t t = 0; t < nthreads && rc == 0; t++)
                rc = write_timeline_profile(&c, ev, idx + tstart[t], tstart[t + 1] - tstart[t],
                                            rounds, nrounds, base, (uint32_t)t, &first_profile);
        } else {
            for (size_t i = 0; i < nev; i++)
                idx[i] = i;
            rc = write_timeline_profile(&c, ev, idx, nev, rounds, nrounds, base,
                                        nthreads ? 0 : PF_NONE, &first_profile);
        }
    } else if (several) {
        for (size_t t = 0; t < nthreads && rc == 0; t++)
            rc = write_aggregate_profile(&c, (uint32_t)t, 0, &first_profile);
    } else {
        rc = write_aggregate_profile(&c, 0, 1, &first_profile);
    }
    if (rc == 0 && first_profile) {
        /* Every thread was empty (e.g. only idle samples under -x). */
        fputs("{\"type\":\"sampled\",\"name\":\"pyflame\",\"unit\":\"nanoseconds\","
              "\"startValue\":0,\"endValue\":0,\"samples\":[],\"weights\":[]}", out);
    }
    if (rc == 0) {
        fputs("],", out);
        write_frames(&c);
        fputs(",\"name\":", out);
        emit_json_string(out, o && o->title ? o->title : "pyflame");
        fputs(",\"activeProfileIndex\":0,\"exporter\":\"pyflame " PYFLAME_VERSION "\"}\n", out);
    }
done:
    free(rounds);
    free(idx);
    free(tstart);
    free(c.frames);
    free(c.stackbuf);
    u64map_free(&c.by_pf);
    u64map_free(&c.by_func);
    if (rc == 0 && ferror(out))
        rc = errno ? -errno : -EIO;
    return rc;
}
