/*
 * error.h - one human-readable error message, built where the context is
 * known and printed once, by main.
 */
#ifndef PYFLAME_ERROR_H
#define PYFLAME_ERROR_H

#include <stdarg.h>

struct error {
    int code;          /* negative errno-style code, 0 when no error */
    char msg[600];     /* one line, no trailing newline, no "pyflame: " prefix */
};

/* Sets e (if not NULL) and returns rc, so callers can `return error_set(...)`. */
int error_set(struct error *e, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
