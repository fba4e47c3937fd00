/*
 * linetable.h - map a bytecode offset to a source line, for every CPython
 * line-table format from 2.7 to 3.13.
 *
 * Pure functions over a byte buffer the caller already copied out of the
 * target process.  The buffer is untrusted: every read is bounded by `len`,
 * every loop is bounded, and garbage yields -1 (or some line), never a crash.
 *
 * Which offset to pass (all in BYTES from the start of the bytecode):
 *   2.7 .. 3.9   f_lasti                        (already a byte offset)
 *   3.10         2 * f_lasti                    (f_lasti counts code units)
 *   3.11, 3.12   (char *)prev_instr - (char *)co_code_adaptive
 *                prev_instr is the LAST instruction started; for a frame that
 *                is calling another, it points at the last CACHE unit of the
 *                CALL instruction, which the table attributes to the CALL.
 *                A frame that has not started yet has prev_instr = code - 1,
 *                i.e. offset -2: the answer is co_firstlineno, as CPython.
 *   3.13         (char *)instr_ptr - (char *)co_code_adaptive
 *                instr_ptr is the instruction executing (or about to start).
 *
 * Semantics follow PyCode_Addr2Line of each version exactly:
 *   - lnotab formats: the line of the last table entry whose address is
 *     <= offset; offsets past the end of the table get the last line; an
 *     empty table gives co_firstlineno.  Odd trailing byte is ignored.
 *   - 3.10 / 3.11+: range based; an offset not covered by the table -> -1,
 *     an entry marked "no line" (3.10: line delta -128, 3.11+: code 15) -> -1.
 *   - every format: offset < 0 -> co_firstlineno (as CPython).
 * In addition (where CPython would read out of bounds or assert), a malformed
 * table gives -1, and a line that would be negative or overflow gives -1.
 */
#ifndef PYFLAME_ABI_LINETABLE_H
#define PYFLAME_ABI_LINETABLE_H

#include <stddef.h>
#include <stdint.h>

enum linetable_format {
    LINETABLE_LNOTAB_U8,  /* co_lnotab with unsigned line deltas (2.7 .. 3.5) */
    LINETABLE_LNOTAB,     /* co_lnotab with signed int8 line deltas (3.6 .. 3.9) */
    LINETABLE_310,        /* PEP 626 co_linetable of 3.10 */
    LINETABLE_311,        /* the 3.11+ location table (3.11, 3.12, 3.13) */
};

/* The table format used by CPython major.minor (anything newer than 3.11
 * is assumed to keep the 3.11 format; anything older than 3.6 uses U8). */
enum linetable_format linetable_format_for(int major, int minor);

/* Line of the instruction at byte offset `offset` into the bytecode
 * (<=3.9: f_lasti; 3.10: 2*f_lasti; 3.11+: byte distance of the instruction
 * from co_code_adaptive).  Returns the line (>= 0), or -1 when the table says
 * "no line" or is malformed/too short.  `table` may be NULL when len == 0. */
int linetable_lookup(enum linetable_format fmt, const uint8_t *table, size_t len,
                     int firstlineno, int offset);

#endif
