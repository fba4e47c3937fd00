/*
 * emit.h - writing a profile in one of the output formats.
 *
 * Each format lives in its own emit_<format>.c and writes to a FILE*.
 * emit_profile() picks the writer and, for a file path, writes to a
 * temporary name in the same directory and renames it into place, so a
 * failure never leaves a half-written file where a good one was.
 */
#ifndef PYFLAME_EMIT_H
#define PYFLAME_EMIT_H

#include <stdio.h>
#include "profile.h"

enum output_format {
    FORMAT_COLLAPSED = 0,   /* Pyflame / flamegraph.pl collapsed stacks (default) */
    FORMAT_FLAMECHART,      /* Pyflame --flamechart: timestamp line, then stack; */
    FORMAT_DUMP,            /* Pyflame -d: one snapshot of every thread */
    FORMAT_SVG,             /* interactive flame graph (flamegraph/) */
    FORMAT_SPEEDSCOPE,      /* speedscope JSON */
    FORMAT_PPROF,           /* gzip-compressed profile.proto */
    FORMAT_CHROME,          /* Chrome trace event format JSON */
    FORMAT_COUNT
};

struct emit_options {
    enum output_format format;
    int exclude_idle;       /* -x: leave out idle samples */
    int no_line_numbers;    /* -n: frames without :line */
    int per_thread;         /* --per-thread: a root frame per thread */
    int per_process;        /* a root frame per process (several -p, --subprocesses) */
    int qualnames;          /* --qualnames: co_qualname as the function part (3.11+) */
    const char *title;      /* SVG title, NULL for the default */
};

/* Name of a format ("collapsed", "svg", ...), and the reverse (-1 if unknown). */
const char *format_name(enum output_format f);
int format_parse(const char *name);
/* Format implied by an output path's extension, or -1 when it implies none. */
int format_from_path(const char *path);
/* Does this format need the profile's timeline (profile_new(keep_events))? */
int format_needs_events(enum output_format f);

/* The writers.  Each returns 0, or -errno when writing failed. */
int emit_collapsed(FILE *out, const struct profile *p, const struct emit_options *o);
int emit_flamechart(FILE *out, const struct profile *p, const struct emit_options *o);
int emit_dump(FILE *out, const struct profile *p, const struct emit_options *o);
int emit_svg(FILE *out, const struct profile *p, const struct emit_options *o);
int emit_speedscope(FILE *out, const struct profile *p, const struct emit_options *o);
int emit_pprof(FILE *out, const struct profile *p, const struct emit_options *o);
int emit_chrome(FILE *out, const struct profile *p, const struct emit_options *o);

/* Write the profile to `path` (NULL or "-" = stdout) atomically.  On failure
 * returns -errno and puts a one-line reason in errbuf. */
int emit_profile(const char *path, const struct profile *p, const struct emit_options *o,
                 char *errbuf, size_t errlen);

/* Helpers shared by the writers (emit_common.c). */

/* "file:function:line" (or without ":line" under no_line_numbers; with the
 * qualname under qualnames when known).  Bytes are copied as they are;
 * returns the length written (always NUL-terminated, truncated to cap). */
size_t emit_frame_name(const struct profile *p, uint32_t frame, const struct emit_options *o,
                       char *buf, size_t cap);
/* The synthetic root frames: "thread NAME (TID)" and "process PID CMDLINE". */
size_t emit_thread_name(const struct profile *p, uint32_t thread, char *buf, size_t cap);
size_t emit_process_name(const struct profile *p, uint32_t process, char *buf, size_t cap);
/* The root-to-leaf text of one aggregate as the collapsed format writes it
 * (synthetic process/thread roots first when asked for; ';' between frames;
 * ';', newlines and control bytes inside names replaced with '?'), into a
 * growable *buf; sep_after_last (or NULL) is appended.  0 or -ENOMEM. */
int emit_stack_line(const struct profile *p, const struct pf_count *c, const struct emit_options *o,
                    char **buf, size_t *len, size_t *cap, const char *sep_after_last);
/* The sampling rounds (ticks) of a timeline, one per tick, sorted by tick,
 * with times made monotonic; each lasts until the next round starts, the last
 * one for `period`.  malloc'ed (free it); NULL when out of memory. */
struct emit_round {
    uint32_t tick;
    uint64_t t;       /* made monotonic */
    uint64_t end;     /* the next round's time, or t + period for the last */
    size_t first;     /* event index where it was first seen (sort tie-break) */
};
struct emit_round *emit_rounds(const struct pf_event *ev, size_t nev, uint64_t period,
                               size_t *nrounds);
/* The index of the round of `tick` in rounds[0..n) (binary search). */
size_t emit_round_of(const struct emit_round *r, size_t n, uint32_t tick);

/* Write s as a JSON string literal (quotes included), escaping what JSON needs and
 * replacing invalid UTF-8 with U+FFFD. */
void emit_json_string(FILE *out, const char *s);
/* The same for s[0..len).  The bytes must be followed by a NUL somewhere: the
 * UTF-8 check may look up to three bytes ahead but never past a NUL. */
void emit_json_stringn(FILE *out, const char *s, size_t len);

#endif
