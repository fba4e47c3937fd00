/*
 * fuzz_linetable.c - libFuzzer target for abi/linetable.c: every line-table
 * format decodes the same untrusted bytes at offsets derived from the input.
 *
 * Input layout: byte 0: flags (bits 0-1 the format the seed came from, only
 * used to pick the "main" format), bytes 1-4: co_firstlineno (int32 LE),
 * bytes 5-6: an offset (uint16 LE); the rest is the table.  The table is
 * copied into a buffer of exactly its size so that ASan catches any read
 * past `len`.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linetable.h"

static void check(enum linetable_format fmt, const uint8_t *t, size_t len, int first, int off)
{
    int line = linetable_lookup(fmt, t, len, first, off);
    if (line < -1)
        abort();                        /* documented: a line >= 0, or -1 */
    if (off < 0 && line != (first >= 0 ? first : -1))
        abort();                        /* documented: offset < 0 -> co_firstlineno */
    /* Pure function: the same answer twice. */
    if (linetable_lookup(fmt, t, len, first, off) != line)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 7)
        return 0;
    int32_t first;
    memcpy(&first, data + 1, 4);
    uint16_t off16;
    memcpy(&off16, data + 5, 2);
    size_t len = size - 7;
    uint8_t *t = len ? malloc(len) : NULL;
    if (len && !t)
        return 0;
    if (len)
        memcpy(t, data + 7, len);

    static const enum linetable_format fmts[] = {
        LINETABLE_LNOTAB_U8, LINETABLE_LNOTAB, LINETABLE_310, LINETABLE_311,
    };
    static const int fixed[] = { -2, -1, 0, 1, 2, 6, INT_MAX, INT_MIN, INT_MAX - 1 };
    for (size_t f = 0; f < 4; f++) {
        enum linetable_format fmt = fmts[(f + (data[0] & 3)) & 3];
        check(fmt, t, len, first, off16);
        check(fmt, t, len, first, off16 * 2);
        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
            check(fmt, t, len, first, fixed[i]);
        /* 48 offsets spread over what the table could describe, and a bit
         * past it (an instruction boundary, and an odd offset every 4th). */
        size_t lim = len * 8 + 16;
        for (size_t k = 0; k < 48; k++) {
            size_t o = lim * k / 47;
            check(fmt, t, len, first, (int)((k & 3) == 3 ? o | 1 : o & ~(size_t)1));
        }
        /* A NULL table with a length must be treated as empty. */
        check(fmt, NULL, len, first, off16);
        /* Every prefix of the table (a table cut short by a failed read). */
        for (size_t l = 0; l < len && l < 16; l++)
            check(fmt, t, l, first, off16);
    }
    free(t);
    return 0;
}
