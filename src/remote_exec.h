/*
 * remote_exec.h - PEP 768, the remote debugging protocol of CPython 3.14+
 * (what sys.remote_exec does): ask a running interpreter to run a Python
 * file at its next safe point.  No code is injected and no remote call made:
 * pyflame writes the file's path into a thread state, sets that thread's
 * "debugger pending" flag and the stop bit of its eval breaker, and the
 * thread runs the file the next time it checks its eval breaker (between two
 * bytecodes, with the GIL held).
 *
 * Everything is found through the _Py_DebugOffsets table at the start of
 * _PyRuntime; its layout is that of 3.14 (rexec_prepare refuses others).
 * The writes are made while the whole process is stopped for a few
 * microseconds (the eval-breaker word is read, OR-ed and written back, which
 * would race with the interpreter otherwise), then it is resumed and
 * released.
 *
 * Errors use the INJECT_E_* codes of inject.h, each with its message.
 */
#ifndef PYFLAME_REMOTE_EXEC_H
#define PYFLAME_REMOTE_EXEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct rexec_target {
    pid_t pid;
    uint64_t runtime;          /* &_PyRuntime */
    uint64_t interp;           /* the main interpreter */
    uint64_t tstate;           /* the thread chosen to run the file */
    pid_t tid;                 /* its native thread id (0 if unknown) */
    int holds_gil;             /* it held the GIL when chosen (it runs bytecode) */
    /* from _Py_DebugOffsets */
    uint64_t version_hex;
    uint64_t off_eval_breaker, off_support, off_pending, off_path;
    size_t path_max;           /* the script path buffer, NUL included */
};

/* Reads the debug offsets of the interpreter at runtime, checks that it is a
 * 3.14 whose remote debugging is enabled, and chooses the thread: the GIL
 * holder (it runs bytecode, so it gets there soonest), else the main thread. */
int rexec_prepare(pid_t pid, uint64_t runtime, struct rexec_target *rt, struct error *e);

/* Asks the chosen thread to run the file at path (as the target sees it:
 * its mount namespace, its uid).  Returns once the request is written; the
 * file runs later, asynchronously, and must say itself that it ran. */
int rexec_request(const struct rexec_target *rt, const char *path, struct error *e);

/* The byte offsets of the fields used, within the 3.14 _Py_DebugOffsets
 * (for the unit test of the layout). */
size_t rexec_layout_offset(const char *field);

#endif
