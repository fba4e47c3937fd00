/*
 * flamegraph.c - the call tree behind a flame graph: interned frame names,
 * nodes found by a hash of (parent, name), and the collapsed-stack parser.
 * The SVG writer is fg_svg.c.
 */
#include "flamegraph.h"
#include "fg_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FG_MAX_ITEMS (UINT32_MAX / 4)   /* nodes or names: keeps table sizes in range */

void fg_options_init(struct fg_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof(*o));
    o->title = "Flame Graph";
    o->subtitle = NULL;
    o->countname = "samples";
    o->width = 1200;
    o->minwidth = 0.1;
    o->inverted = 0;
    o->palette = "python";
}

/* ---- hashing ---------------------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;            /* FNV-1a, 64 bit */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t hash_pair(uint32_t a, uint32_t b)
{
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return (uint32_t)(h ^ (h >> 32));
}

/* ---- interned names ------------------------------------------------------------ */

static int str_tab_grow(struct fg *g)
{
    uint32_t size = g->str_mask ? (g->str_mask + 1) * 2 : 1024;
    uint32_t *tab = calloc(size, sizeof(*tab));
    if (!tab)
        return -ENOMEM;
    for (uint32_t id = 0; id < g->nstr; id++) {
        uint32_t i = hash_bytes(fg_str(g, id), g->str_len[id]) & (size - 1);
        while (tab[i])
            i = (i + 1) & (size - 1);
        tab[i] = id + 1;
    }
    free(g->str_tab);
    g->str_tab = tab;
    g->str_mask = size - 1;
    return 0;
}

/* The id of the name s[0..n) (n bytes, no NUL among them), added if new;
 * FG_NONE when out of memory. */
static uint32_t intern(struct fg *g, const char *s, size_t n)
{
    if (n > UINT32_MAX - 1)
        n = UINT32_MAX - 1;
    if ((uint64_t)(g->nstr + 1) * 2 > (uint64_t)g->str_mask + 1 && str_tab_grow(g) < 0)
        return FG_NONE;
    uint32_t h = hash_bytes(s, n);
    uint32_t i = h & g->str_mask;
    while (g->str_tab[i]) {
        uint32_t id = g->str_tab[i] - 1;
        if (g->str_len[id] == n && memcmp(fg_str(g, id), s, n) == 0)
            return id;
        i = (i + 1) & g->str_mask;
    }
    if (g->nstr >= FG_MAX_ITEMS)
        return FG_NONE;
    if (g->nstr == g->capstr) {
        uint32_t cap = g->capstr ? g->capstr * 2 : 256;
        size_t *off = realloc(g->str_off, cap * sizeof(*off));
        if (!off)
            return FG_NONE;
        g->str_off = off;
        uint32_t *len = realloc(g->str_len, cap * sizeof(*len));
        if (!len)
            return FG_NONE;
        g->str_len = len;
        g->capstr = cap;
    }
    if (g->arena_cap - g->arena_len < n + 1) {
        size_t cap = g->arena_cap ? g->arena_cap : 4096;
        while (cap - g->arena_len < n + 1) {
            if (cap > SIZE_MAX / 2)
                return FG_NONE;
            cap *= 2;
        }
        char *a = realloc(g->arena, cap);
        if (!a)
            return FG_NONE;
        g->arena = a;
        g->arena_cap = cap;
    }
    uint32_t id = g->nstr++;
    g->str_off[id] = g->arena_len;
    g->str_len[id] = (uint32_t)n;
    memcpy(g->arena + g->arena_len, s, n);
    g->arena[g->arena_len + n] = '\0';
    g->arena_len += n + 1;
    g->str_tab[i] = id + 1;
    return id;
}

/* ---- nodes ------------------------------------------------------------------- */

static int child_tab_grow(struct fg *g)
{
    uint32_t size = g->child_mask ? (g->child_mask + 1) * 2 : 1024;
    uint32_t *tab = calloc(size, sizeof(*tab));
    if (!tab)
        return -ENOMEM;
    for (uint32_t id = 1; id < g->nnodes; id++) {
        const struct fg_node *nd = &g->nodes[id];
        uint32_t i = hash_pair(nd->parent, nd->name) & (size - 1);
        while (tab[i])
            i = (i + 1) & (size - 1);
        tab[i] = id + 1;
    }
    free(g->child_tab);
    g->child_tab = tab;
    g->child_mask = size - 1;
    return 0;
}

/* The child of `parent` named `name`, created if new; FG_NONE when out of memory. */
static uint32_t child(struct fg *g, uint32_t parent, uint32_t name)
{
    if ((uint64_t)(g->nnodes + 1) * 2 > (uint64_t)g->child_mask + 1 && child_tab_grow(g) < 0)
        return FG_NONE;
    uint32_t i = hash_pair(parent, name) & g->child_mask;
    while (g->child_tab[i]) {
        uint32_t id = g->child_tab[i] - 1;
        if (g->nodes[id].parent == parent && g->nodes[id].name == name)
            return id;
        i = (i + 1) & g->child_mask;
    }
    if (g->nnodes >= FG_MAX_ITEMS)
        return FG_NONE;
    if (g->nnodes == g->capnodes) {
        uint32_t cap = g->capnodes * 2;
        struct fg_node *nodes = realloc(g->nodes, cap * sizeof(*nodes));
        if (!nodes)
            return FG_NONE;
        g->nodes = nodes;
        g->capnodes = cap;
    }
    uint32_t id = g->nnodes++;
    struct fg_node *nd = &g->nodes[id];
    nd->name = name;
    nd->parent = parent;
    nd->first_child = FG_NONE;
    nd->next_sibling = g->nodes[parent].first_child;
    nd->total = 0;
    g->nodes[parent].first_child = id;
    g->child_tab[i] = id + 1;
    return id;
}

