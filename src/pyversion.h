/*
 * pyversion.h - recognising a CPython version from what a binary carries:
 * PY_VERSION_HEX values (Py_Version, _Py_DebugOffsets.version), a libpython
 * SONAME, or a PY_VERSION string such as "3.8.18".
 */
#ifndef PYFLAME_PYVERSION_H
#define PYFLAME_PYVERSION_H

#include <stdint.h>

struct pyversion {
    int major, minor, micro;   /* micro is -1 when unknown */
};

/* Each returns 0 on success, -EINVAL when the input is not a version. */
int pyversion_from_hex(uint64_t hex, struct pyversion *v);
int pyversion_from_soname(const char *soname, struct pyversion *v);
int pyversion_from_string(const char *s, struct pyversion *v);

/* "3.12.1", or "3.12" when the micro version is unknown. */
void pyversion_format(const struct pyversion *v, char *buf, int cap);

#endif
