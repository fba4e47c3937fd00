/*
 * profile.c - interning and counting of samples.
 *
 * Everything is stored in growable arrays indexed by id; each kind of thing
 * that is interned has an open-addressing hash index (power-of-two size,
 * linear probing) that maps content to id.
 */
#include "profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t hash_bytes(const void *data, size_t len, uint64_t seed)
{
    /* FNV-1a, 64-bit, folded with a final mix. */
    const unsigned char *s = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *a = realloc(*arr, n * elem);
    if (!a)
        return -ENOMEM;
    *arr = a;
    *cap = n;
    return 0;
}

/* An index from hash to id.  Slots hold id+1 (0 = empty). */
struct index {
    uint32_t *slot;
    uint64_t *hash;
    size_t cap;     /* power of two */
    size_t used;
};

typedef int (*index_eq_fn)(const struct profile *p, uint32_t id, const void *key);

static int index_rehash(struct index *ix)
{
    size_t ncap = ix->cap ? ix->cap * 2 : 64;
    uint32_t *ns = calloc(ncap, sizeof(*ns));
    uint64_t *nh = calloc(ncap, sizeof(*nh));
    if (!ns || !nh) {
        free(ns);
        free(nh);
        return -ENOMEM;
    }
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->slot[i])
            continue;
        size_t j = ix->hash[i] & (ncap - 1);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = ix->slot[i];
        nh[j] = ix->hash[i];
    }
    free(ix->slot);
    free(ix->hash);
    ix->slot = ns;
    ix->hash = nh;
    ix->cap = ncap;
    return 0;
}

/* Finds the id for key, or returns PF_NONE and sets *where to the free slot. */
static uint32_t index_find(const struct profile *p, const struct index *ix, uint64_t h,
                           const void *key, index_eq_fn eq, size_t *where)
{
    if (!ix->cap) {
        *where = SIZE_MAX;
        return PF_NONE;
    }
    size_t j = h & (ix->cap - 1);
    while (ix->slot[j]) {
        if (ix->hash[j] == h && eq(p, ix->slot[j] - 1, key))
            return ix->slot[j] - 1;
        j = (j + 1) & (ix->cap - 1);
    }
    *where = j;
    return PF_NONE;
}

static int index_insert(struct index *ix, uint64_t h, uint32_t id)
{
    if ((ix->used + 1) * 4 > ix->cap * 3 && index_rehash(ix) < 0)
        return -ENOMEM;
    size_t j = h & (ix->cap - 1);
    while (ix->slot[j])
        j = (j + 1) & (ix->cap - 1);
    ix->slot[j] = id + 1;
    ix->hash[j] = h;
    ix->used++;
    return 0;
}

static void index_free(struct index *ix)
{
    free(ix->slot);
    free(ix->hash);
}

/* ---- the profile ------------------------------------------------------------ */

struct strent { uint32_t off, len; };
struct stackent { uint32_t off, len; };
struct countkey { uint32_t thread, stack, kind; };

struct profile {
    char *strbuf; size_t strbuf_len, strbuf_cap;
    struct strent *strs; size_t nstrs, strs_cap;
    struct index str_ix;

    struct pf_frame *frames; size_t nframes, frames_cap;
    struct index frame_ix;

    uint32_t *stackbuf; size_t stackbuf_len, stackbuf_cap;
    struct stackent *stacks; size_t nstacks, stacks_cap;
    struct index stack_ix;

    struct pf_process *procs; size_t nprocs, procs_cap;
    struct pf_thread *threads; size_t nthreads, threads_cap;
    struct index thread_ix;

    struct pf_count *counts; size_t ncounts, counts_cap;
    struct index count_ix;

    int keep_events;
    struct pf_event *events; size_t nevents, events_cap;

    uint64_t totals[3];
    struct profile_meta meta;
};

struct profile *profile_new(int keep_events)
{
    struct profile *p = calloc(1, sizeof(*p));
    if (p)
        p->keep_events = keep_events;
    return p;
}

void profile_free(struct profile *p)
{
    if (!p)
        return;
    free(p->strbuf);
    free(p->strs);
    index_free(&p->str_ix);
    free(p->frames);
    index_free(&p->frame_ix);
    free(p->stackbuf);
    free(p->stacks);
    index_free(&p->stack_ix);
    free(p->procs);
    free(p->threads);
    index_free(&p->thread_ix);
    free(p->counts);
    index_free(&p->count_ix);
    free(p->events);
    free(p);
}

/* strings */

struct strkey { const char *s; size_t len; };

static int str_eq(const struct profile *p, uint32_t id, const void *k)
{
    const struct strkey *key = k;
    return p->strs[id].len == key->len && memcmp(p->strbuf + p->strs[id].off, key->s, key->len) == 0;
}

