/*
 * linetable.c - bytecode offset -> source line for CPython 2.7 .. 3.13.
 * See linetable.h for the semantics and which offset to pass per version.
 *
 * References (CPython sources): Objects/lnotab_notes.txt (2.7 .. 3.10),
 * Objects/locations.md (3.11+), PyCode_Addr2Line and _PyCode_CheckLineNumber
 * in Objects/codeobject.c of each version.
 *
 * Every input byte is untrusted: reads are bounded by `len`, every loop
 * consumes at least one byte per iteration, arithmetic is done in int64_t
 * with explicit range checks.
 */
#include "linetable.h"

#include <limits.h>

/* A line further than this from zero can only come from garbage; stop
 * accumulating before int64_t could ever overflow. */
#define LINE_SANE_MAX ((int64_t)1 << 40)

static int line_result(int64_t line)
{
    return (line >= 0 && line <= INT_MAX) ? (int)line : -1;
}

enum linetable_format linetable_format_for(int major, int minor)
{
    if (major < 3 || (major == 3 && minor < 6))
        return LINETABLE_LNOTAB_U8;
    if (major == 3 && minor < 10)
        return LINETABLE_LNOTAB;
    if (major == 3 && minor == 10)
        return LINETABLE_310;
    return LINETABLE_311;
}

/* 2.7 .. 3.9: pairs (address increment u8, line increment u8 or s8).
 * PyCode_Addr2Line: the line after applying every pair whose cumulative
 * address is <= offset. */
static int lookup_lnotab(const uint8_t *t, size_t len, int firstlineno, int offset,
                         int is_signed)
{
    int64_t line = firstlineno;
    int64_t addr = 0;
    size_t npairs = len / 2;

    for (size_t i = 0; i < npairs; i++) {
        addr += t[2 * i];
        if (addr > offset)
            break;
        if (is_signed)
            line += (int8_t)t[2 * i + 1];
        else
            line += t[2 * i + 1];
        /* |step| <= 255: int64_t cannot overflow for any addressable len. */
    }
    return line_result(line);
}

/* 3.10 (PEP 626): pairs (byte length u8, line delta s8; -128 = no line).
 * Ranges are contiguous from 0; zero-length entries only carry line deltas
 * and are skipped (their deltas still accumulate).  An offset beyond the
 * last range has no line. */
static int lookup_310(const uint8_t *t, size_t len, int firstlineno, int offset)
{
    int64_t ar_start = -1, ar_end = 0;
    int64_t computed = firstlineno;
    int64_t ar_line = -1;
    size_t i = 0;

    while (ar_end <= offset) {
        /* PyLineTable_NextAddressRange: advance at least once, then over
         * empty ranges.  CPython asserts (and would read past the end) when
         * the table ends inside the empty-range run; we report -1. */
        do {
            if (len - i < 2)   /* i <= len always holds */
                return -1;
            ar_start = ar_end;
            ar_end += t[i];
            int ldelta = (int8_t)t[i + 1];
            i += 2;
            if (ldelta == -128) {
                ar_line = -1;
            } else {
                computed += ldelta;
                ar_line = computed;
            }
        } while (ar_start == ar_end);
    }
    return ar_line < 0 ? -1 : line_result(ar_line);
}

/* Unsigned varint of Objects/locations.md: 6-bit little-endian chunks, bit 6
 * means "another chunk follows".  Reads from t[*pos] while *pos < limit.
 * Returns 0 on success, -1 if truncated, too long, or running into a byte
 * with bit 7 set (the start of the next entry). */
static int read_varint(const uint8_t *t, size_t limit, size_t *pos, uint64_t *out)
{
    uint64_t val = 0;
    unsigned shift = 0;

    for (;;) {
        if (*pos >= limit)
            return -1;
        uint8_t b = t[(*pos)++];
        if (b & 0x80)
            return -1;
        val |= (uint64_t)(b & 63) << shift;
        if (!(b & 64))
            break;
        shift += 6;
        if (shift > 30)        /* CPython writes at most 6 chunks (32 bits) */
            return -1;
    }
    *out = val;
    return 0;
}

static int read_signed_varint(const uint8_t *t, size_t limit, size_t *pos, int64_t *out)
{
    uint64_t u;
    if (read_varint(t, limit, pos, &u) < 0)
        return -1;
    /* u < 2^36, so both branches fit comfortably in int64_t. */
    *out = (u & 1) ? -(int64_t)(u >> 1) : (int64_t)(u >> 1);
    return 0;
}

/* 3.11+: one entry per 1..8 code units (2 bytes each).  First byte: bit 7
 * set, bits 3-6 code, bits 0-2 length-1.  See linetable.h. */
static int lookup_311(const uint8_t *t, size_t len, int firstlineno, int offset)
{
    int64_t ar_end = 0;
    int64_t computed = firstlineno;
    int64_t ar_line = -1;
    size_t i = 0;

    while (ar_end <= offset) {
        if (i >= len)
            return -1;                 /* offset not covered by the table */
        uint8_t first = t[i];
        if (!(first & 0x80))
            return -1;                 /* not an entry start: malformed */
        int code = (first >> 3) & 15;
        int64_t delta = 0;

        switch (code) {
        case 13:                       /* no columns: signed varint line delta */
        case 14: {                     /* long form: line delta first */
            size_t pos = i + 1;
            if (read_signed_varint(t, len, &pos, &delta) < 0)
                return -1;
            break;
        }
        case 11:
            delta = 1;
            break;
        case 12:
            delta = 2;
            break;
        default:                       /* 0-9 short form, 10, 15: no change */
            delta = 0;
            break;
        }
        computed += delta;
        if (computed > LINE_SANE_MAX || computed < -LINE_SANE_MAX)
            return -1;
        ar_line = (code == 15) ? -1 : computed;
        ar_end += ((first & 7) + 1) * 2;

        /* Next entry: the next byte with bit 7 set (as CPython's advance). */
        i++;
        while (i < len && !(t[i] & 0x80))
            i++;
    }
    return ar_line < 0 ? -1 : line_result(ar_line);
}

int linetable_lookup(enum linetable_format fmt, const uint8_t *table, size_t len,
                     int firstlineno, int offset)
{
    if (table == NULL)
        len = 0;
    if (offset < 0)
        return firstlineno >= 0 ? firstlineno : -1;   /* as PyCode_Addr2Line */

    switch (fmt) {
    case LINETABLE_LNOTAB_U8:
        return lookup_lnotab(table, len, firstlineno, offset, 0);
    case LINETABLE_LNOTAB:
        return lookup_lnotab(table, len, firstlineno, offset, 1);
    case LINETABLE_310:
        return lookup_310(table, len, firstlineno, offset);
    case LINETABLE_311:
        return lookup_311(table, len, firstlineno, offset);
    }
    return -1;
}
