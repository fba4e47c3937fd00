/*
 * emit_common.c - what the output writers share: format names, frame and
 * synthetic-root naming, JSON string escaping.
 */
#include "emit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const format_names[FORMAT_COUNT] = {
    [FORMAT_COLLAPSED] = "collapsed",
    [FORMAT_FLAMECHART] = "flamechart",
    [FORMAT_DUMP] = "dump",
    [FORMAT_SVG] = "svg",
    [FORMAT_SPEEDSCOPE] = "speedscope",
    [FORMAT_PPROF] = "pprof",
    [FORMAT_CHROME] = "chrome",
};

const char *format_name(enum output_format f)
{
    return (unsigned)f < FORMAT_COUNT ? format_names[f] : "?";
}

int format_parse(const char *name)
{
    for (int i = 0; i < FORMAT_COUNT; i++)
        if (strcmp(name, format_names[i]) == 0)
            return i;
    if (strcmp(name, "txt") == 0 || strcmp(name, "folded") == 0)
        return FORMAT_COLLAPSED;
    return -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lf = strlen(suffix);
    return ls >= lf && strcasecmp(s + ls - lf, suffix) == 0;
}

int format_from_path(const char *path)
{
    if (!path)
        return -1;
    if (ends_with(path, ".svg"))
        return FORMAT_SVG;
    if (ends_with(path, ".speedscope.json") || ends_with(path, ".speedscope"))
        return FORMAT_SPEEDSCOPE;
    if (ends_with(path, ".pb.gz") || ends_with(path, ".pprof") || ends_with(path, ".pb"))
        return FORMAT_PPROF;
    if (ends_with(path, ".json") || ends_with(path, ".trace"))
        return FORMAT_CHROME;
    if (ends_with(path, ".flamechart"))
        return FORMAT_FLAMECHART;
    return -1;
}

int format_needs_events(enum output_format f)
{
    return f == FORMAT_FLAMECHART || f == FORMAT_SPEEDSCOPE || f == FORMAT_CHROME ||
           f == FORMAT_DUMP;
}

size_t emit_frame_name(const struct profile *p, uint32_t frame, const struct emit_options *o,
                       char *buf, size_t cap)
{
    const struct pf_frame *f = profile_frame_get(p, frame);
    if (!f) {
        int n = snprintf(buf, cap, "(unknown)");
        return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
    }
    const char *name = profile_str(p, f->name);
    if (o && o->qualnames && f->qualname != PF_NONE)
        name = profile_str(p, f->qualname);
    int n;
    if ((o && o->no_line_numbers) || f->line < 0)
        n = snprintf(buf, cap, "%s:%s", profile_str(p, f->file), name);
    else
        n = snprintf(buf, cap, "%s:%s:%d", profile_str(p, f->file), name, f->line);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t emit_thread_name(const struct profile *p, uint32_t thread, char *buf, size_t cap)
{
    const struct pf_thread *t = profile_thread_get(p, thread);
    int n;
    if (!t)
        n = snprintf(buf, cap, "thread ? (?)");
    else if (t->name != PF_NONE)
        n = snprintf(buf, cap, "thread %s (%d)", profile_str(p, t->name), (int)t->tid);
    else
        n = snprintf(buf, cap, "thread %lu (%d)", (unsigned long)t->thread_id, (int)t->tid);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t emit_process_name(const struct profile *p, uint32_t process, char *buf, size_t cap)
{
    const struct pf_process *pr = profile_process_get(p, process);
    int n;
    if (!pr)
        n = snprintf(buf, cap, "process ?");
    else if (*profile_str(p, pr->cmdline))
        n = snprintf(buf, cap, "process %d %s", (int)pr->pid, profile_str(p, pr->cmdline));
    else
        n = snprintf(buf, cap, "process %d", (int)pr->pid);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not valid. */
static size_t utf8_seq_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xe0 && s[0] <= 0xef) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if (s[0] == 0xe0 && s[1] < 0xa0)
            return 0;                       /* overlong */
        if (s[0] == 0xed && s[1] >= 0xa0)
            return 0;                       /* surrogate */
        return 3;
    }
    if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if (s[0] == 0xf0 && s[1] < 0x90)
            return 0;
        if (s[0] == 0xf4 && s[1] >= 0x90)
            return 0;
        return 4;
    }
    return 0;
}

void emit_json_stringn(FILE *out, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s, *end = u + len;
    putc('"', out);
    while (u < end) {
        unsigned char c = *u;
        if (c == '"' || c == '\\') {
            putc('\\', out);
            putc(c, out);
            u++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u%04x", c);
            u++;
        } else if (c < 0x80) {
            putc(c, out);
            u++;
        } else {
            size_t n = utf8_seq_len(u);
            if (n == 0 || n > (size_t)(end - u)) {
                fputs("\\ufffd", out);
                u++;
            } else {
                fwrite(u, 1, n, out);
                u += n;
            }
        }
    }
    putc('"', out);
}

void emit_json_string(FILE *out, const char *s)
{
    emit_json_stringn(out, s, strlen(s));
}

static int emit_round_cmp(const void *a, const void *b)
{
    const struct emit_round *x = a, *y = b;
    if (x->tick != y->tick)
        return x->tick < y->tick ? -1 : 1;
    return x->first < y->first ? -1 : (x->first > y->first);
}

/* The rounds of the timeline, sorted by tick, one per tick. */
struct emit_round *emit_rounds(const struct pf_event *ev, size_t nev, uint64_t period,
                                 size_t *nrounds)
{
    struct emit_round *r = malloc((nev ? nev : 1) * sizeof(*r));
    if (!r)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < nev; i++) {
        if (n && r[n - 1].tick == ev[i].tick)
            continue;
        r[n].tick = ev[i].tick;
        r[n].t = ev[i].time_ns;
        r[n].first = i;
        n++;
    }
    qsort(r, n, sizeof(*r), emit_round_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && r[m - 1].tick == r[i].tick)
            continue;           /* the same tick seen again later: keep the first */
        r[m++] = r[i];
    }
    for (size_t i = 1; i < m; i++)
        if (r[i].t < r[i - 1].t)
            r[i].t = r[i - 1].t;
    for (size_t i = 0; i < m; i++)
        r[i].end = i + 1 < m ? r[i + 1].t : r[i].t + period;
    *nrounds = m;
    return r;
}

size_t emit_round_of(const struct emit_round *r, size_t n, uint32_t tick)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].tick < tick)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
