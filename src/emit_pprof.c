/*
 * emit_pprof.c - the profile as a gzip-compressed profile.proto (pprof),
 * encoded by hand (no protobuf library) and compressed with zlib.
 *
 * What is written (field numbers of perftools.profiles.Profile):
 *   1 sample_type   [{samples, count}, {wall, nanoseconds}]
 *   2 sample        one per (thread, stack, kind) aggregate: location_id
 *                   leaf-first, value [count, count * period_ns], labels
 *                   "thread" = "NAME (TID)" and "pid" = num
 *   3 mapping       one, id 1, flagged has_functions/filenames/line_numbers
 *                   so that pprof never tries to symbolize
 *   4 location      one per pf_frame (a Python frame is a (function, line)),
 *                   each with one line {function_id, line}; under -n one per
 *                   function, without a line
 *   5 function      name = co_name (co_qualname under --qualnames),
 *                   system_name = co_name, filename, start_line = co_firstlineno
 *   6 string_table  index 0 = "", every string valid UTF-8 (invalid bytes
 *                   become U+FFFD, as protobuf's string type requires)
 *   9 time_nanos, 10 duration_nanos (first tick .. last tick + one period),
 *  11 period_type {wall, nanoseconds}, 12 period
 * Idle and failed samples are single-frame stacks "(idle)" / "(failed)";
 * idle ones are left out under -x.
 */
#include "emit.h"
#include "u64map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define PP_NONE UINT32_MAX

/* ---- a growable byte buffer with protobuf encoding ------------------------------ */

struct pb {
    unsigned char *d;
    size_t len, cap;
    int oom;
};

static void pb_reserve(struct pb *b, size_t more)
{
    if (b->oom || b->len + more <= b->cap)
        return;
    size_t n = b->cap ? b->cap : 256;
    while (n < b->len + more)
        n *= 2;
    unsigned char *nd = realloc(b->d, n);
    if (!nd) {
        b->oom = 1;
        return;
    }
    b->d = nd;
    b->cap = n;
}

static void pb_raw(struct pb *b, const void *data, size_t len)
{
    pb_reserve(b, len);
    if (b->oom)
        return;
    if (len)
        memcpy(b->d + b->len, data, len);
    b->len += len;
}

static void pb_varint(struct pb *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    pb_raw(b, tmp, n);
}

/* A varint field (wire type 0); proto3 leaves out zero values. */
static void pb_uint(struct pb *b, unsigned field, uint64_t v)
{
    if (!v)
        return;
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, v);
}

/* A length-delimited field (wire type 2). */
static void pb_bytes(struct pb *b, unsigned field, const void *data, size_t len)
{
    pb_varint(b, ((uint64_t)field << 3) | 2);
    pb_varint(b, len);
    pb_raw(b, data, len);
}

static void pb_msg(struct pb *b, unsigned field, const struct pb *sub)
{
    if (sub->oom)
        b->oom = 1;
    pb_bytes(b, field, sub->d, sub->len);
}

/* ---- the writer's state ---------------------------------------------------- */

struct func {
    int64_t name, system_name, filename, start_line;
};

struct ctx {
    const struct profile *p;
    const struct emit_options *o;
    uint64_t period;

    struct pb out;            /* the Profile message, all but the string table */

    /* string table: sanitized strings, NUL-separated, deduplicated by content */
    struct pb strs;           /* the bytes */
    size_t *str_off;          /* offset of string i in strs */
    size_t nstr, str_cap;
    struct u64map str_by_hash;
    struct u64map str_by_pfid;    /* profile string id -> table index */
    struct pb scratch;        /* sanitizing */

    struct func *funcs;       /* function id = index + 1 */
    size_t nfunc, func_cap;
    struct u64map func_by_hash;

    struct u64map loc_by_key; /* pf_frame id (or function id under -n) -> location id */
    uint32_t nloc;
    uint32_t idle_loc, failed_loc;
    int oom;
};

static uint64_t hash_str(const unsigned char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not valid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xe0 && s[0] <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))
            return 0;   /* overlong, surrogate */
        return 3;
    }
    if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* The string table index of s (added on first use). */