struct fg *fg_new(void)
{
    struct fg *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->capnodes = 1024;
    g->nodes = malloc(g->capnodes * sizeof(*g->nodes));
    if (!g->nodes) {
        free(g);
        return NULL;
    }
    g->nnodes = 1;
    g->nodes[0] = (struct fg_node){ .name = FG_NONE, .parent = FG_NONE,
                                    .first_child = FG_NONE, .next_sibling = FG_NONE };
    return g;
}

void fg_free(struct fg *g)
{
    if (!g)
        return;
    free(g->nodes);
    free(g->child_tab);
    free(g->arena);
    free(g->str_off);
    free(g->str_len);
    free(g->str_tab);
    free(g);
}

/* Add count to leaf and every ancestor, saturating. */
static void add_count(struct fg *g, uint32_t leaf, uint64_t count)
{
    for (uint32_t id = leaf; id != FG_NONE; id = g->nodes[id].parent) {
        uint64_t t = g->nodes[id].total;
        g->nodes[id].total = t > UINT64_MAX - count ? UINT64_MAX : t + count;
    }
}

int fg_add(struct fg *g, const char *const *frames, size_t n, uint64_t count)
{
    if (!g || (n && !frames))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!frames[i])
            return -EINVAL;
    if (count == 0)
        return 0;
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t name = intern(g, frames[i], strlen(frames[i]));
        if (name == FG_NONE)
            return -ENOMEM;
        node = child(g, node, name);
        if (node == FG_NONE)
            return -ENOMEM;
    }
    add_count(g, node, count);
    return 0;
}

/* ---- collapsed stacks ------------------------------------------------------------ */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* s[0..n) as a flamegraph.pl count: digits, optionally "." and more digits.
 * Rounded to the nearest integer.  0 on success, -1 if it is not one. */
static int parse_count(const char *s, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    if (n == 0 || s[0] < '0' || s[0] > '9')
        return -1;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (i < n) {
        if (s[i] != '.')
            return -1;
        size_t frac = ++i;
        for (; i < n; i++)
            if (s[i] < '0' || s[i] > '9')
                return -1;
        if (frac < n && s[frac] >= '5') {
            if (v == UINT64_MAX)
                return -1;
            v++;
        }
    }
    *out = v;
    return 0;
}

/* Split s[0..*n) as "rest<ws>token"; on success *n is the length of rest
 * (trailing whitespace removed) and the token is returned in tok/toklen. */
static int split_last(const char *s, size_t *n, const char **tok, size_t *toklen)
{
    size_t end = *n;
    size_t i = end;
    while (i > 0 && !is_ws(s[i - 1]))
        i--;
    if (i == 0)
        return -1;                  /* no whitespace before the token */
    *tok = s + i;
    *toklen = end - i;
    while (i > 0 && is_ws(s[i - 1]))
        i--;
    *n = i;
    return 0;
}

static int starts_with(const char *s, size_t n, const char *prefix)
{
    size_t lp = strlen(prefix);
    return n >= lp && memcmp(s, prefix, lp) == 0;
}

int fg_add_collapsed(struct fg *g, const char *line, size_t len)
{
    if (!g || (len && !line))
        return -EINVAL;
    const char *nul = len ? memchr(line, '\0', len) : NULL;
    if (nul)
        len = (size_t)(nul - line);
    while (len > 0 && is_ws(line[len - 1]))
        len--;

    const char *tok;
    size_t toklen;
    uint64_t count;
    if (split_last(line, &len, &tok, &toklen) < 0 || parse_count(tok, toklen, &count) < 0)
        return -EINVAL;

    /* The differential form "stack count1 count2": keep count1.  A synthetic
     * root as the last frame ("process 12", "thread x (34)") is left alone. */
    size_t stacklen = len;
    const char *tok1;
    size_t tok1len;
    uint64_t count1;
    if (split_last(line, &stacklen, &tok1, &tok1len) == 0 &&
        parse_count(tok1, tok1len, &count1) == 0) {
        const char *last = line;
        for (size_t i = len; i > 0; i--) {
            if (line[i - 1] == ';') {
                last = line + i;
                break;
            }
        }
        size_t lastlen = (size_t)(line + len - last);
        if (!starts_with(last, lastlen, "thread ") && !starts_with(last, lastlen, "process ")) {
            len = stacklen;
            count = count1;
        }
    }

    if (count == 0)
        return 0;
    uint32_t node = 0;
    if (len > 0) {
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
            if (i < len && line[i] != ';')
                continue;
            uint32_t name = intern(g, line + start, i - start);
            if (name == FG_NONE)
                return -ENOMEM;
            node = child(g, node, name);
            if (node == FG_NONE)
                return -ENOMEM;
            start = i + 1;
        }
    }
    add_count(g, node, count);
    return 0;
}
