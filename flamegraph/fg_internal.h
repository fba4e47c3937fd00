/*
 * fg_internal.h - what flamegraph.c (the call tree) and fg_svg.c (the
 * writer) share.  Not part of the public API.
 */
#ifndef PYFLAME_FG_INTERNAL_H
#define PYFLAME_FG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define FG_NONE UINT32_MAX

/* One node of the call tree.  Node 0 is the root ("all"). */
struct fg_node {
    uint32_t name;          /* string id; unused for the root */
    uint32_t parent;        /* FG_NONE for the root */
    uint32_t first_child;   /* FG_NONE when none */
    uint32_t next_sibling;  /* FG_NONE when none */
    uint64_t total;         /* samples in this frame and below */
};

struct fg {
    /* call tree */
    struct fg_node *nodes;
    uint32_t nnodes, capnodes;
    uint32_t *child_tab;    /* open addressing: node id + 1, 0 = empty; key (parent, name) */
    uint32_t child_mask;    /* table size - 1 */

    /* interned frame names: NUL-terminated bytes in one arena */
    char *arena;
    size_t arena_len, arena_cap;
    size_t *str_off;        /* string id -> offset in arena */
    uint32_t *str_len;
    uint32_t nstr, capstr;
    uint32_t *str_tab;      /* open addressing: string id + 1, 0 = empty */
    uint32_t str_mask;
};

static inline const char *fg_str(const struct fg *g, uint32_t id)
{
    return g->arena + g->str_off[id];
}

/* The inline JavaScript of the SVG (fg_script.c). */
extern const char fg_script_js[];

#endif
