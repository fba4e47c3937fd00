/*
 * emit_svg.c - the profile as an interactive flame graph (SVG), drawn by
 * pyflame's own renderer in flamegraph/.
 *
 * Every (thread, stack, kind) aggregate is one fg_add() of its count.  Frames
 * are "file:function:line" (emit_frame_name: -n and --qualnames apply).
 * Under --per-process the root frame is "process PID CMDLINE", under
 * --per-thread the next is "thread NAME (TID)".  Idle and failed samples are
 * the one-frame stacks "(idle)" and "(failed)", without roots, as in the
 * collapsed output ("(idle) N"), so the SVG is the flame graph of what
 * `-o x.txt` writes; idle samples are left out under -x.  The title is
 * o->title or "pyflame".
 */
#include "emit.h"
#include "flamegraph.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NAME_CAP 4096

int emit_svg(FILE *out, const struct profile *p, const struct emit_options *o)
{
    struct fg *g = fg_new();
    if (!g)
        return -ENOMEM;
    size_t nc;
    const struct pf_count *counts = profile_counts(p, &nc);
    int rc = 0;

    /* Name buffers, one per depth (the roots first), reused across stacks. */
    char **names = NULL;
    const char **frames = NULL;
    size_t cap = 0;

    for (size_t i = 0; i < nc && rc == 0; i++) {
        const struct pf_count *c = &counts[i];
        if (c->kind == SAMPLE_IDLE && o && o->exclude_idle)
            continue;
        size_t n = 0;
        const uint32_t *fr = NULL;
        if (c->kind == SAMPLE_STACK)
            fr = profile_stack_get(p, c->stack, &n);
        size_t need = n + 3;
        if (need > cap) {
            size_t ncap = cap ? cap : 64;
            while (ncap < need)
                ncap *= 2;
            char **nn = realloc(names, ncap * sizeof(*nn));
            if (!nn) {
                rc = -ENOMEM;
                break;
            }
            names = nn;
            for (size_t k = cap; k < ncap; k++)
                names[k] = NULL;
            const char **nf = realloc(frames, ncap * sizeof(*nf));
            if (!nf) {
                rc = -ENOMEM;
                break;
            }
            frames = nf;
            for (size_t k = cap; k < ncap; k++) {
                names[k] = malloc(NAME_CAP);
                if (!names[k]) {
                    rc = -ENOMEM;
                    break;
                }
            }
            cap = ncap;
            if (rc)
                break;
        }
        size_t d = 0;
        const struct pf_thread *th = profile_thread_get(p, c->thread);
        if (c->kind == SAMPLE_IDLE || c->kind == SAMPLE_FAILED) {
            frames[0] = c->kind == SAMPLE_IDLE ? "(idle)" : "(failed)";
            rc = fg_add(g, frames, 1, c->count);
            continue;
        }
        if (o && o->per_process && th) {
            emit_process_name(p, th->process, names[d], NAME_CAP);
            frames[d] = names[d];
            d++;
        }
        if (o && o->per_thread) {
            emit_thread_name(p, c->thread, names[d], NAME_CAP);
            frames[d] = names[d];
            d++;
        }
        for (size_t k = 0; k < n; k++) {
            emit_frame_name(p, fr[k], o, names[d], NAME_CAP);
            frames[d] = names[d];
            d++;
        }
        rc = fg_add(g, frames, d, c->count);
    }

    if (rc == 0) {
        struct fg_options fo;
        fg_options_init(&fo);
        fo.title = o && o->title ? o->title : "pyflame";
        const struct profile_meta *meta = profile_meta_get(p);
        char sub[160];
        int len = snprintf(sub, sizeof(sub), "%llu samples",
                           (unsigned long long)(profile_total(p, SAMPLE_STACK) +
                                                (o && o->exclude_idle
                                                     ? 0 : profile_total(p, SAMPLE_IDLE)) +
                                                profile_total(p, SAMPLE_FAILED)));
        if (meta->period_ns && len > 0 && (size_t)len < sizeof(sub))
            len += snprintf(sub + len, sizeof(sub) - (size_t)len, ", every %.3g ms",
                            (double)meta->period_ns / 1e6);
        if (meta->python_version[0] && len > 0 && (size_t)len < sizeof(sub))
            snprintf(sub + len, sizeof(sub) - (size_t)len, ", Python %.31s", meta->python_version);
        fo.subtitle = sub;
        errno = 0;
        rc = fg_write_svg(g, out, &fo);
        if (rc == 0 && ferror(out))
            rc = errno ? -errno : -EIO;
    }
    for (size_t k = 0; k < cap; k++)
        free(names[k]);
    free(names);
    free(frames);
    fg_free(g);
    return rc;
}
