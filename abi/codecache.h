/*
 * codecache.h - what the readers know about code objects, keyed by the
 * code object's address: names (interned in the profile) and the line table.
 * An entry is checked against the target on every use (the name, file and
 * line-table pointers and co_firstlineno must be unchanged), so a code object
 * freed and replaced at the same address is noticed.  The cache has a fixed
 * size.
 */
#ifndef PYFLAME_CODECACHE_H
#define PYFLAME_CODECACHE_H

#include <stdint.h>
#include "reader.h"

struct code_info {
    uint64_t addr;
    uint64_t filename_p, name_p, qualname_p, linetable_p;
    int32_t firstlineno;
    uint32_t file, name, qualname;     /* profile string ids */
    uint8_t *linetable;
    uint32_t linetable_len;
    /* the last few offset -> line answers (decoding a table is linear) */
    int32_t memo_off[4], memo_line[4];
    uint32_t memo_next;
    uint8_t shim;                      /* not the user's code: leave its frames out */
};

/* The line of the instruction at byte offset `offset` of this code object. */
int codecache_line(struct pyreader *r, struct code_info *c, int offset);

struct codecache *codecache_new(void);
void codecache_free(struct codecache *c);

/* The code object at addr (read through r), or NULL when it cannot be read or
 * does not look like a code object. */
struct code_info *codecache_get(struct pyreader *r, uint64_t addr);

/* Reads a str (PEP 393; Py2: str) object into UTF-8.  Returns the length, or -EFAULT. */
int pyobj_read_string(struct pyreader *r, uint64_t addr, char *out, size_t cap);

/* Reads a bytes object's content (at most max bytes) into a malloc'ed buffer. */
int pyobj_read_bytes(struct pyreader *r, uint64_t addr, size_t max, uint8_t **out, uint32_t *len);

#endif
