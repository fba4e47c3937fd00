/*
 * reader.h - reading Python's state out of a stopped (or running) target.
 *
 * One interface over every supported CPython layout family: the families
 * differ in where the thread list, the current thread and the frames are
 * (see frames_object.c for PyFrameObject chains up to 3.10 and
 * frames_interp.c for _PyInterpreterFrame chains from 3.11).  Everything
 * read is untrusted: every loop is bounded, every length capped, every
 * pointer chain checked for cycles; a failed read fails the one sample.
 */
#ifndef PYFLAME_READER_H
#define PYFLAME_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "linetable.h"
#include "mem.h"
#include "offsets.h"
#include "profile.h"
#include "target.h"

#define READER_MAX_DEPTH   4096   /* deeper stacks are truncated at the root end */
#define READER_MAX_THREADS 4096
#define READER_MAX_STRING  1024   /* characters of a file or function name kept */

/* One frame as the sampler records it: strings are profile string ids. */
struct rframe {
    uint32_t file, name, qualname;
    int32_t line, firstlineno;
};

/* One Python thread state. */
struct rthread {
    uint64_t tstate;
    uint64_t thread_id;      /* threading.get_ident(): pthread_t */
    pid_t native_id;         /* kernel TID (3.11+; else 0 unless mapped) */
    uint64_t top_frame;      /* PyFrameObject* / _PyInterpreterFrame*, 0 = no Python frame */
    uint64_t cframe;         /* 3.11/3.12: where top_frame was read (tstate->cframe), or 0 */
};

struct codecache;

struct pyreader {
    struct abi_offsets off;        /* the table entry, corrected by the target's own
                                      _Py_DebugOffsets on 3.13+ */
    const struct pytarget *target;
    struct mem *mem;
    struct profile *prof;          /* where names are interned */
    enum linetable_format ltfmt;
    struct codecache *cache;
    uint64_t interp;               /* the main interpreter, once known */
    size_t tstate_len;             /* bytes of PyThreadState worth reading */
    size_t frame_len;              /* bytes of a frame worth reading */
    size_t code_len;               /* bytes of a code object worth reading */
    int debug_offsets_checked;     /* 3.13+: 1 ok, -1 mismatch reported */
    char warning[256];             /* a one-time note for the user, "" if none */
    /* the frames visited by the last walk, for reader_verify (non-blocking mode) */
    int record_trail;
    uint64_t *trail_addr, *trail_link, *trail_code;
    size_t trail_n;
    unsigned char *verify_buf;     /* pages re-read by reader_verify */
    /* scratch for cycle detection, sized READER_VISIT_SLOTS */
    uint64_t *visit;
    uint32_t *visit_gen;
    uint32_t gen;
};

int reader_init(struct pyreader *r, const struct pytarget *t, struct mem *m, struct profile *p);
void reader_free(struct pyreader *r);

/* The main interpreter, or 0 while the interpreter is not initialised.
 * 0 or -errno. */
int reader_interp(struct pyreader *r, uint64_t *interp);

/* The thread state holding the GIL, or 0 when nobody holds it. */
int reader_gil_holder(struct pyreader *r, uint64_t interp, uint64_t *tstate);

/* The thread states of an interpreter, newest first (up to max). */
int reader_threads(struct pyreader *r, uint64_t interp, uint64_t *tstates, size_t max, size_t *n);

/* What one thread state says about itself. */
int reader_thread(struct pyreader *r, uint64_t tstate, struct rthread *out);

/* The thread's stack, leaf first, into frames[0..*n).  0, -EFAULT (a read
 * failed or the chain made no sense), or -E2BIG (truncated at max; frames
 * holds the leaf-most max frames). */
int reader_stack(struct pyreader *r, const struct rthread *t, struct rframe *frames, size_t max,
                 size_t *n);

/* Non-blocking mode: was the stack just read by reader_stack() still the
 * thread's stack afterwards?  Re-reads the thread's top frame and every
 * visited frame's link and code pointers (one batched read) and compares.
 * 0 when consistent, -EAGAIN when it changed meanwhile, -EFAULT on a failed read. */
int reader_verify(struct pyreader *r, const struct rthread *t);

/* Called by the walks for every frame visited. */
static inline void reader_trail(struct pyreader *r, uint64_t addr, uint64_t link, uint64_t code)
{
    if (r->record_trail && r->trail_n < 4 * READER_MAX_DEPTH) {
        r->trail_addr[r->trail_n] = addr;
        r->trail_link[r->trail_n] = link;
        r->trail_code[r->trail_n] = code;
        r->trail_n++;
    }
}

/* Is the interpreter finalizing (3.7+; 0 when unknown)? */
int reader_finalizing(struct pyreader *r);

/* Family-specific walks (frames_object.c, frames_interp.c). */
int frames_object_walk(struct pyreader *r, uint64_t frame, struct rframe *frames, size_t max,
                       size_t *n);
int frames_interp_walk(struct pyreader *r, uint64_t frame, struct rframe *frames, size_t max,
                       size_t *n);

/* Cycle detection during one walk: reader_visit_reset() per walk, then
 * reader_visit() returns 1 when addr was seen before in this walk. */
void reader_visit_reset(struct pyreader *r);
int reader_visit(struct pyreader *r, uint64_t addr);

/* 3.13+: check the table against the target's _Py_DebugOffsets (debug_offsets.c). */
int debug_offsets_apply(struct pyreader *r);

#endif
