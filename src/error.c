/* error.c - see error.h. */
#include "error.h"

#include <stdio.h>

int error_set(struct error *e, int rc, const char *fmt, ...)
{
    if (!e)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->code = rc;
    return rc;
}
