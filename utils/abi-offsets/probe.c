/*
 * probe.c - print one `struct abi_offsets` initializer (abi/offsets.h) for the
 * CPython whose headers this file is compiled against.
 *
 * Not part of pyflame: utils/abi-offsets/generate compiles it once per
 * interpreter, roughly
 *
 *     cc -DPy_BUILD_CORE -I<prefix>/include/python3.12 probe.c -o probe && ./probe
 *
 * (-DPy_BUILD_CORE only for 3.7+, where the runtime / interpreter structs live
 * in the internal headers).  Every value is offsetof() / sizeof() as seen by
 * the compiler, except the PEP 393 `state` bit positions, which are found
 * empirically by setting each bitfield in a zeroed object and looking at the
 * 32-bit word it lives in.
 *
 * Every field of struct abi_offsets is printed, in declaration order, exactly
 * once (generate checks this against abi/offsets.h); absent ones are ABI_NONE.
 * Exits with status 3 (PROBE_SKIP) for builds the table does not describe
 * (debug, free-threaded).  When adding a version, add its #if branches here;
 * see README.rst.
 */
#include <Python.h>
#include <frameobject.h>

#if PY_VERSION_HEX >= 0x03070000
#  ifndef Py_BUILD_CORE
#    error "compile with -DPy_BUILD_CORE for CPython 3.7+"
#  endif
#endif

#if PY_VERSION_HEX >= 0x03070000 && PY_VERSION_HEX < 0x03080000
#  include "internal/pystate.h"        /* _PyRuntimeState */
#elif PY_VERSION_HEX >= 0x03080000 && PY_VERSION_HEX < 0x03090000
#  include "internal/pycore_pystate.h" /* _PyRuntimeState, struct _is */
#elif PY_VERSION_HEX >= 0x03090000
#  include "internal/pycore_runtime.h" /* _PyRuntimeState */
#  include "internal/pycore_interp.h"  /* struct _is */
#endif
#if PY_VERSION_HEX >= 0x030B0000
#  include "internal/pycore_frame.h"   /* _PyInterpreterFrame */
#endif
#if PY_VERSION_HEX >= 0x030C0000
#  include "internal/pycore_gil.h"     /* struct _gil_runtime_state */
#endif
#if PY_VERSION_HEX >= 0x030E0000
#  error "CPython 3.14+ is not mapped yet: add its branches (see README.rst)"
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_MINOR_AT_LEAST(m) (PY_MAJOR_VERSION > 3 || \
                                 (PY_MAJOR_VERSION == 3 && PY_MINOR_VERSION >= (m)))

/* ---- output: `.field = value,` tokens, wrapped at ~100 columns ---------- */
static int column;

static void token(const char *text)
{
    size_t len = strlen(text);
    if (column + 1 + (int)len > 100) {
        printf("\n     ");
        column = 5;
    }
    printf(" %s", text);
    column += 1 + (int)len;
}

static void group(const char *comment)
{
    printf("\n      /* %s */\n     ", comment);
    column = 5;
}

static void put(const char *field, long value)
{
    char buf[128];
    if (value < 0 || value > INT32_MAX) {
        fprintf(stderr, "probe: %s = %ld does not fit\n", field, value);
        exit(1);
    }
    snprintf(buf, sizeof buf, ".%s = %ld,", field, value);
    token(buf);
}

static void put_none(const char *field)
{
    char buf[128];
    snprintf(buf, sizeof buf, ".%s = ABI_NONE,", field);
    token(buf);
}

#define OFF(field, type, member) put(#field, (long)offsetof(type, member))
#define SIZE(field, type)        put(#field, (long)sizeof(type))
#define NONE(field)              put_none(#field)

#if PY_MAJOR_VERSION >= 3
/* Position of the lowest set bit of `word`, after checking that exactly
 * `width` consecutive bits are set (i.e. the bitfield was set to all ones). */
static long bit_position(const char *what, uint32_t word, int width)
{
    for (int shift = 0; shift < 32; shift++) {
        if (word & (UINT32_C(1) << shift)) {
            uint32_t mask = (uint32_t)(((UINT64_C(1) << width) - 1) << shift);
            if (word != mask) {
                fprintf(stderr, "probe: state.%s: word 0x%08x is not %d "
                        "contiguous bits\n", what, (unsigned)word, width);
                exit(1);
            }
            return shift;
        }
    }
    fprintf(stderr, "probe: state.%s: no bit set\n", what);
    exit(1);
}

static uint32_t state_word(const PyASCIIObject *obj)
{
    uint32_t word;
    memcpy(&word, (const char *)obj + offsetof(PyASCIIObject, state), sizeof word);
    return word;
}
#endif

/* Exit status PROBE_SKIP (with the reason on stderr): a build this table does
 * not describe.  generate reports the version as skipped, not as an error. */
#define PROBE_SKIP 3

