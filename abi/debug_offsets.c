/*
 * debug_offsets.c - CPython 3.13+ carries its own layout description,
 * _Py_DebugOffsets, at the start of _PyRuntime (cookie "xdebugpy").  We read
 * it from the target and, where it disagrees with our generated table, the
 * target wins (a patch release or a vendor build may differ).
 *
 * The struct is read as an array of uint64_t; the indexes below follow the
 * 3.13 header (Include/internal/pycore_runtime.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "reader.h"

/* Word indexes into _Py_DebugOffsets (3.13): [0] cookie, [1] version, [2] free_threaded. */
enum {
    DO_VERSION = 1, DO_FREE_THREADED = 2,
    DO_RT_SIZE = 3, DO_RT_FINALIZING, DO_RT_INTERP_HEAD,
    DO_IS_SIZE = 6, DO_IS_ID, DO_IS_NEXT, DO_IS_THREADS_HEAD, DO_IS_GC, DO_IS_MODULES,
    DO_IS_SYSDICT, DO_IS_BUILTINS, DO_IS_CEVAL_GIL, DO_IS_GIL_STATE, DO_IS_GIL_ENABLED,
    DO_IS_GIL_LOCKED, DO_IS_GIL_HOLDER,
    DO_TS_SIZE = 19, DO_TS_PREV, DO_TS_NEXT, DO_TS_INTERP, DO_TS_CURRENT_FRAME, DO_TS_THREAD_ID,
    DO_TS_NATIVE_ID, DO_TS_DATASTACK, DO_TS_STATUS,
    DO_IF_SIZE = 28, DO_IF_PREVIOUS, DO_IF_EXECUTABLE, DO_IF_INSTR_PTR, DO_IF_LOCALSPLUS,
    DO_IF_OWNER,
    DO_CO_SIZE = 34, DO_CO_FILENAME, DO_CO_NAME, DO_CO_QUALNAME, DO_CO_LINETABLE,
    DO_CO_FIRSTLINENO, DO_CO_ARGCOUNT, DO_CO_LOCALSPLUSNAMES, DO_CO_LOCALSPLUSKINDS,
    DO_CO_CODE_ADAPTIVE,
    DO_OB_SIZE = 44, DO_OB_TYPE,
    DO_WORDS_313 = 46,   /* enough for everything we use */
};

struct fix { int word; int32_t *field; const char *name; int32_t base; };

int debug_offsets_apply(struct pyreader *r)
{
    uint64_t w[DO_WORDS_313];
    if (mem_read(r->mem, r->target->runtime, w, sizeof(w)) < 0)
        return -EFAULT;
    if (memcmp(&w[0], "xdebugpy", 8) != 0) {
        snprintf(r->warning, sizeof(r->warning),
                 "_PyRuntime of PID %d has no _Py_DebugOffsets cookie; using the built-in table",
                 (int)r->target->pid);
        r->debug_offsets_checked = -1;
        return -EINVAL;
    }
    int major = (int)((w[DO_VERSION] >> 24) & 0xff), minor = (int)((w[DO_VERSION] >> 16) & 0xff);
    if (major != r->off.major || minor != r->off.minor || (major == 3 && minor > 13)) {
        /* A different minor has a different _Py_DebugOffsets layout: do not guess. */
        r->debug_offsets_checked = -1;
        return -EINVAL;
    }
    if (w[DO_FREE_THREADED]) {
        snprintf(r->warning, sizeof(r->warning),
                 "PID %d runs a free-threaded CPython build, which this pyflame build cannot read",
                 (int)r->target->pid);
        r->debug_offsets_checked = -1;
        return -ENOTSUP;
    }
    struct abi_offsets *o = &r->off;
    /* gil_* are relative to the GIL struct in our table, to the interpreter in theirs. */
    int64_t gil_base = (int64_t)w[DO_IS_GIL_STATE];
    struct fix fixes[] = {
        { DO_RT_INTERP_HEAD, &o->runtime_interp_head, "runtime.interpreters_head", 0 },
        { DO_IS_NEXT, &o->interp_next, "interp.next", 0 },
        { DO_IS_THREADS_HEAD, &o->interp_tstate_head, "interp.threads_head", 0 },
        { DO_IS_CEVAL_GIL, &o->interp_ceval_gil, "interp.ceval_gil", 0 },
        { DO_IS_GIL_LOCKED, &o->gil_locked, "gil.locked", (int32_t)gil_base },
        { DO_IS_GIL_HOLDER, &o->gil_last_holder, "gil.last_holder", (int32_t)gil_base },
        { DO_TS_NEXT, &o->tstate_next, "tstate.next", 0 },
        { DO_TS_INTERP, &o->tstate_interp, "tstate.interp", 0 },
        { DO_TS_CURRENT_FRAME, &o->tstate_current_frame, "tstate.current_frame", 0 },
        { DO_TS_THREAD_ID, &o->tstate_thread_id, "tstate.thread_id", 0 },
        { DO_TS_NATIVE_ID, &o->tstate_native_thread_id, "tstate.native_thread_id", 0 },
        { DO_IF_PREVIOUS, &o->iframe_previous, "iframe.previous", 0 },
        { DO_IF_EXECUTABLE, &o->iframe_code, "iframe.executable", 0 },
        { DO_IF_INSTR_PTR, &o->iframe_instr, "iframe.instr_ptr", 0 },
        { DO_IF_OWNER, &o->iframe_owner, "iframe.owner", 0 },
        { DO_CO_FILENAME, &o->code_filename, "code.filename", 0 },
        { DO_CO_NAME, &o->code_name, "code.name", 0 },
        { DO_CO_QUALNAME, &o->code_qualname, "code.qualname", 0 },
        { DO_CO_LINETABLE, &o->code_linetable, "code.linetable", 0 },
        { DO_CO_FIRSTLINENO, &o->code_firstlineno, "code.firstlineno", 0 },
        { DO_CO_CODE_ADAPTIVE, &o->code_code_adaptive, "code.co_code_adaptive", 0 },
        { DO_OB_TYPE, &o->object_type, "object.ob_type", 0 },
    };
    int changed = 0;
    const char *first = NULL;
    for (size_t i = 0; i < sizeof(fixes) / sizeof(fixes[0]); i++) {
        uint64_t v = w[fixes[i].word] - (uint64_t)fixes[i].base;
        if (v > 1 << 20)
            continue;   /* implausible: keep ours */
        if (*fixes[i].field != (int32_t)v) {
            if (!first)
                first = fixes[i].name;
            *fixes[i].field = (int32_t)v;
            changed++;
        }
    }
    if (changed)
        snprintf(r->warning, sizeof(r->warning),
                 "note: PID %d's _Py_DebugOffsets differ from the built-in %d.%d table in %d "
                 "field(s) (first: %s); using the target's", (int)r->target->pid, major, minor,
                 changed, first);
    r->debug_offsets_checked = 1;
    return 0;
}