uint32_t profile_string(struct profile *p, const char *s, size_t len)
{
    struct strkey key = { s, len };
    uint64_t h = hash_bytes(s, len, 1);
    size_t where;
    uint32_t id = index_find(p, &p->str_ix, h, &key, str_eq, &where);
    if (id != PF_NONE)
        return id;
    if (len > UINT32_MAX / 2 || p->strbuf_len + len + 1 > UINT32_MAX)
        return PF_NONE;
    if (grow((void **)&p->strbuf, &p->strbuf_cap, p->strbuf_len + len + 1, 1) < 0 ||
        grow((void **)&p->strs, &p->strs_cap, p->nstrs + 1, sizeof(*p->strs)) < 0)
        return PF_NONE;
    memcpy(p->strbuf + p->strbuf_len, s, len);
    p->strbuf[p->strbuf_len + len] = '\0';
    id = (uint32_t)p->nstrs;
    p->strs[id].off = (uint32_t)p->strbuf_len;
    p->strs[id].len = (uint32_t)len;
    if (index_insert(&p->str_ix, h, id) < 0)
        return PF_NONE;
    p->nstrs++;
    p->strbuf_len += len + 1;
    return id;
}

const char *profile_str(const struct profile *p, uint32_t id)
{
    if (id >= p->nstrs)
        return "";
    return p->strbuf + p->strs[id].off;
}

/* frames */

static int frame_eq(const struct profile *p, uint32_t id, const void *k)
{
    return memcmp(&p->frames[id], k, sizeof(struct pf_frame)) == 0;
}

uint32_t profile_frame(struct profile *p, const struct pf_frame *f)
{
    struct pf_frame key;
    memset(&key, 0, sizeof(key));   /* no padding garbage in the hashed bytes */
    key.file = f->file;
    key.name = f->name;
    key.qualname = f->qualname;
    key.line = f->line;
    key.firstlineno = f->firstlineno;
    uint64_t h = hash_bytes(&key, sizeof(key), 2);
    size_t where;
    uint32_t id = index_find(p, &p->frame_ix, h, &key, frame_eq, &where);
    if (id != PF_NONE)
        return id;
    if (grow((void **)&p->frames, &p->frames_cap, p->nframes + 1, sizeof(*p->frames)) < 0)
        return PF_NONE;
    id = (uint32_t)p->nframes;
    p->frames[id] = key;
    if (index_insert(&p->frame_ix, h, id) < 0)
        return PF_NONE;
    p->nframes++;
    return id;
}

const struct pf_frame *profile_frame_get(const struct profile *p, uint32_t id)
{
    return id < p->nframes ? &p->frames[id] : NULL;
}

/* stacks */

struct stackkey { const uint32_t *f; size_t n; };

static int stack_eq(const struct profile *p, uint32_t id, const void *k)
{
    const struct stackkey *key = k;
    return p->stacks[id].len == key->n &&
           memcmp(p->stackbuf + p->stacks[id].off, key->f, key->n * sizeof(uint32_t)) == 0;
}

uint32_t profile_stack(struct profile *p, const uint32_t *frames, size_t n)
{
    struct stackkey key = { frames, n };
    uint64_t h = hash_bytes(frames, n * sizeof(uint32_t), 3);
    size_t where;
    uint32_t id = index_find(p, &p->stack_ix, h, &key, stack_eq, &where);
    if (id != PF_NONE)
        return id;
    if (p->stackbuf_len + n > UINT32_MAX)
        return PF_NONE;
    if (grow((void **)&p->stackbuf, &p->stackbuf_cap, p->stackbuf_len + n + 1, sizeof(uint32_t)) < 0 ||
        grow((void **)&p->stacks, &p->stacks_cap, p->nstacks + 1, sizeof(*p->stacks)) < 0)
        return PF_NONE;
    if (n)
        memcpy(p->stackbuf + p->stackbuf_len, frames, n * sizeof(uint32_t));
    id = (uint32_t)p->nstacks;
    p->stacks[id].off = (uint32_t)p->stackbuf_len;
    p->stacks[id].len = (uint32_t)n;
    if (index_insert(&p->stack_ix, h, id) < 0)
        return PF_NONE;
    p->nstacks++;
    p->stackbuf_len += n;
    return id;
}

const uint32_t *profile_stack_get(const struct profile *p, uint32_t id, size_t *n)
{
    if (id >= p->nstacks) {
        *n = 0;
        return NULL;
    }
    *n = p->stacks[id].len;
    return p->stackbuf + p->stacks[id].off;
}

/* processes and threads */

