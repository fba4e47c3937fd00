/*
 * perf_native.h - `pyflame --native -s SECS -p PID`: mixed Python + C +
 * kernel stacks from Linux perf and CPython's perf trampoline (3.12+).
 *
 *   1. the trampoline is switched on in the target (inject.h, method auto);
 *      if it was already on it is left on afterwards;
 *   2. `perf record -e cpu-clock -F 199 --call-graph dwarf -k mono -N -p PID`
 *      runs for SECS seconds (until the target exits, or pyflame's SIGINT/
 *      SIGTERM when SECS <= 0) into a private temporary directory;
 *   3. the trampoline is switched off again (if pyflame switched it on);
 *   4. `perf script` is read into the profile, one sample per perf sample:
 *        Python frame  py::qualname:filename  ->  file = filename,
 *                      name = last part of qualname, qualname = qualname
 *        C frame       symbol (dso)           ->  file = basename(dso), name = symbol
 *                      ("[unknown]" when perf has no symbol)
 *        kernel frame  symbol ([kernel.*])    ->  file = "[k]", name = symbol
 *      Frames root-side of the outermost Python frame (the interpreter's
 *      start-up, thread bootstrap) and the interpreter's own frames between
 *      two Python frames (the eval loop's glue) are dropped, so a stack reads
 *      py frames -> C extension -> library -> [k] kernel.  Set
 *      PYFLAME_NATIVE_ALL_FRAMES=1 to keep every frame.
 *
 * Why --call-graph dwarf: the interpreters here (and most distributions')
 * are built without frame pointers, so `perf record -g` (frame pointers)
 * cannot walk out of the eval loop: 0 of ~4000 samples showed a py:: frame.
 * With DWARF unwinding every native frame is right, but perf's unwinder
 * stops at the first trampoline (JIT code has no unwind tables), so each
 * stack carries the innermost Python frame only (the one that called into C
 * or is running).  With a frame-pointer build (-fno-omit-frame-pointer) all
 * Python frames would appear.
 *
 * Environment: PYFLAME_PERF (the perf binary, default "perf" on PATH),
 * PYFLAME_NATIVE_FREQ (Hz, default 199), PYFLAME_KEEP_PERF_DATA=1 (keep and
 * print the temporary directory).
 */
#ifndef PYFLAME_PERF_NATIVE_H
#define PYFLAME_PERF_NATIVE_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "error.h"
#include "profile.h"

/* Failures besides the INJECT_E_* codes of inject.h (which pass through): */
#define PERF_NATIVE_E_NO_PERF    (-ENOPKG)   /* exit 20: perf is not installed */
#define PERF_NATIVE_E_NO_ACCESS  (-EACCES)   /* exit 21: perf may not profile the process
                                                (perf_event_paranoid, capabilities) */
#define PERF_NATIVE_E_PERF       (-EPIPE)    /* exit 22: perf failed otherwise */

/* Profiles pid for `seconds` (<= 0: until it exits or pyflame is asked to
 * stop).  0 or a negative code with a one-line message in e. */
int perf_native_run(pid_t pid, double seconds, struct profile *p, struct error *e);

/* The process exit status for a return code of perf_native_run: 0, 20-22 as
 * above, inject_exit_status() for the INJECT_E_* codes, 1 otherwise. */
int perf_native_exit_status(int rc);

/* Reads `perf script -F comm,tid,time,ip,sym,dso --ns` output into p as
 * process pid.  interp_dso: the path of libpython (or the static python
 * executable) whose frames between Python frames are dropped (NULL: none);
 * all_frames: keep every frame.  mono_to_real_ns is added to perf's
 * (CLOCK_MONOTONIC) times.  Returns the number of samples added, or -errno. */
long perf_native_parse(FILE *in, pid_t pid, const char *interp_dso, int all_frames,
                       int64_t mono_to_real_ns, struct profile *p, struct error *e);

#endif