static int64_t str_ix(struct ctx *c, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    c->scratch.len = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(u + i, n - i);
        if (k) {
            pb_raw(&c->scratch, u + i, k);
            i += k;
        } else {
            pb_raw(&c->scratch, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    if (c->scratch.oom) {
        c->oom = 1;
        return 0;
    }
    const unsigned char *t = c->scratch.d ? c->scratch.d : (const unsigned char *)"";
    size_t tl = c->scratch.len;
    uint64_t h = hash_str(t, tl);
    for (;;) {
        uint32_t v = u64map_get(&c->str_by_hash, h);
        if (v == PP_NONE)
            break;
        const char *have = (const char *)c->strs.d + c->str_off[v];
        if (strlen(have) == tl && memcmp(have, t, tl) == 0)
            return v;
        h = u64map_mix(h + 1);
    }
    if (c->nstr == c->str_cap) {
        size_t ncap = c->str_cap ? c->str_cap * 2 : 256;
        size_t *no = realloc(c->str_off, ncap * sizeof(*no));
        if (!no) {
            c->oom = 1;
            return 0;
        }
        c->str_off = no;
        c->str_cap = ncap;
    }
    c->str_off[c->nstr] = c->strs.len;
    pb_raw(&c->strs, t, tl);
    pb_raw(&c->strs, "", 1);
    if (c->strs.oom || u64map_put(&c->str_by_hash, h, (uint32_t)c->nstr) < 0) {
        c->oom = 1;
        return 0;
    }
    return (int64_t)c->nstr++;
}

static int64_t pfstr_ix(struct ctx *c, uint32_t id)
{
    if (id == PF_NONE)
        return 0;
    uint32_t v = u64map_get(&c->str_by_pfid, id);
    if (v != PP_NONE)
        return v;
    int64_t ix = str_ix(c, profile_str(c->p, id));
    if (u64map_put(&c->str_by_pfid, id, (uint32_t)ix) < 0)
        c->oom = 1;
    return ix;
}

static uint32_t func_id(struct ctx *c, const struct func *f)
{
    uint64_t h = u64map_mix((uint64_t)f->name * 0x9e3779b97f4a7c15ULL ^ (uint64_t)f->system_name) ^
                 u64map_mix((uint64_t)f->filename + 1) ^ u64map_mix((uint64_t)f->start_line + 7);
    for (;;) {
        uint32_t v = u64map_get(&c->func_by_hash, h);
        if (v == PP_NONE)
            break;
        const struct func *g = &c->funcs[v];
        if (g->name == f->name && g->system_name == f->system_name &&
            g->filename == f->filename && g->start_line == f->start_line)
            return v + 1;
        h = u64map_mix(h + 1);
    }
    if (c->nfunc == c->func_cap) {
        size_t ncap = c->func_cap ? c->func_cap * 2 : 64;
        struct func *nf = realloc(c->funcs, ncap * sizeof(*nf));
        if (!nf) {
            c->oom = 1;
            return 1;
        }
        c->funcs = nf;
        c->func_cap = ncap;
    }
    c->funcs[c->nfunc] = *f;
    if (u64map_put(&c->func_by_hash, h, (uint32_t)c->nfunc) < 0)
        c->oom = 1;
    return (uint32_t)++c->nfunc;
}

static uint32_t new_location(struct ctx *c, uint32_t function, int64_t line)
{
    struct pb loc = { 0 }, ln = { 0 };
    uint32_t id = ++c->nloc;
    pb_uint(&loc, 1, id);
    pb_uint(&loc, 2, 1);            /* mapping_id */
    pb_uint(&ln, 1, function);
    if (line > 0)
        pb_uint(&ln, 2, (uint64_t)line);
    pb_msg(&loc, 4, &ln);
    pb_msg(&c->out, 4, &loc);
    if (loc.oom || ln.oom)
        c->oom = 1;
    free(loc.d);
    free(ln.d);
    return id;
}

static uint32_t pseudo_location(struct ctx *c, const char *name)
{
    struct func f = { 0, 0, 0, 0 };
    f.name = f.system_name = str_ix(c, name);
    return new_location(c, func_id(c, &f), 0);
}

static uint32_t frame_location(struct ctx *c, uint32_t frame)
{
    const struct pf_frame *pf = profile_frame_get(c->p, frame);
    if (!pf) {
        uint32_t v = u64map_get(&c->loc_by_key, (uint64_t)1 << 63);
        if (v == PP_NONE) {
            v = pseudo_location(c, "(unknown)");
            if (u64map_put(&c->loc_by_key, (uint64_t)1 << 63, v) < 0)
                c->oom = 1;
        }
        return v;
    }
    struct func f;
    uint32_t name = (c->o && c->o->qualnames && pf->qualname != PF_NONE) ? pf->qualname : pf->name;
    f.name = pfstr_ix(c, name);
    f.system_name = pfstr_ix(c, pf->name);
    f.filename = pfstr_ix(c, pf->file);
    f.start_line = pf->firstlineno > 0 ? pf->firstlineno : 0;
    uint32_t fid = func_id(c, &f);
    int per_function = c->o && c->o->no_line_numbers;
    uint64_t key = per_function ? ((uint64_t)1 << 62) | fid : frame;
    uint32_t v = u64map_get(&c->loc_by_key, key);
    if (v != PP_NONE)
        return v;
    v = new_location(c, fid, per_function ? 0 : pf->line);
    if (u64map_put(&c->loc_by_key, key, v) < 0)
        c->oom = 1;
    return v;
}

static void value_type(struct ctx *c, unsigned field, const char *type, const char *unit)
{
    struct pb vt = { 0 };
    pb_uint(&vt, 1, (uint64_t)str_ix(c, type));
    pb_uint(&vt, 2, (uint64_t)str_ix(c, unit));
    pb_msg(&c->out, field, &vt);
    free(vt.d);
}

/* "NAME (TID)": the thread's root-frame name without its "thread " prefix. */
static void thread_label(const struct profile *p, uint32_t thread, char *buf, size_t cap)
{
    char tmp[600];
    emit_thread_name(p, thread, tmp, sizeof(tmp));
    const char *s = strncmp(tmp, "thread ", 7) == 0 ? tmp + 7 : tmp;
    snprintf(buf, cap, "%s", s);
}

static int write_gzip(FILE *out, const struct pb *parts, size_t nparts)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    unsigned char buf[65536];
    int rc = 0;
    for (size_t i = 0; i < nparts && rc == 0; i++) {
        const unsigned char *d = parts[i].d;
        size_t left = parts[i].len;
        int last = i + 1 == nparts;
        do {
            size_t chunk = left > (1u << 30) ? (1u << 30) : left;
            zs.next_in = (unsigned char *)(uintptr_t)d;
            zs.avail_in = (uInt)chunk;
            d += chunk;
            left -= chunk;
            int flush = (last && !left) ? Z_FINISH : Z_NO_FLUSH;
            int zr;
            do {
                zs.next_out = buf;
                zs.avail_out = sizeof(buf);
                zr = deflate(&zs, flush);
                if (zr == Z_STREAM_ERROR) {
                    rc = -EIO;
                    break;
                }
                size_t have = sizeof(buf) - zs.avail_out;
                if (have && fwrite(buf, 1, have, out) != have) {
                    rc = errno ? -errno : -EIO;
                    break;
                }
            } while (zs.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
        } while (left && rc == 0);
    }
    deflateEnd(&zs);
    return rc;
}

int emit_pprof(FILE *out, const struct profile *p, const struct emit_options *o)
{
    struct ctx c;
    memset(&c, 0, sizeof(c));
    c.p = p;
    c.o = o;
    c.idle_loc = c.failed_loc = PP_NONE;
    const struct profile_meta *meta = profile_meta_get(p);
    c.period = meta->period_ns;
    int exclude_idle = o && o->exclude_idle;

    str_ix(&c, "");                      /* index 0 */
    value_type(&c, 1, "samples", "count");
    value_type(&c, 1, "wall", "nanoseconds");

    /* The one mapping, so that pprof takes the functions as they are. */
    struct pb m = { 0 };
    pb_uint(&m, 1, 1);                   /* id */
    pb_uint(&m, 5, (uint64_t)str_ix(&c, "python"));
    pb_uint(&m, 7, 1);                   /* has_functions */
    pb_uint(&m, 8, 1);                   /* has_filenames */
    pb_uint(&m, 9, 1);                   /* has_line_numbers */
    pb_msg(&c.out, 3, &m);
    free(m.d);

    int64_t k_thread = str_ix(&c, "thread"), k_pid = str_ix(&c, "pid");
    size_t nthreads = profile_nthreads(p);
    int64_t *thread_str = calloc(nthreads + 1, sizeof(*thread_str));
    if (!thread_str)
        c.oom = 1;
    for (size_t t = 0; t < nthreads && !c.oom; t++) {
        char lab[600];
        thread_label(p, (uint32_t)t, lab, sizeof(lab));
        thread_str[t] = str_ix(&c, lab);
    }

    size_t nc;
    const struct pf_count *counts = profile_counts(p, &nc);
    struct pb s = { 0 }, ids = { 0 }, vals = { 0 }, lab = { 0 };
    for (size_t i = 0; i < nc && !c.oom; i++) {
        const struct pf_count *pc = &counts[i];
        if (pc->kind == SAMPLE_IDLE && exclude_idle)
            continue;
        if (!pc->count)
            continue;
        ids.len = 0;
        if (pc->kind == SAMPLE_IDLE || pc->kind == SAMPLE_FAILED) {
            uint32_t *slot = pc->kind == SAMPLE_IDLE ? &c.idle_loc : &c.failed_loc;
            if (*slot == PP_NONE)
                *slot = pseudo_location(&c, pc->kind == SAMPLE_IDLE ? "(idle)" : "(failed)");
            pb_varint(&ids, *slot);
        } else {
            size_t n;
            const uint32_t *fr = profile_stack_get(p, pc->stack, &n);
            for (size_t k = n; k-- > 0;)
                pb_varint(&ids, frame_location(&c, fr[k]));
        }
        s.len = 0;
        if (ids.len)
            pb_msg(&s, 1, &ids);               /* packed location_id */
        vals.len = 0;
        pb_varint(&vals, pc->count);
        pb_varint(&vals, pc->count * c.period);
        pb_msg(&s, 2, &vals);                  /* packed value */
        const struct pf_thread *th = profile_thread_get(p, pc->thread);
        if (th) {
            lab.len = 0;
            pb_uint(&lab, 1, (uint64_t)k_thread);
            pb_uint(&lab, 2, (uint64_t)thread_str[pc->thread]);
            pb_msg(&s, 3, &lab);
            const struct pf_process *pr = profile_process_get(p, th->process);
            if (pr) {
                lab.len = 0;
                pb_uint(&lab, 1, (uint64_t)k_pid);
                pb_uint(&lab, 3, (uint64_t)(int64_t)pr->pid);
                pb_msg(&s, 3, &lab);
            }
        }
        pb_msg(&c.out, 2, &s);
        if (s.oom || ids.oom || vals.oom || lab.oom)
            c.oom = 1;
    }
    free(s.d);
    free(ids.d);
    free(vals.d);
    free(lab.d);
    free(thread_str);

    /* Functions (their strings are all in the table by now). */
    for (size_t i = 0; i < c.nfunc && !c.oom; i++) {
        struct pb f = { 0 };
        pb_uint(&f, 1, i + 1);
        pb_uint(&f, 2, (uint64_t)c.funcs[i].name);
        pb_uint(&f, 3, (uint64_t)c.funcs[i].system_name);
        pb_uint(&f, 4, (uint64_t)c.funcs[i].filename);
        pb_uint(&f, 5, (uint64_t)c.funcs[i].start_line);
        pb_msg(&c.out, 5, &f);
        free(f.d);
    }

    /* Times, period. */
    uint64_t start = meta->start_ns, end = meta->end_ns;
    size_t nev = 0;
    const struct pf_event *ev = profile_has_events(p) ? profile_events(p, &nev) : NULL;
    if (!start && nev) {
        start = end = ev[0].time_ns;
        for (size_t i = 1; i < nev; i++) {
            if (ev[i].time_ns < start)
                start = ev[i].time_ns;
            if (ev[i].time_ns > end)
                end = ev[i].time_ns;
        }
    }
    uint64_t duration;
    if (start && end >= start)
        duration = end - start + c.period;
    else
        duration = (uint64_t)meta->ticks * c.period;
    int64_t wall = str_ix(&c, "wall"), ns = str_ix(&c, "nanoseconds");
    pb_uint(&c.out, 9, start);
    pb_uint(&c.out, 10, duration);
    struct pb pt = { 0 };
    pb_uint(&pt, 1, (uint64_t)wall);
    pb_uint(&pt, 2, (uint64_t)ns);
    pb_msg(&c.out, 11, &pt);
    free(pt.d);
    pb_uint(&c.out, 12, c.period);
    int64_t comment = str_ix(&c, "pyflame"
#ifdef PYFLAME_VERSION
                                 " " PYFLAME_VERSION
#endif
                                 );
    pb_uint(&c.out, 13, (uint64_t)comment);

    /* The string table, in index order (index 0 is the empty string, which
     * must be written too: it is the first element). */
    struct pb table = { 0 };
    for (size_t i = 0; i < c.nstr && !c.oom; i++) {
        const char *str = (const char *)c.strs.d + c.str_off[i];
        pb_bytes(&table, 6, str, strlen(str));
    }

    int rc = 0;
    if (c.oom || c.out.oom || table.oom || c.strs.oom || c.scratch.oom) {
        rc = -ENOMEM;
    } else {
        struct pb parts[2] = { c.out, table };
        errno = 0;
        rc = write_gzip(out, parts, 2);
        if (rc == 0 && ferror(out))
            rc = errno ? -errno : -EIO;
    }
    free(table.d);
    free(c.out.d);
    free(c.strs.d);
    free(c.scratch.d);
    free(c.str_off);
    free(c.funcs);
    u64map_free(&c.str_by_hash);
    u64map_free(&c.str_by_pfid);
    u64map_free(&c.func_by_hash);
    u64map_free(&c.loc_by_key);
    return rc;
}