uint32_t profile_process(struct profile *p, pid_t pid, const char *cmdline)
{
    for (size_t i = 0; i < p->nprocs; i++)
        if (p->procs[i].pid == pid && strcmp(profile_str(p, p->procs[i].cmdline), cmdline ? cmdline : "") == 0)
            return (uint32_t)i;
    uint32_t cmd = profile_string(p, cmdline ? cmdline : "", cmdline ? strlen(cmdline) : 0);
    if (cmd == PF_NONE ||
        grow((void **)&p->procs, &p->procs_cap, p->nprocs + 1, sizeof(*p->procs)) < 0)
        return PF_NONE;
    p->procs[p->nprocs].pid = pid;
    p->procs[p->nprocs].cmdline = cmd;
    return (uint32_t)p->nprocs++;
}

static int thread_eq(const struct profile *p, uint32_t id, const void *k)
{
    return memcmp(&p->threads[id], k, sizeof(struct pf_thread)) == 0;
}

uint32_t profile_thread(struct profile *p, uint32_t process, pid_t tid, uint64_t thread_id,
                        const char *name)
{
    struct pf_thread key;
    memset(&key, 0, sizeof(key));
    key.process = process;
    key.tid = tid;
    key.thread_id = thread_id;
    key.name = name ? profile_string(p, name, strlen(name)) : PF_NONE;
    uint64_t h = hash_bytes(&key, sizeof(key), 4);
    size_t where;
    uint32_t id = index_find(p, &p->thread_ix, h, &key, thread_eq, &where);
    if (id != PF_NONE)
        return id;
    if (grow((void **)&p->threads, &p->threads_cap, p->nthreads + 1, sizeof(*p->threads)) < 0)
        return PF_NONE;
    id = (uint32_t)p->nthreads;
    p->threads[id] = key;
    if (index_insert(&p->thread_ix, h, id) < 0)
        return PF_NONE;
    p->nthreads++;
    return id;
}

const struct pf_thread *profile_thread_get(const struct profile *p, uint32_t id)
{
    return id < p->nthreads ? &p->threads[id] : NULL;
}

const struct pf_process *profile_process_get(const struct profile *p, uint32_t id)
{
    return id < p->nprocs ? &p->procs[id] : NULL;
}

size_t profile_nthreads(const struct profile *p) { return p->nthreads; }
size_t profile_nprocesses(const struct profile *p) { return p->nprocs; }

/* samples */

static int count_eq(const struct profile *p, uint32_t id, const void *k)
{
    const struct countkey *key = k;
    const struct pf_count *c = &p->counts[id];
    return c->thread == key->thread && c->stack == key->stack && c->kind == key->kind;
}

int profile_add(struct profile *p, uint32_t thread, uint32_t stack, enum sample_kind kind,
                int gil, uint64_t time_ns, uint32_t tick)
{
    if ((unsigned)kind > SAMPLE_FAILED)
        return -EINVAL;
    if (kind != SAMPLE_STACK)
        stack = PF_NONE;
    struct countkey key = { thread, stack, kind };
    uint64_t h = hash_bytes(&key, sizeof(key), 5);
    size_t where;
    uint32_t id = index_find(p, &p->count_ix, h, &key, count_eq, &where);
    if (id == PF_NONE) {
        if (grow((void **)&p->counts, &p->counts_cap, p->ncounts + 1, sizeof(*p->counts)) < 0)
            return -ENOMEM;
        id = (uint32_t)p->ncounts;
        memset(&p->counts[id], 0, sizeof(p->counts[id]));
        p->counts[id].thread = thread;
        p->counts[id].stack = stack;
        p->counts[id].kind = kind;
        if (index_insert(&p->count_ix, h, id) < 0)
            return -ENOMEM;
        p->ncounts++;
    }
    if (p->keep_events) {
        if (grow((void **)&p->events, &p->events_cap, p->nevents + 1, sizeof(*p->events)) < 0)
            return -ENOMEM;
        struct pf_event *e = &p->events[p->nevents++];
        e->time_ns = time_ns;
        e->thread = thread;
        e->stack = stack;
        e->kind = (uint16_t)kind;
        e->gil = gil ? 1 : 0;
        e->tick = tick;
    }
    p->counts[id].count++;
    if (gil)
        p->counts[id].gil_count++;
    p->totals[kind]++;
    return 0;
}

const struct pf_count *profile_counts(const struct profile *p, size_t *n)
{
    *n = p->ncounts;
    return p->counts;
}

const struct pf_event *profile_events(const struct profile *p, size_t *n)
{
    *n = p->nevents;
    return p->events;
}

int profile_has_events(const struct profile *p) { return p->keep_events; }

uint64_t profile_total(const struct profile *p, enum sample_kind kind)
{
    return (unsigned)kind <= SAMPLE_FAILED ? p->totals[kind] : 0;
}

struct profile_meta *profile_meta(struct profile *p) { return &p->meta; }
const struct profile_meta *profile_meta_get(const struct profile *p) { return &p->meta; }
