/*
 * emit_collapsed.c - Pyflame's default output, the input of flamegraph.pl:
 *
 *     (idle) N                      unless -x, and only if there were idle samples
 *     (failed) N                    only if samples failed
 *     root;...;leaf COUNT           one line per distinct stack
 *
 * Frames are file:function:line.  Lines that print the same (for example
 * under -n, or the same stack seen in several threads) are merged.  Bytes
 * that would break the format (';', newlines, other control bytes) in names
 * read from the target are replaced with '?'.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"

struct line { char *text; size_t len; uint64_t count; };

struct lines {
    struct line *v;
    size_t n, cap;
    size_t *slot;      /* hash index: line index + 1, 0 = empty */
    size_t nslot;
};

static uint64_t hash_str(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int lines_add(struct lines *L, const char *text, size_t len, uint64_t count)
{
    if ((L->n + 1) * 2 > L->nslot) {
        size_t ns = L->nslot ? L->nslot * 2 : 256;
        size_t *nsl = calloc(ns, sizeof(*nsl));
        if (!nsl)
            return -ENOMEM;
        for (size_t i = 0; i < L->n; i++) {
            size_t j = hash_str(L->v[i].text, L->v[i].len) & (ns - 1);
            while (nsl[j])
                j = (j + 1) & (ns - 1);
            nsl[j] = i + 1;
        }
        free(L->slot);
        L->slot = nsl;
        L->nslot = ns;
    }
    size_t j = hash_str(text, len) & (L->nslot - 1);
    while (L->slot[j]) {
        struct line *l = &L->v[L->slot[j] - 1];
        if (l->len == len && memcmp(l->text, text, len) == 0) {
            l->count += count;
            return 0;
        }
        j = (j + 1) & (L->nslot - 1);
    }
    if (L->n == L->cap) {
        size_t nc = L->cap ? L->cap * 2 : 256;
        struct line *nv = realloc(L->v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        L->v = nv;
        L->cap = nc;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    L->v[L->n].text = copy;
    L->v[L->n].len = len;
    L->v[L->n].count = count;
    L->slot[j] = ++L->n;
    return 0;
}

static void lines_free(struct lines *L)
{
    for (size_t i = 0; i < L->n; i++)
        free(L->v[i].text);
    free(L->v);
    free(L->slot);
}

/* Appends a frame name with the format's special bytes replaced. */
static int buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n, int sanitize)
{
    if (*len + n + 2 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (*len + n + 2 > nc)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = nc;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        (*buf)[(*len)++] = sanitize && (c < 0x20 || c == ';' || c == 0x7f) ? '?' : (char)c;
    }
    return 0;
}

int emit_stack_line(const struct profile *p, const struct pf_count *c, const struct emit_options *o,
                    char **buf, size_t *len, size_t *cap, const char *sep_after_last)
{
    char name[8192];
    size_t n;
    int first = 1;
    *len = 0;
    if (o->per_process) {
        const struct pf_thread *t = profile_thread_get(p, c->thread);
        n = emit_process_name(p, t ? t->process : 0, name, sizeof(name));
        if (buf_add(buf, len, cap, name, n, 1) < 0)
            return -ENOMEM;
        first = 0;
    }
    if (o->per_thread) {
        if (!first && buf_add(buf, len, cap, ";", 1, 0) < 0)
            return -ENOMEM;
        n = emit_thread_name(p, c->thread, name, sizeof(name));
        if (buf_add(buf, len, cap, name, n, 1) < 0)
            return -ENOMEM;
        first = 0;
    }
    size_t nf = 0;
    const uint32_t *frames = profile_stack_get(p, c->stack, &nf);
    for (size_t i = 0; i < nf; i++) {
        if (!first && buf_add(buf, len, cap, ";", 1, 0) < 0)
            return -ENOMEM;
        n = emit_frame_name(p, frames[i], o, name, sizeof(name));
        if (buf_add(buf, len, cap, name, n, 1) < 0)
            return -ENOMEM;
        first = 0;
    }
    if (sep_after_last && buf_add(buf, len, cap, sep_after_last, strlen(sep_after_last), 0) < 0)
        return -ENOMEM;
    return 0;
}

int emit_collapsed(FILE *out, const struct profile *p, const struct emit_options *o)
{
    uint64_t idle = profile_total(p, SAMPLE_IDLE), failed = profile_total(p, SAMPLE_FAILED);
    if (idle && !o->exclude_idle)
        fprintf(out, "(idle) %llu\n", (unsigned long long)idle);
    if (failed)
        fprintf(out, "(failed) %llu\n", (unsigned long long)failed);

    struct lines L;
    memset(&L, 0, sizeof(L));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    size_t n;
    const struct pf_count *counts = profile_counts(p, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (counts[i].kind != SAMPLE_STACK)
            continue;
        rc = emit_stack_line(p, &counts[i], o, &buf, &len, &cap, NULL);
        if (rc == 0)
            rc = lines_add(&L, buf, len, counts[i].count);
    }
    for (size_t i = 0; i < L.n && rc == 0; i++) {
        fwrite(L.v[i].text, 1, L.v[i].len, out);
        fprintf(out, " %llu\n", (unsigned long long)L.v[i].count);
    }
    free(buf);
    lines_free(&L);
    if (rc == 0 && ferror(out))
        rc = -EIO;
    return rc;
}
