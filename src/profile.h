/*
 * profile.h - what a run collected: interned strings, frames, stacks,
 * threads and processes, per-(thread, stack) counts, and optionally the
 * timeline of individual samples.
 *
 * Memory grows with distinct stacks, not with samples, unless the timeline
 * is kept (only the emitters that need timestamps ask for it).
 *
 * Ids are dense uint32_t indexes, valid for the life of the profile.
 * Lookups of ids that were returned by this profile never fail.
 */
#ifndef PYFLAME_PROFILE_H
#define PYFLAME_PROFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PF_NONE UINT32_MAX

enum sample_kind {
    SAMPLE_STACK = 0,   /* a Python stack was read */
    SAMPLE_IDLE = 1,    /* no Python stack to read (no GIL holder / thread idle) */
    SAMPLE_FAILED = 2,  /* the read failed (torn, garbage, vanished thread) */
};

struct pf_frame {
    uint32_t file;       /* string id: co_filename */
    uint32_t name;       /* string id: co_name */
    uint32_t qualname;   /* string id: co_qualname (3.11+), else PF_NONE */
    int32_t line;        /* current line, -1 when unknown */
    int32_t firstlineno; /* co_firstlineno, -1 when unknown */
};

struct pf_process {
    pid_t pid;
    uint32_t cmdline;    /* string id: command line, spaces between arguments */
};

struct pf_thread {
    uint32_t process;    /* process index */
    pid_t tid;           /* kernel thread id, 0 when unknown */
    uint64_t thread_id;  /* Python's thread id (pthread_t), 0 when unknown */
    uint32_t name;       /* string id: OS thread name, PF_NONE when unknown */
};

/* One aggregate: how many samples of `kind` with this (thread, stack). */
struct pf_count {
    uint32_t thread;
    uint32_t stack;      /* PF_NONE for idle and failed samples */
    uint32_t kind;       /* enum sample_kind */
    uint64_t count;
    uint64_t gil_count;  /* how many of them held the GIL */
};

/* One sample, kept only when the profile was made with keep_events. */
struct pf_event {
    uint64_t time_ns;    /* CLOCK_REALTIME, ns since the epoch */
    uint32_t thread;
    uint32_t stack;      /* PF_NONE for idle and failed samples */
    uint16_t kind;       /* enum sample_kind */
    uint16_t gil;        /* 1 if this thread held the GIL */
    uint32_t tick;       /* the tick (sampling round) it belongs to */
};

struct profile;

struct profile *profile_new(int keep_events);
void profile_free(struct profile *p);

/* Interning.  Return PF_NONE only when memory runs out. */
uint32_t profile_string(struct profile *p, const char *s, size_t len);
uint32_t profile_frame(struct profile *p, const struct pf_frame *f);
uint32_t profile_stack(struct profile *p, const uint32_t *frames_root_first, size_t n);
uint32_t profile_process(struct profile *p, pid_t pid, const char *cmdline);
uint32_t profile_thread(struct profile *p, uint32_t process, pid_t tid, uint64_t thread_id,
                        const char *name);

/* Record one sample.  `tick` numbers the sampling rounds (all threads of one
 * round share it and its time).  Returns 0 or -ENOMEM. */
int profile_add(struct profile *p, uint32_t thread, uint32_t stack, enum sample_kind kind,
                int gil, uint64_t time_ns, uint32_t tick);

/* Lookups. */
const char *profile_str(const struct profile *p, uint32_t id);   /* "" for PF_NONE */
const struct pf_frame *profile_frame_get(const struct profile *p, uint32_t id);
const uint32_t *profile_stack_get(const struct profile *p, uint32_t id, size_t *n);
const struct pf_thread *profile_thread_get(const struct profile *p, uint32_t id);
const struct pf_process *profile_process_get(const struct profile *p, uint32_t id);
size_t profile_nthreads(const struct profile *p);
size_t profile_nprocesses(const struct profile *p);

/* Aggregates in first-seen order, and the timeline (empty unless kept). */
const struct pf_count *profile_counts(const struct profile *p, size_t *n);
const struct pf_event *profile_events(const struct profile *p, size_t *n);
int profile_has_events(const struct profile *p);

/* Totals per kind, and the run's metadata (set by the sampler). */
uint64_t profile_total(const struct profile *p, enum sample_kind kind);
struct profile_meta {
    uint64_t start_ns, end_ns;   /* CLOCK_REALTIME of the first and last tick */
    uint64_t period_ns;          /* the sampling interval asked for */
    uint32_t ticks;              /* sampling rounds done */
    char python_version[32];     /* "3.12.1" or "3.12" */
};
struct profile_meta *profile_meta(struct profile *p);
const struct profile_meta *profile_meta_get(const struct profile *p);

#endif