int main(void)
{
    char buf[128];

#if defined(Py_TRACE_REFS) || defined(Py_DEBUG)
    fprintf(stderr, "debug build (Py_DEBUG / Py_TRACE_REFS change the layouts)\n");
    return PROBE_SKIP;
#endif
#ifdef Py_GIL_DISABLED
    fprintf(stderr, "free-threaded build (Py_GIL_DISABLED changes the layouts)\n");
    return PROBE_SKIP;
#endif

    /* The table is x86-64 only (LP64, glibc pthread sizes inside the runtime). */
    if (sizeof(void *) != 8 || sizeof(long) != 8) {
        fprintf(stderr, "probe: not an LP64 target\n");
        return 1;
    }

    snprintf(buf, sizeof buf, "{ .major = %d, .minor = %d, .name = \"%d%d\",",
             PY_MAJOR_VERSION, PY_MINOR_VERSION, PY_MAJOR_VERSION, PY_MINOR_VERSION);
    printf("    /* CPython %s */\n    %s", PY_VERSION, buf);
    column = 4 + (int)strlen(buf);

    /* ---- _PyRuntimeState ------------------------------------------------ */
    group("_PyRuntimeState");
#if PROBE_MINOR_AT_LEAST(7)
    SIZE(runtime_size, _PyRuntimeState);
    OFF(runtime_interp_head, _PyRuntimeState, interpreters.head);
    OFF(runtime_interp_main, _PyRuntimeState, interpreters.main);
#  if !PROBE_MINOR_AT_LEAST(12)
    OFF(runtime_tstate_current, _PyRuntimeState, gilstate.tstate_current);
    OFF(runtime_gil_locked, _PyRuntimeState, ceval.gil.locked);
    OFF(runtime_gil_last_holder, _PyRuntimeState, ceval.gil.last_holder);
#  else
    NONE(runtime_tstate_current);  /* a thread-local (_Py_tss_tstate) since 3.12 */
    NONE(runtime_gil_locked);      /* per interpreter since 3.12: interp_ceval_gil */
    NONE(runtime_gil_last_holder);
#  endif
#  if PROBE_MINOR_AT_LEAST(9)
    OFF(runtime_finalizing, _PyRuntimeState, _finalizing);
#  else
    OFF(runtime_finalizing, _PyRuntimeState, finalizing);  /* 3.7, 3.8 */
#  endif
#else
    NONE(runtime_size);
    NONE(runtime_interp_head);
    NONE(runtime_interp_main);
    NONE(runtime_tstate_current);
    NONE(runtime_gil_locked);
    NONE(runtime_gil_last_holder);
    NONE(runtime_finalizing);
#endif

    /* ---- PyInterpreterState --------------------------------------------- */
    group("PyInterpreterState");
    SIZE(interp_size, PyInterpreterState);
    OFF(interp_next, PyInterpreterState, next);
#if PROBE_MINOR_AT_LEAST(11)
    OFF(interp_tstate_head, PyInterpreterState, threads.head);
#else
    OFF(interp_tstate_head, PyInterpreterState, tstate_head);
#endif
#if PROBE_MINOR_AT_LEAST(12)
    OFF(interp_ceval_gil, PyInterpreterState, ceval.gil);
#else
    NONE(interp_ceval_gil);
#endif

    /* ---- struct _gil_runtime_state -------------------------------------- */
    group("struct _gil_runtime_state");
#if PROBE_MINOR_AT_LEAST(12)
    OFF(gil_last_holder, struct _gil_runtime_state, last_holder);
    OFF(gil_locked, struct _gil_runtime_state, locked);
#else
    NONE(gil_last_holder);
    NONE(gil_locked);
#endif

    /* ---- PyThreadState -------------------------------------------------- */
    group("PyThreadState");
    SIZE(tstate_size, PyThreadState);
    OFF(tstate_next, PyThreadState, next);
    OFF(tstate_interp, PyThreadState, interp);
#if PROBE_MINOR_AT_LEAST(11)
    NONE(tstate_frame);
#  if PROBE_MINOR_AT_LEAST(13)
    NONE(tstate_cframe);
    NONE(cframe_current_frame);
    OFF(tstate_current_frame, PyThreadState, current_frame);
#  else
    OFF(tstate_cframe, PyThreadState, cframe);
    OFF(cframe_current_frame, _PyCFrame, current_frame);
    NONE(tstate_current_frame);
#  endif
#else
    OFF(tstate_frame, PyThreadState, frame);
    NONE(tstate_cframe);
    NONE(cframe_current_frame);
    NONE(tstate_current_frame);
#endif
    OFF(tstate_thread_id, PyThreadState, thread_id);
#if PROBE_MINOR_AT_LEAST(11)
    OFF(tstate_native_thread_id, PyThreadState, native_thread_id);
#else
    NONE(tstate_native_thread_id);
#endif

    /* ---- PyFrameObject (<= 3.10) ---------------------------------------- */
    group("PyFrameObject");
#if PROBE_MINOR_AT_LEAST(11)
    NONE(frame_size);
    NONE(frame_back);
    NONE(frame_code);
    NONE(frame_lasti);
#else
    SIZE(frame_size, PyFrameObject);
    OFF(frame_back, PyFrameObject, f_back);
    OFF(frame_code, PyFrameObject, f_code);
    OFF(frame_lasti, PyFrameObject, f_lasti);
#endif

    /* ---- _PyInterpreterFrame (3.11+) ------------------------------------ */
    group("_PyInterpreterFrame");
#if PROBE_MINOR_AT_LEAST(11)
    SIZE(iframe_size, _PyInterpreterFrame);
    OFF(iframe_previous, _PyInterpreterFrame, previous);
#  if PROBE_MINOR_AT_LEAST(13)
    OFF(iframe_code, _PyInterpreterFrame, f_executable);
    OFF(iframe_instr, _PyInterpreterFrame, instr_ptr);
#  else
    OFF(iframe_code, _PyInterpreterFrame, f_code);
    OFF(iframe_instr, _PyInterpreterFrame, prev_instr);
#  endif
    OFF(iframe_owner, _PyInterpreterFrame, owner);
#  if PROBE_MINOR_AT_LEAST(12)
    NONE(iframe_is_entry);
#  else
    OFF(iframe_is_entry, _PyInterpreterFrame, is_entry);
#  endif
#else
    NONE(iframe_size);
    NONE(iframe_previous);
    NONE(iframe_code);
    NONE(iframe_instr);
    NONE(iframe_owner);
    NONE(iframe_is_entry);
#endif

    /* ---- PyCodeObject --------------------------------------------------- */
    group("PyCodeObject");
#if PROBE_MINOR_AT_LEAST(11)
    /* The bytecode is inline from co_code_adaptive on: the fixed part ends there. */
    OFF(code_size, PyCodeObject, co_code_adaptive);
#else
    SIZE(code_size, PyCodeObject);
#endif
    OFF(code_filename, PyCodeObject, co_filename);
    OFF(code_name, PyCodeObject, co_name);
#if PROBE_MINOR_AT_LEAST(11)
    OFF(code_qualname, PyCodeObject, co_qualname);
#else
    NONE(code_qualname);
#endif
    OFF(code_firstlineno, PyCodeObject, co_firstlineno);
#if PROBE_MINOR_AT_LEAST(10)
    OFF(code_linetable, PyCodeObject, co_linetable);
#else
    OFF(code_linetable, PyCodeObject, co_lnotab);
#endif
#if PROBE_MINOR_AT_LEAST(11)
    NONE(code_code);
    OFF(code_code_adaptive, PyCodeObject, co_code_adaptive);
#else
    OFF(code_code, PyCodeObject, co_code);
    NONE(code_code_adaptive);
#endif

    /* ---- objects -------------------------------------------------------- */
    group("objects");
    OFF(object_type, PyObject, ob_type);
    OFF(varobject_size, PyVarObject, ob_size);
#if PY_MAJOR_VERSION >= 3
    OFF(bytes_sval, PyBytesObject, ob_sval);
#else
    OFF(bytes_sval, PyStringObject, ob_sval);
#endif

    /* ---- PEP 393 str ---------------------------------------------------- */
    group("PEP 393 str");
#if PY_MAJOR_VERSION >= 3
    {
        PyASCIIObject obj;

        if (sizeof(obj.state) != sizeof(uint32_t)) {
            fprintf(stderr, "probe: PyASCIIObject.state is %zu bytes, not 4\n",
                    sizeof(obj.state));
            return 1;
        }
        OFF(unicode_length, PyASCIIObject, length);
        OFF(unicode_state, PyASCIIObject, state);
        SIZE(unicode_ascii_size, PyASCIIObject);
        SIZE(unicode_compact_size, PyCompactUnicodeObject);

        memset(&obj, 0, sizeof obj);
        obj.state.kind = 7;
        put("unicode_kind_shift", bit_position("kind", state_word(&obj), 3));
        memset(&obj, 0, sizeof obj);
        obj.state.compact = 1;
        put("unicode_compact_shift", bit_position("compact", state_word(&obj), 1));
        memset(&obj, 0, sizeof obj);
        obj.state.ascii = 1;
        put("unicode_ascii_shift", bit_position("ascii", state_word(&obj), 1));
    }
#else
    NONE(unicode_length);
    NONE(unicode_state);
    NONE(unicode_ascii_size);
    NONE(unicode_compact_size);
    NONE(unicode_kind_shift);
    NONE(unicode_compact_shift);
    NONE(unicode_ascii_shift);
#endif

    printf("\n    },\n");
    return ferror(stdout) ? 1 : 0;
}
