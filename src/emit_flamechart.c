/*
 * emit_flamechart.c - Pyflame's --flamechart output: for every sample, a
 * line with its time in microseconds since the Unix epoch, then a line with
 * "(idle)", "(failed)", or the stack root to leaf with ';' after every frame.
 * All threads of one tick share that tick's timestamp.  Idle samples are
 * left out under -x.
 */
#include <errno.h>
#include <stdlib.h>

#include "emit.h"

int emit_flamechart(FILE *out, const struct profile *p, const struct emit_options *o)
{
    size_t n;
    const struct pf_event *ev = profile_events(p, &n);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct pf_event *e = &ev[i];
        if (e->kind == SAMPLE_IDLE && o->exclude_idle)
            continue;
        fprintf(out, "%llu\n", (unsigned long long)(e->time_ns / 1000));
        if (e->kind == SAMPLE_IDLE) {
            fputs("(idle)\n", out);
        } else if (e->kind == SAMPLE_FAILED) {
            fputs("(failed)\n", out);
        } else {
            struct pf_count c = { e->thread, e->stack, e->kind, 1, e->gil };
            rc = emit_stack_line(p, &c, o, &buf, &len, &cap, ";");
            if (rc == 0) {
                fwrite(buf, 1, len, out);
                putc('\n', out);
            }
        }
    }
    free(buf);
    if (rc == 0 && ferror(out))
        rc = -EIO;
    return rc;
}
