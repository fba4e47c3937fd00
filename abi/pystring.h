/*
 * pystring.h - turn a CPython string's raw character data into UTF-8.
 *
 * For PEP 393 (3.3+) compact strings: kind 1 = UCS1 (Latin-1), 2 = UCS2,
 * 4 = UCS4, in the host's byte order (same machine as the target).  Py2 `str`
 * and ASCII-only strings are bytes already: the caller copies them as is.
 */
#ifndef PYFLAME_ABI_PYSTRING_H
#define PYFLAME_ABI_PYSTRING_H

#include <stddef.h>

/* kind: 1, 2 or 4 bytes per character (PEP 393 UCS1/UCS2/UCS4). nchars characters at data.
 * Writes at most outcap-1 bytes + NUL to out, never splitting a UTF-8 sequence; code points
 * that are not valid scalar values (surrogates, > 0x10FFFF) become U+FFFD. Returns bytes written (without NUL).
 *
 * Reads exactly nchars*kind bytes at data (no alignment required); stops at
 * the first character that does not fit.  Each UCS2 unit is one code point
 * (PEP 393 never stores surrogate pairs), so surrogates are never combined.
 * U+0000 is copied as a 0 byte.  An unknown kind, NULL data or NULL out
 * writes nothing (out gets "" when outcap > 0) and returns 0. */
size_t pystring_ucs_to_utf8(int kind, const void *data, size_t nchars, char *out, size_t outcap);

#endif
