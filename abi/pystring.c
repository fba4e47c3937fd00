/*
 * pystring.c - PEP 393 UCS1/UCS2/UCS4 character data -> UTF-8.
 */
#include "pystring.h"

#include <stdint.h>
#include <string.h>

size_t pystring_ucs_to_utf8(int kind, const void *data, size_t nchars, char *out, size_t outcap)
{
    if (out == NULL || outcap == 0)
        return 0;
    out[0] = '\0';
    if (data == NULL || (kind != 1 && kind != 2 && kind != 4))
        return 0;

    const unsigned char *src = data;
    size_t room = outcap - 1;       /* bytes available before the NUL */
    size_t n = 0;

    for (size_t i = 0; i < nchars; i++) {
        uint32_t cp;
        if (kind == 1) {
            cp = src[i];
        } else if (kind == 2) {
            uint16_t u;
            memcpy(&u, src + i * 2, sizeof u);
            cp = u;
        } else {
            uint32_t u;
            memcpy(&u, src + i * 4, sizeof u);
            cp = u;
        }
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            cp = 0xFFFD;

        unsigned char buf[4];
        size_t len;
        if (cp < 0x80) {
            buf[0] = (unsigned char)cp;
            len = 1;
        } else if (cp < 0x800) {
            buf[0] = (unsigned char)(0xC0 | (cp >> 6));
            buf[1] = (unsigned char)(0x80 | (cp & 0x3F));
            len = 2;
        } else if (cp < 0x10000) {
            buf[0] = (unsigned char)(0xE0 | (cp >> 12));
            buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            buf[2] = (unsigned char)(0x80 | (cp & 0x3F));
            len = 3;
        } else {
            buf[0] = (unsigned char)(0xF0 | (cp >> 18));
            buf[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
            buf[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            buf[3] = (unsigned char)(0x80 | (cp & 0x3F));
            len = 4;
        }
        if (len > room - n)
            break;                  /* never split a sequence */
        memcpy(out + n, buf, len);
        n += len;
    }
    out[n] = '\0';
    return n;
}
