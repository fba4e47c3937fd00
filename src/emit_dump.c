/*
 * emit_dump.c - Pyflame's -d output: one snapshot of every thread, in the
 * interpreter's thread-list order (newest first).  Per thread a header line
 *
 *     THREAD_ID[*]: tid TID (NAME)
 *
 * (the Python thread id as threading.get_ident() gives it, '*' when it held
 * the GIL, ':'; then the kernel TID and OS thread name where known), then one
 * line per frame, leaf first, always with :line.  One empty line between
 * threads, none after the last.
 */
#include <errno.h>
#include <stdlib.h>

#include "emit.h"

/* Writes s with newlines and other control bytes replaced by '?': one frame
 * or header per line, and nothing a terminal would act on. */
static void put_clean(FILE *out, const char *s)
{
    for (; *s; s++)
        putc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

int emit_dump(FILE *out, const struct profile *p, const struct emit_options *o)
{
    size_t n;
    const struct pf_event *ev = profile_events(p, &n);
    struct emit_options fo = *o;
    fo.no_line_numbers = 0;
    char name[8192];
    int printed = 0;
    uint32_t tick = n ? ev[0].tick : 0;
    for (size_t i = 0; i < n; i++) {
        const struct pf_event *e = &ev[i];
        if (e->tick != tick || e->kind == SAMPLE_IDLE)
            continue;
        const struct pf_thread *t = profile_thread_get(p, e->thread);
        if (printed++)
            putc('\n', out);
        fprintf(out, "%llu%s:", (unsigned long long)(t ? t->thread_id : 0), e->gil ? "*" : "");
        if (t && t->tid > 0) {
            fprintf(out, " tid %d", (int)t->tid);
            if (t->name != PF_NONE) {
                fputs(" (", out);
                put_clean(out, profile_str(p, t->name));
                putc(')', out);
            }
        }
        putc('\n', out);
        if (e->kind == SAMPLE_FAILED) {
            fputs("(failed)\n", out);
            continue;
        }
        size_t nf;
        const uint32_t *frames = profile_stack_get(p, e->stack, &nf);
        for (size_t k = nf; k-- > 0;) {
            emit_frame_name(p, frames[k], &fo, name, sizeof(name));
            put_clean(out, name);
            putc('\n', out);
        }
    }
    return ferror(out) ? -EIO : 0;
}
