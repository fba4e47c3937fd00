/*
 * fuzz_pyversion.c - libFuzzer target for src/pyversion.c: the input as a
 * version string and as a SONAME (NUL-terminated copy), its first 8 bytes
 * as a PY_VERSION_HEX value; every accepted version must be plausible and
 * format into a small buffer without overflow.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pyversion.h"

static void check(const struct pyversion *v)
{
    if (!((v->major == 2 && v->minor >= 0 && v->minor <= 7) ||
          (v->major == 3 && v->minor >= 0 && v->minor <= 99)))
        abort();
    if (v->micro < -1 || v->micro > 255)
        abort();
    char small[6], big[32];
    pyversion_format(v, small, sizeof(small));      /* truncates, must not overflow */
    pyversion_format(v, big, sizeof(big));
    if (strlen(big) < 3)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct pyversion v;
    if (pyversion_from_string(s, &v) == 0)
        check(&v);
    if (pyversion_from_soname(s, &v) == 0)
        check(&v);
    uint64_t hex = 0;
    memcpy(&hex, data, size < 8 ? size : 8);
    if (pyversion_from_hex(hex, &v) == 0)
        check(&v);
    if (pyversion_from_hex(hex & 0xffffffffu, &v) == 0)
        check(&v);
    free(s);
    return 0;
}
