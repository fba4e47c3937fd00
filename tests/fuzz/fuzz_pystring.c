/*
 * fuzz_pystring.c - libFuzzer target for abi/pystring.c.
 *
 * Input: byte 0: kind (taken modulo 6 so that bad kinds 0, 3, 5 appear),
 * byte 1: output capacity, the rest: character data (copied to a buffer
 * of exactly nchars*kind bytes; the output buffer is exactly outcap bytes,
 * so ASan catches any write past it).  The result must be valid UTF-8
 * (except for U+0000 copied as a 0 byte) of the declared length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pystring.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int kind = data[0] % 6;
    size_t outcap = data[1];
    size_t dlen = size - 2;
    size_t unit = (kind == 1 || kind == 2 || kind == 4) ? (size_t)kind : 1;
    size_t nchars = dlen / unit;

    void *chars = malloc(dlen ? dlen : 1);
    char *out = malloc(outcap ? outcap : 1);
    if (!chars || !out)
        abort();
    memcpy(chars, data + 2, dlen);

    size_t n = pystring_ucs_to_utf8(kind, chars, nchars, outcap ? out : NULL, outcap);
    if (outcap == 0) {
        if (n != 0)
            abort();
    } else {
        if (n >= outcap || out[n] != '\0')
            abort();
        if (kind != 1 && kind != 2 && kind != 4 && n != 0)
            abort();
        for (size_t i = 0; i < n;) {
            if (out[i] == '\0') {        /* U+0000 */
                i++;
                continue;
            }
            size_t l = utf8_seq((const unsigned char *)out + i, n - i);
            if (!l)
                abort();                 /* invalid or split UTF-8 */
            i += l;
        }
        /* With room for everything (4 bytes per char), every char is written. */
        if ((kind == 1 || kind == 2 || kind == 4) && outcap > 4 * nchars) {
            size_t count = 0;
            for (size_t i = 0; i < n; i++)
                count += (((unsigned char)out[i] & 0xC0) != 0x80);
            if (count != nchars)
                abort();
        }
    }
    /* NULL data writes "" and returns 0. */
    if (outcap && pystring_ucs_to_utf8(kind, NULL, nchars, out, outcap) != 0)
        abort();
    free(chars);
    free(out);
    return 0;
}
