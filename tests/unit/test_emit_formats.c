/*
 * test_emit_formats.c - the speedscope, pprof, Chrome trace and SVG writers
 * (src/emit_{speedscope,pprof,chrome,svg}.c) and utils/flamechart2chrome.
 *
 * Synthetic profiles are built in memory through profile.h: two processes,
 * four threads (one with an unknown tid, one seen only in the second half,
 * one missing from some rounds), idle and failed samples, a caller that
 * changes line under a continuing callee, a CLOCK_REALTIME step back, and
 * hostile names (<, &, ", ;, \n, invalid UTF-8).  Every output is parsed
 * whole: JSON by the strict parser below (RFC 8259, UTF-8 checked), pprof by
 * gunzip + the small protobuf reader below, and checked against the profile:
 * sample counts, weights and totals, frames root-first / leaf-first, Chrome
 * slices nesting per thread.
 *
 * Real readers, when present (else a "SKIP: ..." line, not a failure):
 *   go tool pprof -raw   (apt-get install golang-go)
 *   speedscope's own JSON schema, from the npm package "speedscope",
 *   installed by `npm install` into a temporary directory (or taken from
 *   $PYFLAME_SPEEDSCOPE_DIR, a directory holding node_modules/speedscope;
 *   PYFLAME_OFFLINE=1 skips the install), checked by a small JSON-schema
 *   validator run under node.
 * utils/flamechart2chrome is the one `make` built (found from the current
 * directory, the repository root under `make check`), or $FLAMECHART2CHROME.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "emit.h"

typedef int (*writer_fn)(FILE *, const struct profile *, const struct emit_options *);

/* ---- small helpers ------------------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    ck_assert_ptr_nonnull(q);
    return q;
}

struct buf {
    char *d;
    size_t len;
};

static struct buf run_writer(writer_fn fn, const struct profile *p, const struct emit_options *o)
{
    struct buf b = { NULL, 0 };
    FILE *f = open_memstream(&b.d, &b.len);
    ck_assert_ptr_nonnull(f);
    int rc = fn(f, p, o);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(fclose(f), 0);
    return b;
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 if invalid. */
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
            return 0;
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

static int valid_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(u + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* s with invalid UTF-8 bytes replaced by U+FFFD (what the writers promise). */
static char *sanitize(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n * 3 + 1);
    ck_assert_ptr_nonnull(d);
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(u + i, n - i);
        if (k) {
            memcpy(d + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(d + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    d[o] = '\0';
    return d;
}

static int have_cmd(const char *cmd)
{
    char line[256];
    snprintf(line, sizeof(line), "command -v %s >/dev/null 2>&1", cmd);
    return system(line) == 0;
}

static char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/pyflame-emit-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    ck_assert_ptr_nonnull(d);
    return strdup(d);
}

static void rm_rf(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "note: could not remove %s\n", dir);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *d = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            d = xrealloc(d, cap);
            ck_assert_ptr_nonnull(d);
        }
        size_t r = fread(d + n, 1, 4096, f);
        n += r;
        if (r < 4096)
            break;
    }
    fclose(f);
    d[n] = '\0';
    if (len)
        *len = n;
    return d;
}

static int run_status(const char *cmd)
{
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* ---- a strict JSON parser (RFC 8259) ------------------------------------------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
    enum jtype t;
    int b;
    double num;
    int isint;
    long long i;
    char *s;            /* strings: decoded UTF-8 */
    size_t slen;
    struct jv *items;   /* arrays: items; objects: values */
    char **keys;        /* objects */
    size_t n, cap;
};

struct jp {
    const unsigned char *p, *end, *start;
    const char *err;
    int depth;
};

static int jfail(struct jp *j, const char *why)
{
    if (!j->err)
        j->err = why;
    return -1;
}

static void jws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static void jfree(struct jv *v)
{
    free(v->s);
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int jhex4(struct jp *j, unsigned *out)
{
    if (j->end - j->p < 4)
        return jfail(j, "short \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(j->p[k]);
        if (h < 0)
            return jfail(j, "bad \\u escape");
        v = v * 16 + (unsigned)h;
    }
    j->p += 4;
    *out = v;
    return 0;
}

static int jstring(struct jp *j, char **out, size_t *outlen)
{
    /* at the opening quote */
    j->p++;
    size_t cap = 64, n = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    for (;;) {
        if (j->p >= j->end) {
            free(s);
            return jfail(j, "unterminated string");
        }
        if (n + 8 > cap) {
            cap *= 2;
            s = xrealloc(s, cap);
            ck_assert_ptr_nonnull(s);
        }
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20) {
            free(s);
            return jfail(j, "control character in string");
        }
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end) {
                free(s);
                return jfail(j, "bad escape");
            }
            c = *j->p++;
            unsigned cp;
            switch (c) {
            case '"': s[n++] = '"'; continue;
            case '\\': s[n++] = '\\'; continue;
            case '/': s[n++] = '/'; continue;
            case 'b': s[n++] = '\b'; continue;
            case 'f': s[n++] = '\f'; continue;
            case 'n': s[n++] = '\n'; continue;
            case 'r': s[n++] = '\r'; continue;
            case 't': s[n++] = '\t'; continue;
            case 'u':
                if (jhex4(j, &cp) < 0) {
                    free(s);
                    return -1;
                }
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    free(s);
                    return jfail(j, "lone low surrogate");
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;
                    if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') {
                        free(s);
                        return jfail(j, "lone high surrogate");
                    }
                    j->p += 2;
                    if (jhex4(j, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
                        free(s);
                        return jfail(j, "bad surrogate pair");
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (cp < 0x80) {
                    s[n++] = (char)cp;
                } else if (cp < 0x800) {
                    s[n++] = (char)(0xc0 | (cp >> 6));
                    s[n++] = (char)(0x80 | (cp & 0x3f));
                } else if (cp < 0x10000) {
                    s[n++] = (char)(0xe0 | (cp >> 12));
                    s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    s[n++] = (char)(0x80 | (cp & 0x3f));
                } else {
                    s[n++] = (char)(0xf0 | (cp >> 18));
                    s[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                    s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    s[n++] = (char)(0x80 | (cp & 0x3f));
                }
                continue;
            default:
                free(s);
                return jfail(j, "bad escape");
            }
        }
        size_t k = utf8_len(j->p, (size_t)(j->end - j->p));
        if (!k) {
            free(s);
            return jfail(j, "invalid UTF-8 in string");
        }
        memcpy(s + n, j->p, k);
        n += k;
        j->p += k;
    }
    s[n] = '\0';
    *out = s;
    *outlen = n;
    return 0;
}

static int jvalue(struct jp *j, struct jv *v);

static int jpush(struct jv *v)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->items = xrealloc(v->items, v->cap * sizeof(*v->items));
        ck_assert_ptr_nonnull(v->items);
        if (v->t == J_OBJ) {
            v->keys = xrealloc(v->keys, v->cap * sizeof(*v->keys));
            ck_assert_ptr_nonnull(v->keys);
        }
    }
    memset(&v->items[v->n], 0, sizeof(v->items[v->n]));
    return (int)v->n++;
}

static int jnumber(struct jp *j, struct jv *v)
{
    const unsigned char *s = j->p;
    int isint = 1;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end)
        return jfail(j, "bad number");
    if (*j->p == '0') {
        j->p++;
    } else if (*j->p >= '1' && *j->p <= '9') {
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    } else {
        return jfail(j, "bad number");
    }
    if (j->p < j->end && *j->p == '.') {
        isint = 0;
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return jfail(j, "bad fraction");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        isint = 0;
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return jfail(j, "bad exponent");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    char tmp[64];
    size_t len = (size_t)(j->p - s);
    if (len >= sizeof(tmp))
        len = sizeof(tmp) - 1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    v->t = J_NUM;
    v->num = strtod(tmp, NULL);
    v->isint = isint;
    if (isint) {
        errno = 0;
        v->i = strtoll(tmp, NULL, 10);
        if (errno)
            v->isint = 0;
    }
    return 0;
}

static int jvalue(struct jp *j, struct jv *v)
{
    memset(v, 0, sizeof(*v));
    jws(j);
    if (j->p >= j->end)
        return jfail(j, "unexpected end");
    unsigned char c = *j->p;
    if (c == '{' || c == '[') {
        if (++j->depth > 500)
            return jfail(j, "too deep");
        int obj = c == '{';
        v->t = obj ? J_OBJ : J_ARR;
        j->p++;
        jws(j);
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
            j->p++;
            j->depth--;
            return 0;
        }
        for (;;) {
            jws(j);
            char *key = NULL;
            size_t klen;
            if (obj) {
                if (j->p >= j->end || *j->p != '"')
                    return jfail(j, "expected a key");
                if (jstring(j, &key, &klen) < 0)
                    return -1;
                for (size_t i = 0; i < v->n; i++)
                    if (strcmp(v->keys[i], key) == 0) {
                        free(key);
                        return jfail(j, "duplicate key");
                    }
                jws(j);
                if (j->p >= j->end || *j->p != ':') {
                    free(key);
                    return jfail(j, "expected ':'");
                }
                j->p++;
            }
            int ix = jpush(v);
            if (obj)
                v->keys[ix] = key;
            if (jvalue(j, &v->items[ix]) < 0)
                return -1;
            jws(j);
            if (j->p >= j->end)
                return jfail(j, "unterminated container");
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p == (obj ? '}' : ']')) {
                j->p++;
                j->depth--;
                return 0;
            }
            return jfail(j, "expected ',' or a closing bracket");
        }
    }
    if (c == '"') {
        v->t = J_STR;
        return jstring(j, &v->s, &v->slen);
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return jnumber(j, v);
    static const struct { const char *lit; enum jtype t; int b; } lits[] = {
        { "true", J_BOOL, 1 }, { "false", J_BOOL, 0 }, { "null", J_NULL, 0 },
    };
    for (size_t k = 0; k < 3; k++) {
        size_t l = strlen(lits[k].lit);
        if ((size_t)(j->end - j->p) >= l && memcmp(j->p, lits[k].lit, l) == 0) {
            j->p += l;
            v->t = lits[k].t;
            v->b = lits[k].b;
            return 0;
        }
    }
    return jfail(j, "unexpected character");
}

/* Parse the whole of d[0..len) or fail the test with the reason and offset. */
static void json_parse(const char *d, size_t len, struct jv *out)
{
    struct jp j = { (const unsigned char *)d, (const unsigned char *)d + len,
                    (const unsigned char *)d, NULL, 0 };
    int rc = jvalue(&j, out);
    if (rc == 0) {
        jws(&j);
        if (j.p != j.end)
            rc = jfail(&j, "trailing data");
    }
    if (rc < 0) {
        size_t at = (size_t)(j.p - j.start);
        size_t from = at > 60 ? at - 60 : 0;
        ck_abort_msg("invalid JSON at byte %zu: %s (near \"%.*s\")", at, j.err,
                     (int)((at + 20 < len ? at + 20 : len) - from), d + from);
    }
}

static const struct jv *jget(const struct jv *o, const char *key)
{
    if (o->t != J_OBJ)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return &o->items[i];
    return NULL;
}

static const struct jv *jreq(const struct jv *o, const char *key, enum jtype t)
{
    const struct jv *v = jget(o, key);
    ck_assert_msg(v != NULL, "missing key \"%s\"", key);
    ck_assert_msg(v->t == t, "key \"%s\" has type %d, not %d", key, (int)v->t, (int)t);
    return v;
}

static long long jint(const struct jv *o, const char *key)
{
    const struct jv *v = jreq(o, key, J_NUM);
    ck_assert_msg(v->isint, "\"%s\" is not an integer", key);
    return v->i;
}

static const char *jstr(const struct jv *o, const char *key)
{
    return jreq(o, key, J_STR)->s;
}

/* ---- the synthetic profile -------------------------------------------------------- */

#define NTICKS 40
#define PERIOD 1000000ULL
#define T0_NS 1700000000123456789ULL

static const char *const HOSTILE_CMD = "python3 <evil>&\"x\";\n\xff.py";
static const char *const HOSTILE_THREAD = "Main<&\";\n\xc3\x28";

struct fixture {
    struct profile *p;
    uint32_t proc[2];
    uint32_t th[4];
    uint32_t fr_main, fr_run20, fr_run21, fr_work, fr_nol;
    uint32_t st_a, st_b, st_c, st_d, st_e;
    uint64_t t[NTICKS];      /* the rounds' times as recorded */
    uint64_t tc[NTICKS];     /* made monotonic */
    uint64_t len[NTICKS];    /* each round's length */
};

static uint32_t str(struct profile *p, const char *s)
{
    uint32_t id = profile_string(p, s, strlen(s));
    ck_assert_uint_ne(id, PF_NONE);
    return id;
}

static uint32_t frame(struct profile *p, const char *file, const char *name, const char *qual,
                      int line, int first)
{
    struct pf_frame f;
    f.file = str(p, file);
    f.name = str(p, name);
    f.qualname = qual ? str(p, qual) : PF_NONE;
    f.line = line;
    f.firstlineno = first;
    uint32_t id = profile_frame(p, &f);
    ck_assert_uint_ne(id, PF_NONE);
    return id;
}

/* What thread `th` (0..3) sampled in round k: SAMPLE_* kind and stack, or
 * -1 when it was not sampled. */
static int pattern(const struct fixture *fx, int th, int k, uint32_t *stack)
{
    *stack = PF_NONE;
    switch (th) {
    case 0:
        if (k < 10) { *stack = fx->st_a; return SAMPLE_STACK; }
        if (k < 15) { *stack = fx->st_b; return SAMPLE_STACK; }
        if (k < 20) { *stack = fx->st_c; return SAMPLE_STACK; }
        if (k < 25) return SAMPLE_IDLE;
        if (k < 30) { *stack = fx->st_d; return SAMPLE_STACK; }
        if (k == 30) return SAMPLE_FAILED;
        *stack = fx->st_e;
        return SAMPLE_STACK;
    case 1:
        if (k % 7 == 0) { *stack = fx->st_a; return SAMPLE_STACK; }
        if (k == 13) return SAMPLE_FAILED;
        return SAMPLE_IDLE;
    case 2:
        if (k >= 17 && k <= 19)
            return -1;
        *stack = fx->st_c;
        return SAMPLE_STACK;
    default:
        if (k < 20)
            return -1;
        *stack = fx->st_d;
        return SAMPLE_STACK;
    }
}

static void build(struct fixture *fx, int keep_events, int nthreads)
{
    memset(fx, 0, sizeof(*fx));
    struct profile *p = fx->p = profile_new(keep_events);
    ck_assert_ptr_nonnull(p);
    fx->proc[0] = profile_process(p, 4242, HOSTILE_CMD);
    fx->proc[1] = profile_process(p, 4343, "");
    fx->th[0] = profile_thread(p, fx->proc[0], 100, 1111, HOSTILE_THREAD);
    fx->th[1] = profile_thread(p, fx->proc[0], 101, 2222, NULL);
    fx->th[2] = profile_thread(p, fx->proc[1], 0, 3333, "worker<&>");
    fx->th[3] = profile_thread(p, fx->proc[1], 300, 4444, "late");

    fx->fr_main = frame(p, "app<&>.py", "<module>", NULL, 10, 1);
    fx->fr_run20 = frame(p, "app<&>.py", "run;\"x\"", "Runner.run;\"x\"", 20, 15);
    fx->fr_run21 = frame(p, "app<&>.py", "run;\"x\"", "Runner.run;\"x\"", 21, 15);
    fx->fr_work = frame(p, "lib\n\xff.py", "work\xff", "Worker.work", 5, 3);
    fx->fr_nol = frame(p, "x.py", "nolines", NULL, -1, -1);
    uint32_t a[] = { fx->fr_main, fx->fr_run20, fx->fr_work };
    uint32_t b[] = { fx->fr_main, fx->fr_run21, fx->fr_work };
    uint32_t c[] = { fx->fr_main, fx->fr_run20 };
    uint32_t d[] = { fx->fr_main };
    uint32_t e[] = { fx->fr_main, fx->fr_nol };
    fx->st_a = profile_stack(p, a, 3);
    fx->st_b = profile_stack(p, b, 3);
    fx->st_c = profile_stack(p, c, 2);
    fx->st_d = profile_stack(p, d, 1);
    fx->st_e = profile_stack(p, e, 2);

    for (int k = 0; k < NTICKS; k++)
        fx->t[k] = T0_NS + (uint64_t)k * PERIOD + (uint64_t)((k * 7919) % 300000);
    fx->t[33] = fx->t[32] - 5000;        /* the clock steps back once */
    for (int k = 0; k < NTICKS; k++)
        fx->tc[k] = k && fx->t[k] < fx->tc[k - 1] ? fx->tc[k - 1] : fx->t[k];
    for (int k = 0; k < NTICKS; k++)
        fx->len[k] = k + 1 < NTICKS ? fx->tc[k + 1] - fx->tc[k] : PERIOD;

    for (int k = 0; k < NTICKS; k++)
        for (int th = 0; th < nthreads; th++) {
            uint32_t st;
            int kind = pattern(fx, th, k, &st);
            if (kind < 0)
                continue;
            ck_assert_int_eq(profile_add(p, fx->th[th], st, (enum sample_kind)kind, th == 0,
                                         fx->t[k], (uint32_t)k), 0);
        }
    struct profile_meta *m = profile_meta(p);
    m->start_ns = fx->t[0];
    m->end_ns = fx->t[NTICKS - 1];
    m->period_ns = PERIOD;
    m->ticks = NTICKS;
    snprintf(m->python_version, sizeof(m->python_version), "3.12.1");
}

static uint64_t total_samples(const struct profile *p, int exclude_idle)
{
    return profile_total(p, SAMPLE_STACK) + profile_total(p, SAMPLE_FAILED) +
           (exclude_idle ? 0 : profile_total(p, SAMPLE_IDLE));
}

static const char *fn_name(const struct profile *p, uint32_t frame_id, int qualnames)
{
    const struct pf_frame *f = profile_frame_get(p, frame_id);
    return profile_str(p, qualnames && f->qualname != PF_NONE ? f->qualname : f->name);
}

/* ---- speedscope ------------------------------------------------------------------- */

static void check_speedscope_common(const struct jv *doc, const struct jv **frames,
                                    const struct jv **profiles)
{
    ck_assert_int_eq(doc->t, J_OBJ);
    ck_assert_str_eq(jstr(doc, "$schema"), "https://www.speedscope.app/file-format-schema.json");
    const struct jv *shared = jreq(doc, "shared", J_OBJ);
    *frames = jreq(shared, "frames", J_ARR);
    for (size_t i = 0; i < (*frames)->n; i++) {
        const struct jv *f = &(*frames)->items[i];
        ck_assert_int_eq(f->t, J_OBJ);
        jstr(f, "name");
        if (jget(f, "file"))
            jstr(f, "file");
        if (jget(f, "line"))
            ck_assert_int_ge(jint(f, "line"), 0);
    }
    *profiles = jreq(doc, "profiles", J_ARR);
    ck_assert_uint_ge((*profiles)->n, 1);
    for (size_t i = 0; i < (*profiles)->n; i++) {
        const struct jv *pr = &(*profiles)->items[i];
        ck_assert_str_eq(jstr(pr, "type"), "sampled");
        ck_assert_str_eq(jstr(pr, "unit"), "nanoseconds");
        jstr(pr, "name");
        const struct jv *samples = jreq(pr, "samples", J_ARR);
        const struct jv *weights = jreq(pr, "weights", J_ARR);
        ck_assert_uint_eq(samples->n, weights->n);
        long long sum = 0;
        for (size_t k = 0; k < weights->n; k++) {
            ck_assert(weights->items[k].t == J_NUM && weights->items[k].isint);
            ck_assert_int_ge(weights->items[k].i, 0);
            sum += weights->items[k].i;
        }
        for (size_t k = 0; k < samples->n; k++) {
            const struct jv *s = &samples->items[k];
            ck_assert_int_eq(s->t, J_ARR);
            for (size_t m = 0; m < s->n; m++) {
                ck_assert(s->items[m].t == J_NUM && s->items[m].isint);
                ck_assert_int_ge(s->items[m].i, 0);
                ck_assert_int_lt(s->items[m].i, (long long)(*frames)->n);
            }
        }
        ck_assert_int_eq(jint(pr, "endValue") - jint(pr, "startValue"), sum);
    }
}

/* The expected speedscope frame names of a sample, root-first, joined by '|'. */
static void expected_names(const struct profile *p, uint32_t stack, int kind, int qualnames,
                           char *buf, size_t cap)
{
    buf[0] = '\0';
    if (kind == SAMPLE_IDLE || kind == SAMPLE_FAILED) {
        snprintf(buf, cap, "%s", kind == SAMPLE_IDLE ? "(idle)" : "(failed)");
        return;
    }
    size_t n;
    const uint32_t *fr = profile_stack_get(p, stack, &n);
    for (size_t i = 0; i < n; i++) {
        char *s = sanitize(fn_name(p, fr[i], qualnames));
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%s", i ? "|" : "", s);
        free(s);
    }
}

static void actual_names(const struct jv *frames, const struct jv *sample, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (size_t i = 0; i < sample->n; i++) {
        const struct jv *f = &frames->items[sample->items[i].i];
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%s", i ? "|" : "", jstr(f, "name"));
    }
}

static void check_speedscope_timeline(int exclude_idle, int qualnames, int no_lines)
{
    struct fixture fx;
    build(&fx, 1, 4);
    struct emit_options o = { 0 };
    o.format = FORMAT_SPEEDSCOPE;
    o.exclude_idle = exclude_idle;
    o.qualnames = qualnames;
    o.no_line_numbers = no_lines;
    o.title = "t<&>\"";
    struct buf b = run_writer(emit_speedscope, fx.p, &o);
    struct jv doc;
    json_parse(b.d, b.len, &doc);
    const struct jv *frames, *profiles;
    check_speedscope_common(&doc, &frames, &profiles);
    ck_assert_str_eq(jstr(&doc, "name"), "t<&>\"");
    ck_assert_uint_eq(profiles->n, 4);

    uint64_t all = 0;
    for (int th = 0; th < 4; th++) {
        const struct jv *pr = &profiles->items[th];
        char name[512];
        emit_thread_name(fx.p, fx.th[th], name, sizeof(name));
        char *want = sanitize(name);
        ck_assert_str_eq(jstr(pr, "name"), want);
        free(want);
        const struct jv *samples = jreq(pr, "samples", J_ARR);
        const struct jv *weights = jreq(pr, "weights", J_ARR);
        size_t n = 0;
        long long first_start = -1;
        uint64_t sum = 0;
        for (int k = 0; k < NTICKS; k++) {
            uint32_t st;
            int kind = pattern(&fx, th, k, &st);
            if (kind < 0 || (kind == SAMPLE_IDLE && exclude_idle))
                continue;
            ck_assert_uint_lt(n, samples->n);
            if (first_start < 0)
                first_start = (long long)(fx.tc[k] - fx.tc[0]);
            ck_assert_int_eq(weights->items[n].i, (long long)fx.len[k]);
            sum += fx.len[k];
            char exp[1024], act[1024];
            expected_names(fx.p, st, kind, qualnames, exp, sizeof(exp));
            actual_names(frames, &samples->items[n], act, sizeof(act));
            ck_assert_str_eq(act, exp);
            n++;
        }
        ck_assert_uint_eq(samples->n, n);
        ck_assert_int_eq(jint(pr, "startValue"), first_start);
        ck_assert_int_eq(jint(pr, "endValue"), first_start + (long long)sum);
        all += n;
    }
    ck_assert_uint_eq(all, total_samples(fx.p, exclude_idle));

    /* The frame table: "(idle)" only when used; lines as asked. */
    int idle_frames = 0, run_frames = 0;
    for (size_t i = 0; i < frames->n; i++) {
        const struct jv *f = &frames->items[i];
        if (strcmp(jstr(f, "name"), "(idle)") == 0)
            idle_frames++;
        if (strstr(jstr(f, "name"), "run;\"x\"")) {
            run_frames++;
            ck_assert_str_eq(jstr(f, "file"), "app<&>.py");
            long long line = jint(f, "line");
            if (no_lines)
                ck_assert_int_eq(line, 15);
            else
                ck_assert(line == 20 || line == 21);
        }
        if (strcmp(jstr(f, "name"), "nolines") == 0)
            ck_assert_ptr_null(jget(f, "line"));
    }
    ck_assert_int_eq(idle_frames, exclude_idle ? 0 : 1);
    ck_assert_int_eq(run_frames, no_lines ? 1 : 2);
    jfree(&doc);
    free(b.d);
    profile_free(fx.p);
}

START_TEST(speedscope_timeline)
{
    check_speedscope_timeline(0, 0, 0);
}
END_TEST

START_TEST(speedscope_timeline_options)
{
    check_speedscope_timeline(1, 0, 0);
    check_speedscope_timeline(0, 1, 0);
    check_speedscope_timeline(1, 1, 1);
}
END_TEST

START_TEST(speedscope_single_thread)
{
    struct fixture fx;
    build(&fx, 1, 1);
    struct buf b = run_writer(emit_speedscope, fx.p, NULL);
    struct jv doc;
    json_parse(b.d, b.len, &doc);
    const struct jv *frames, *profiles;
    check_speedscope_common(&doc, &frames, &profiles);
    ck_assert_uint_eq(profiles->n, 1);
    char name[512];
    emit_thread_name(fx.p, fx.th[0], name, sizeof(name));
    char *want = sanitize(name);
    ck_assert_str_eq(jstr(&profiles->items[0], "name"), want);
    free(want);
    ck_assert_uint_eq(jreq(&profiles->items[0], "samples", J_ARR)->n, NTICKS);
    ck_assert_int_eq(jint(&profiles->items[0], "startValue"), 0);
    ck_assert_int_eq(jint(&profiles->items[0], "endValue"),
                     (long long)(fx.tc[NTICKS - 1] - fx.tc[0] + PERIOD));
    jfree(&doc);
    free(b.d);
    profile_free(fx.p);
}
END_TEST

START_TEST(speedscope_aggregates)
{
    for (int x = 0; x < 2; x++) {
        struct fixture fx;
        build(&fx, 0, 4);
        struct emit_options o = { 0 };
        o.exclude_idle = x;
        struct buf b = run_writer(emit_speedscope, fx.p, &o);
        struct jv doc;
        json_parse(b.d, b.len, &doc);
        const struct jv *frames, *profiles;
        check_speedscope_common(&doc, &frames, &profiles);
        ck_assert_uint_eq(profiles->n, 4);
        size_t nc;
        const struct pf_count *counts = profile_counts(fx.p, &nc);
        uint64_t wsum = 0;
        for (int th = 0; th < 4; th++) {
            const struct jv *pr = &profiles->items[th];
            const struct jv *samples = jreq(pr, "samples", J_ARR);
            const struct jv *weights = jreq(pr, "weights", J_ARR);
            size_t n = 0;
            for (size_t i = 0; i < nc; i++) {
                if (counts[i].thread != fx.th[th] || (x && counts[i].kind == SAMPLE_IDLE))
                    continue;
                ck_assert_uint_lt(n, samples->n);
                ck_assert_int_eq(weights->items[n].i, (long long)(counts[i].count * PERIOD));
                char exp[1024], act[1024];
                expected_names(fx.p, counts[i].stack, (int)counts[i].kind, 0, exp, sizeof(exp));
                actual_names(frames, &samples->items[n], act, sizeof(act));
                ck_assert_str_eq(act, exp);
                wsum += (uint64_t)weights->items[n].i;
                n++;
            }
            ck_assert_uint_eq(samples->n, n);
        }
        ck_assert_uint_eq(wsum, total_samples(fx.p, x) * PERIOD);
        jfree(&doc);
        free(b.d);
        profile_free(fx.p);
    }
}
END_TEST

/* ---- pprof: gunzip and a minimal protobuf reader -------------------------------- */

static unsigned char *gunzip(const char *d, size_t len, size_t *outlen)
{
    ck_assert_uint_ge(len, 18);
    ck_assert_int_eq((unsigned char)d[0], 0x1f);
    ck_assert_int_eq((unsigned char)d[1], 0x8b);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    ck_assert_int_eq(inflateInit2(&zs, 15 + 16), Z_OK);
    size_t cap = 1 << 16, n = 0;
    unsigned char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    zs.next_in = (unsigned char *)(uintptr_t)d;
    zs.avail_in = (uInt)len;
    int zr;
    do {
        if (n == cap) {
            cap *= 2;
            out = xrealloc(out, cap);
            ck_assert_ptr_nonnull(out);
        }
        zs.next_out = out + n;
        zs.avail_out = (uInt)(cap - n);
        zr = inflate(&zs, Z_NO_FLUSH);
        ck_assert_msg(zr == Z_OK || zr == Z_STREAM_END, "inflate: %d", zr);
        n = cap - zs.avail_out;
    } while (zr != Z_STREAM_END);
    ck_assert_uint_eq(zs.avail_in, 0);     /* nothing after the gzip member */
    inflateEnd(&zs);
    *outlen = n;
    return out;
}

struct pbr {
    const unsigned char *p, *end;
};

static uint64_t rd_varint(struct pbr *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        ck_assert_msg(r->p < r->end, "truncated varint");
        unsigned char c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    ck_abort_msg("varint too long");
    return 0;
}

struct pbfield {
    unsigned field, wt;
    uint64_t v;                     /* wire type 0 */
    const unsigned char *data;      /* wire type 2 */
    size_t len;
};

static int rd_field(struct pbr *r, struct pbfield *f)
{
    if (r->p >= r->end)
        return 0;
    uint64_t key = rd_varint(r);
    f->field = (unsigned)(key >> 3);
    f->wt = (unsigned)(key & 7);
    ck_assert_uint_ne(f->field, 0);
    switch (f->wt) {
    case 0:
        f->v = rd_varint(r);
        break;
    case 1:
        ck_assert_int_ge(r->end - r->p, 8);
        r->p += 8;
        break;
    case 2:
        f->len = (size_t)rd_varint(r);
        ck_assert_msg((size_t)(r->end - r->p) >= f->len, "truncated field %u", f->field);
        f->data = r->p;
        r->p += f->len;
        break;
    case 5:
        ck_assert_int_ge(r->end - r->p, 4);
        r->p += 4;
        break;
    default:
        ck_abort_msg("bad wire type %u", f->wt);
    }
    return 1;
}

/* A repeated varint field, packed or not: append to *arr. */
static void rd_repeated(const struct pbfield *f, uint64_t **arr, size_t *n)
{
    if (f->wt == 0) {
        *arr = xrealloc(*arr, (*n + 1) * sizeof(**arr));
        (*arr)[(*n)++] = f->v;
        return;
    }
    ck_assert_uint_eq(f->wt, 2);
    struct pbr sub = { f->data, f->data + f->len };
    while (sub.p < sub.end) {
        *arr = xrealloc(*arr, (*n + 1) * sizeof(**arr));
        (*arr)[(*n)++] = rd_varint(&sub);
    }
}

struct pp_label { int64_t key, str, num; };
struct pp_sample {
    uint64_t *loc;
    size_t nloc;
    uint64_t *val;
    size_t nval;
    struct pp_label lab[8];
    size_t nlab;
};
struct pp_loc { uint64_t id, mapping, func; int64_t line; size_t nlines; };
struct pp_func { uint64_t id; int64_t name, sys, file, start; };
struct pprof {
    char **s;
    size_t ns;
    int64_t st_type[4], st_unit[4];
    size_t nst;
    struct pp_sample *sm;
    size_t nsm;
    struct pp_loc *loc;
    size_t nloc;
    struct pp_func *fn;
    size_t nfn;
    size_t nmap;
    int64_t time_nanos, duration, period, pt_type, pt_unit;
};

static void pp_valuetype(const struct pbfield *f, int64_t *type, int64_t *unit)
{
    ck_assert_uint_eq(f->wt, 2);
    struct pbr r = { f->data, f->data + f->len };
    struct pbfield g;
    *type = *unit = 0;
    while (rd_field(&r, &g)) {
        if (g.field == 1)
            *type = (int64_t)g.v;
        else if (g.field == 2)
            *unit = (int64_t)g.v;
    }
}

static void pp_parse(const unsigned char *d, size_t len, struct pprof *pp)
{
    memset(pp, 0, sizeof(*pp));
    struct pbr r = { d, d + len };
    struct pbfield f;
    while (rd_field(&r, &f)) {
        switch (f.field) {
        case 1:
            ck_assert_uint_lt(pp->nst, 4);
            pp_valuetype(&f, &pp->st_type[pp->nst], &pp->st_unit[pp->nst]);
            pp->nst++;
            break;
        case 2: {
            ck_assert_uint_eq(f.wt, 2);
            pp->sm = xrealloc(pp->sm, (pp->nsm + 1) * sizeof(*pp->sm));
            struct pp_sample *s = &pp->sm[pp->nsm++];
            memset(s, 0, sizeof(*s));
            struct pbr sr = { f.data, f.data + f.len };
            struct pbfield g;
            while (rd_field(&sr, &g)) {
                if (g.field == 1) {
                    rd_repeated(&g, &s->loc, &s->nloc);
                } else if (g.field == 2) {
                    rd_repeated(&g, &s->val, &s->nval);
                } else if (g.field == 3) {
                    ck_assert_uint_lt(s->nlab, 8);
                    struct pp_label *l = &s->lab[s->nlab++];
                    memset(l, 0, sizeof(*l));
                    struct pbr lr = { g.data, g.data + g.len };
                    struct pbfield h;
                    while (rd_field(&lr, &h)) {
                        if (h.field == 1) l->key = (int64_t)h.v;
                        if (h.field == 2) l->str = (int64_t)h.v;
                        if (h.field == 3) l->num = (int64_t)h.v;
                    }
                }
            }
            break;
        }
        case 3:
            pp->nmap++;
            break;
        case 4: {
            ck_assert_uint_eq(f.wt, 2);
            pp->loc = xrealloc(pp->loc, (pp->nloc + 1) * sizeof(*pp->loc));
            struct pp_loc *l = &pp->loc[pp->nloc++];
            memset(l, 0, sizeof(*l));
            struct pbr lr = { f.data, f.data + f.len };
            struct pbfield g;
            while (rd_field(&lr, &g)) {
                if (g.field == 1) l->id = g.v;
                if (g.field == 2) l->mapping = g.v;
                if (g.field == 4) {
                    l->nlines++;
                    struct pbr ln = { g.data, g.data + g.len };
                    struct pbfield h;
                    while (rd_field(&ln, &h)) {
                        if (h.field == 1) l->func = h.v;
                        if (h.field == 2) l->line = (int64_t)h.v;
                    }
                }
            }
            break;
        }
        case 5: {
            ck_assert_uint_eq(f.wt, 2);
            pp->fn = xrealloc(pp->fn, (pp->nfn + 1) * sizeof(*pp->fn));
            struct pp_func *fn = &pp->fn[pp->nfn++];
            memset(fn, 0, sizeof(*fn));
            struct pbr fr = { f.data, f.data + f.len };
            struct pbfield g;
            while (rd_field(&fr, &g)) {
                if (g.field == 1) fn->id = g.v;
                if (g.field == 2) fn->name = (int64_t)g.v;
                if (g.field == 3) fn->sys = (int64_t)g.v;
                if (g.field == 4) fn->file = (int64_t)g.v;
                if (g.field == 5) fn->start = (int64_t)g.v;
            }
            break;
        }
        case 6: {
            ck_assert_uint_eq(f.wt, 2);
            ck_assert_msg(valid_utf8((const char *)f.data, f.len), "string %zu not UTF-8", pp->ns);
            pp->s = xrealloc(pp->s, (pp->ns + 1) * sizeof(*pp->s));
            char *s = malloc(f.len + 1);
            memcpy(s, f.data, f.len);
            s[f.len] = '\0';
            pp->s[pp->ns++] = s;
            break;
        }
        case 9: pp->time_nanos = (int64_t)f.v; break;
        case 10: pp->duration = (int64_t)f.v; break;
        case 11: pp_valuetype(&f, &pp->pt_type, &pp->pt_unit); break;
        case 12: pp->period = (int64_t)f.v; break;
        default: break;
        }
    }
    ck_assert_uint_ge(pp->ns, 1);
    ck_assert_str_eq(pp->s[0], "");
}

static void pp_free(struct pprof *pp)
{
    for (size_t i = 0; i < pp->ns; i++)
        free(pp->s[i]);
    free(pp->s);
    for (size_t i = 0; i < pp->nsm; i++) {
        free(pp->sm[i].loc);
        free(pp->sm[i].val);
    }
    free(pp->sm);
    free(pp->loc);
    free(pp->fn);
}

static const char *pp_str(const struct pprof *pp, int64_t ix)
{
    ck_assert_int_ge(ix, 0);
    ck_assert_int_lt(ix, (int64_t)pp->ns);
    return pp->s[ix];
}

static const struct pp_loc *pp_location(const struct pprof *pp, uint64_t id)
{
    for (size_t i = 0; i < pp->nloc; i++)
        if (pp->loc[i].id == id)
            return &pp->loc[i];
    ck_abort_msg("no location %llu", (unsigned long long)id);
    return NULL;
}

static const struct pp_func *pp_function(const struct pprof *pp, uint64_t id)
{
    for (size_t i = 0; i < pp->nfn; i++)
        if (pp->fn[i].id == id)
            return &pp->fn[i];
    ck_abort_msg("no function %llu", (unsigned long long)id);
    return NULL;
}

/* A tiny string -> (a, b) sum table. */
struct sums {
    char *key[256];
    uint64_t a[256], b[256];
    size_t n;
};

static void sums_add(struct sums *s, const char *key, uint64_t a, uint64_t b)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->key[i], key) == 0) {
            s->a[i] += a;
            s->b[i] += b;
            return;
        }
    ck_assert_uint_lt(s->n, 256);
    s->key[s->n] = strdup(key);
    s->a[s->n] = a;
    s->b[s->n] = b;
    s->n++;
}

static void sums_free(struct sums *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->key[i]);
}

static struct buf pprof_bytes(const struct profile *p, const struct emit_options *o,
                              struct pprof *pp)
{
    struct buf b = run_writer(emit_pprof, p, o);
    size_t rawlen;
    unsigned char *raw = gunzip(b.d, b.len, &rawlen);
    pp_parse(raw, rawlen, pp);
    free(raw);
    return b;
}

static void check_pprof(int exclude_idle, int qualnames, int no_lines)
{
    struct fixture fx;
    build(&fx, 0, 4);
    struct emit_options o = { 0 };
    o.format = FORMAT_PPROF;
    o.exclude_idle = exclude_idle;
    o.qualnames = qualnames;
    o.no_line_numbers = no_lines;
    struct pprof pp;
    struct buf b = pprof_bytes(fx.p, &o, &pp);

    ck_assert_uint_eq(pp.nst, 2);
    ck_assert_str_eq(pp_str(&pp, pp.st_type[0]), "samples");
    ck_assert_str_eq(pp_str(&pp, pp.st_unit[0]), "count");
    ck_assert_str_eq(pp_str(&pp, pp.st_type[1]), "wall");
    ck_assert_str_eq(pp_str(&pp, pp.st_unit[1]), "nanoseconds");
    ck_assert_str_eq(pp_str(&pp, pp.pt_type), "wall");
    ck_assert_str_eq(pp_str(&pp, pp.pt_unit), "nanoseconds");
    ck_assert_int_eq(pp.period, (int64_t)PERIOD);
    ck_assert_int_eq(pp.time_nanos, (int64_t)fx.t[0]);
    ck_assert_int_eq(pp.duration, (int64_t)(fx.t[NTICKS - 1] - fx.t[0] + PERIOD));

    /* Every location: one line, a known function; ids unique. */
    for (size_t i = 0; i < pp.nloc; i++) {
        ck_assert_uint_eq(pp.loc[i].nlines, 1);
        ck_assert_uint_ne(pp.loc[i].id, 0);
        for (size_t k = 0; k < i; k++)
            ck_assert_uint_ne(pp.loc[k].id, pp.loc[i].id);
        const struct pp_func *fn = pp_function(&pp, pp.loc[i].func);
        pp_str(&pp, fn->name);
        pp_str(&pp, fn->sys);
        pp_str(&pp, fn->file);
        if (no_lines)
            ck_assert_int_eq(pp.loc[i].line, 0);
    }
    /* 5 Python frames (4 functions under -n), "(idle)" unless -x, "(failed)". */
    ck_assert_uint_eq(pp.nloc, (no_lines ? 4u : 5u) + (exclude_idle ? 0u : 1u) + 1u);

    /* The run function: name per --qualnames, system_name co_name. */
    int seen_run = 0;
    for (size_t i = 0; i < pp.nfn; i++) {
        if (strcmp(pp_str(&pp, pp.fn[i].sys), "run;\"x\"") != 0)
            continue;
        seen_run++;
        ck_assert_str_eq(pp_str(&pp, pp.fn[i].name), qualnames ? "Runner.run;\"x\"" : "run;\"x\"");
        ck_assert_str_eq(pp_str(&pp, pp.fn[i].file), "app<&>.py");
        ck_assert_int_eq(pp.fn[i].start, 15);
    }
    ck_assert_int_eq(seen_run, 1);

    /* Samples against the profile's aggregates, keyed by labels + stack. */
    struct sums want, got;
    memset(&want, 0, sizeof(want));
    memset(&got, 0, sizeof(got));
    char key[4096];
    size_t nc;
    const struct pf_count *counts = profile_counts(fx.p, &nc);
    for (size_t i = 0; i < nc; i++) {
        const struct pf_count *c = &counts[i];
        if (exclude_idle && c->kind == SAMPLE_IDLE)
            continue;
        char tname[512];
        emit_thread_name(fx.p, c->thread, tname, sizeof(tname));
        const struct pf_thread *th = profile_thread_get(fx.p, c->thread);
        int n = snprintf(key, sizeof(key), "%s|%d|", tname + 7,
                         (int)profile_process_get(fx.p, th->process)->pid);
        if (c->kind != SAMPLE_STACK) {
            snprintf(key + n, sizeof(key) - (size_t)n, "%s",
                     c->kind == SAMPLE_IDLE ? "(idle)" : "(failed)");
        } else {
            size_t len;
            const uint32_t *fr = profile_stack_get(fx.p, c->stack, &len);
            for (size_t k = 0; k < len; k++) {
                const struct pf_frame *f = profile_frame_get(fx.p, fr[k]);
                size_t l = strlen(key);
                int line = no_lines || f->line < 0 ? 0 : f->line;
                snprintf(key + l, sizeof(key) - l, "%s@%s:%d;", fn_name(fx.p, fr[k], qualnames),
                         profile_str(fx.p, f->file), line);
            }
        }
        char *k2 = sanitize(key);
        sums_add(&want, k2, c->count, c->count * PERIOD);
        free(k2);
    }
    uint64_t tot = 0, tot_ns = 0;
    for (size_t i = 0; i < pp.nsm; i++) {
        const struct pp_sample *s = &pp.sm[i];
        ck_assert_uint_eq(s->nval, 2);
        ck_assert_uint_eq(s->val[1], s->val[0] * PERIOD);
        tot += s->val[0];
        tot_ns += s->val[1];
        const char *thread = NULL;
        int64_t pid = -1;
        for (size_t l = 0; l < s->nlab; l++) {
            const char *k = pp_str(&pp, s->lab[l].key);
            if (strcmp(k, "thread") == 0)
                thread = pp_str(&pp, s->lab[l].str);
            else if (strcmp(k, "pid") == 0)
                pid = s->lab[l].num;
        }
        ck_assert_ptr_nonnull(thread);
        ck_assert_int_gt(pid, 0);
        int n = snprintf(key, sizeof(key), "%s|%lld|", thread, (long long)pid);
        ck_assert_uint_ge(s->nloc, 1);
        for (size_t k = s->nloc; k-- > 0;) {       /* leaf-first in the file */
            const struct pp_loc *l = pp_location(&pp, s->loc[k]);
            const struct pp_func *fn = pp_function(&pp, l->func);
            size_t at = strlen(key);
            const char *name = pp_str(&pp, fn->name);
            if (name[0] == '(')
                snprintf(key + at, sizeof(key) - at, "%s", name);
            else
                snprintf(key + at, sizeof(key) - at, "%s@%s:%lld;", name, pp_str(&pp, fn->file),
                         (long long)l->line);
        }
        (void)n;
        sums_add(&got, key, s->val[0], s->val[1]);
    }
    ck_assert_uint_eq(tot, total_samples(fx.p, exclude_idle));
    ck_assert_uint_eq(tot_ns, total_samples(fx.p, exclude_idle) * PERIOD);
    ck_assert_uint_eq(got.n, want.n);
    for (size_t i = 0; i < want.n; i++) {
        size_t k;
        for (k = 0; k < got.n; k++)
            if (strcmp(got.key[k], want.key[i]) == 0)
                break;
        ck_assert_msg(k < got.n, "pprof lacks the stack \"%s\"", want.key[i]);
        ck_assert_uint_eq(got.a[k], want.a[i]);
        ck_assert_uint_eq(got.b[k], want.b[i]);
    }
    sums_free(&want);
    sums_free(&got);
    pp_free(&pp);
    free(b.d);
    profile_free(fx.p);
}

START_TEST(pprof_structure)
{
    check_pprof(0, 0, 0);
}
END_TEST

START_TEST(pprof_options)
{
    check_pprof(1, 0, 0);
    check_pprof(0, 1, 0);
    check_pprof(0, 0, 1);
    check_pprof(1, 1, 1);
}
END_TEST

/* ---- chrome ----------------------------------------------------------------------- */

struct slice {
    long long pid, tid, ts, dur;
    const char *name;
};

/* Names compared as the flamechart text shows them (';' and '\n' as '?'), so
 * that ties sort alike in both traces. */
static int name_cmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)(*a == ';' || *a == '\n' ? '?' : *a);
        unsigned char y = (unsigned char)(*b == ';' || *b == '\n' ? '?' : *b);
        if (x != y || !x)
            return (x > y) - (x < y);
    }
}

static int slice_cmp(const void *a, const void *b)
{
    const struct slice *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->dur != y->dur)
        return x->dur > y->dur ? -1 : 1;     /* the parent first */
    return name_cmp(x->name, y->name);
}

/* Parse a trace, check its shape and that slices nest per (pid, tid).
 * Returns the X slices sorted by (pid, tid, ts, -dur); doc must outlive them. */
static struct slice *check_trace(const struct jv *doc, size_t *nslices)
{
    ck_assert_int_eq(doc->t, J_OBJ);
    const struct jv *ev = jreq(doc, "traceEvents", J_ARR);
    ck_assert_str_eq(jstr(doc, "displayTimeUnit"), "ms");
    struct slice *s = malloc((ev->n + 1) * sizeof(*s));
    ck_assert_ptr_nonnull(s);
    size_t n = 0;
    for (size_t i = 0; i < ev->n; i++) {
        const struct jv *e = &ev->items[i];
        ck_assert_int_eq(e->t, J_OBJ);
        const char *ph = jstr(e, "ph");
        jint(e, "pid");
        jint(e, "tid");
        if (strcmp(ph, "M") == 0) {
            const char *what = jstr(e, "name");
            ck_assert(strcmp(what, "process_name") == 0 || strcmp(what, "thread_name") == 0);
            jstr(jreq(e, "args", J_OBJ), "name");
            continue;
        }
        ck_assert_str_eq(ph, "X");
        s[n].pid = jint(e, "pid");
        s[n].tid = jint(e, "tid");
        s[n].ts = jint(e, "ts");
        s[n].dur = jint(e, "dur");
        s[n].name = jstr(e, "name");
        ck_assert_int_gt(s[n].dur, 0);
        ck_assert_int_ge(s[n].ts, 0);
        n++;
    }
    qsort(s, n, sizeof(*s), slice_cmp);
    /* Nesting: a stack of open ends per track. */
    long long *ends = malloc((n + 1) * sizeof(*ends));
    size_t depth = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || s[i].pid != s[i - 1].pid || s[i].tid != s[i - 1].tid)
            depth = 0;
        while (depth && ends[depth - 1] <= s[i].ts)
            depth--;
        if (depth)
            ck_assert_msg(s[i].ts + s[i].dur <= ends[depth - 1],
                          "slice \"%s\" [%lld, +%lld) of tid %lld outlives its parent (ends %lld)",
                          s[i].name, s[i].ts, s[i].dur, s[i].tid, ends[depth - 1]);
        ends[depth++] = s[i].ts + s[i].dur;
    }
    free(ends);
    *nslices = n;
    return s;
}

static size_t count_slices(const struct slice *s, size_t n, long long pid, long long tid,
                           const char *name, const struct slice **first)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if ((pid < 0 || s[i].pid == pid) && (tid < 0 || s[i].tid == tid) &&
            strcmp(s[i].name, name) == 0) {
            if (!c && first)
                *first = &s[i];
            c++;
        }
    return c;
}

static int has_meta(const struct jv *doc, const char *what, long long pid, long long tid,
                    const char *name)
{
    const struct jv *ev = jreq(doc, "traceEvents", J_ARR);
    for (size_t i = 0; i < ev->n; i++) {
        const struct jv *e = &ev->items[i];
        if (strcmp(jstr(e, "ph"), "M") || strcmp(jstr(e, "name"), what) || jint(e, "pid") != pid)
            continue;
        if (tid >= 0 && jint(e, "tid") != tid)
            continue;
        if (strcmp(jstr(jreq(e, "args", J_OBJ), "name"), name) == 0)
            return 1;
    }
    return 0;
}

static void check_chrome(int exclude_idle)
{
    struct fixture fx;
    build(&fx, 1, 4);
    struct emit_options o = { 0 };
    o.format = FORMAT_CHROME;
    o.exclude_idle = exclude_idle;
    struct buf b = run_writer(emit_chrome, fx.p, &o);
    struct jv doc;
    json_parse(b.d, b.len, &doc);
    size_t n;
    struct slice *s = check_trace(&doc, &n);

    /* Metadata names every process and thread. */
    char name[512];
    char *want;
    emit_process_name(fx.p, fx.proc[0], name, sizeof(name));
    want = sanitize(name);
    ck_assert(has_meta(&doc, "process_name", 4242, -1, want));
    free(want);
    emit_process_name(fx.p, fx.proc[1], name, sizeof(name));
    ck_assert(has_meta(&doc, "process_name", 4343, -1, name));
    const long long tids[4] = { 100, 101, 1000000002LL, 300 };
    const long long pids[4] = { 4242, 4242, 4343, 4343 };
    for (int th = 0; th < 4; th++) {
        emit_thread_name(fx.p, fx.th[th], name, sizeof(name));
        want = sanitize(name);
        ck_assert_msg(has_meta(&doc, "thread_name", pids[th], tids[th], want), "thread %d", th);
        free(want);
    }

    /* Thread 0: <module> runs 0..19, idle 20..24, 25..29, failed 30, 31..39. */
    const struct slice *first = NULL;
    ck_assert_uint_eq(count_slices(s, n, 4242, 100, "<module>", &first), 3);
    ck_assert_int_eq(first->ts, (long long)(fx.tc[0] / 1000));
    ck_assert_int_eq(first->ts + first->dur, (long long)(fx.tc[20] / 1000));
    /* run continues across its line change 20 -> 21 (the same function)... */
    ck_assert_uint_eq(count_slices(s, n, 4242, 100, "run;\"x\"", &first), 1);
    ck_assert_int_eq(first->ts + first->dur, (long long)(fx.tc[20] / 1000));
    /* ...but work, whose caller moved to another line, is a new call. */
    ck_assert_uint_eq(count_slices(s, n, 4242, 100, "work\xef\xbf\xbd", &first), 2);
    ck_assert_int_eq(first->ts + first->dur, (long long)(fx.tc[10] / 1000));
    ck_assert_uint_eq(count_slices(s, n, 4242, 100, "(idle)", NULL), exclude_idle ? 0 : 1);
    ck_assert_uint_eq(count_slices(s, n, 4242, 100, "(failed)", NULL), 1);
    ck_assert_uint_eq(count_slices(s, n, 4242, 100, "nolines", &first), 1);
    ck_assert_int_eq(first->ts + first->dur, (long long)((fx.tc[NTICKS - 1] + PERIOD) / 1000));
    /* Thread 1: idle merges into stretches between its other samples. */
    if (exclude_idle)
        ck_assert_uint_eq(count_slices(s, n, -1, -1, "(idle)", NULL), 0);
    else
        ck_assert_uint_ge(count_slices(s, n, 4242, 101, "(idle)", NULL), 5);
    /* Thread 2 (tid unknown) is missing from rounds 17..19: a gap. */
    ck_assert_uint_eq(count_slices(s, n, 4343, 1000000002LL, "<module>", &first), 2);
    ck_assert_int_eq(first->ts + first->dur, (long long)(fx.tc[17] / 1000));
    /* Thread 3 starts at round 20. */
    ck_assert_uint_eq(count_slices(s, n, 4343, 300, "<module>", &first), 1);
    ck_assert_int_eq(first->ts, (long long)(fx.tc[20] / 1000));

    free(s);
    jfree(&doc);
    free(b.d);
    profile_free(fx.p);
}

START_TEST(chrome_structure)
{
    check_chrome(0);
}
END_TEST

START_TEST(chrome_exclude_idle)
{
    check_chrome(1);
}
END_TEST

START_TEST(chrome_aggregates)
{
    struct fixture fx;
    build(&fx, 0, 4);
    struct buf b = run_writer(emit_chrome, fx.p, NULL);
    struct jv doc;
    json_parse(b.d, b.len, &doc);
    size_t n;
    struct slice *s = check_trace(&doc, &n);
    ck_assert_uint_gt(n, 0);
    /* Laid end to end: thread 0's root slices add up to its samples. */
    long long sum = 0, end = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i].tid == 100 && s[i].ts >= end) {
            sum += s[i].dur;
            end = s[i].ts + s[i].dur;
        }
    ck_assert_int_eq(sum, (long long)(NTICKS * PERIOD / 1000));
    free(s);
    jfree(&doc);
    free(b.d);
    profile_free(fx.p);
}
END_TEST

/* ---- svg ------------------------------------------------------------------------- */

START_TEST(svg_output)
{
    struct fixture fx;
    build(&fx, 0, 4);
    for (int variant = 0; variant < 3; variant++) {
        struct emit_options o = { 0 };
        o.format = FORMAT_SVG;
        o.per_thread = variant >= 1;
        o.per_process = variant >= 2;
        o.exclude_idle = variant == 1;
        o.title = variant == 2 ? "title <&> \"x\"" : NULL;
        struct buf b = run_writer(emit_svg, fx.p, &o);
        ck_assert_uint_eq(strlen(b.d), b.len);
        ck_assert_ptr_nonnull(strstr(b.d, "<svg"));
        ck_assert_ptr_nonnull(strstr(b.d, "</svg>"));
        ck_assert_ptr_null(strstr(b.d, "<evil>"));
        ck_assert_ptr_null(strstr(b.d, "app<&>"));
        ck_assert(valid_utf8(b.d, b.len));
        ck_assert_int_eq(strstr(b.d, "(idle)") != NULL, variant != 1);
        ck_assert_ptr_nonnull(strstr(b.d, "(failed)"));
        if (variant >= 1)
            ck_assert_ptr_nonnull(strstr(b.d, "thread late (300)"));
        if (variant == 2) {
            ck_assert_ptr_nonnull(strstr(b.d, "process 4343"));
            ck_assert_ptr_nonnull(strstr(b.d, "title &lt;&amp;&gt;"));
        } else {
            ck_assert_ptr_nonnull(strstr(b.d, "pyflame"));
        }
        /* Well-formed XML, by a real parser when there is one. */
        if (have_cmd("xmllint") || have_cmd("python3")) {
            char *dir = make_tmpdir();
            char path[600], cmd[1400];
            snprintf(path, sizeof(path), "%s/out.svg", dir);
            write_file(path, b.d, b.len);
            if (have_cmd("xmllint"))
                snprintf(cmd, sizeof(cmd), "xmllint --noout '%s'", path);
            else
                snprintf(cmd, sizeof(cmd),
                         "python3 -c 'import sys, xml.dom.minidom; "
                         "xml.dom.minidom.parse(sys.argv[1])' '%s'", path);
            ck_assert_msg(run_status(cmd) == 0, "not well-formed XML: %s", cmd);
            rm_rf(dir);
            free(dir);
        }
        free(b.d);
    }
    profile_free(fx.p);
}
END_TEST

/* ---- all writers: an empty profile, write errors -------------------------------- */

START_TEST(empty_profile)
{
    for (int keep = 0; keep < 2; keep++) {
        struct profile *p = profile_new(keep);
        struct buf b = run_writer(emit_speedscope, p, NULL);
        struct jv doc;
        json_parse(b.d, b.len, &doc);
        const struct jv *frames, *profiles;
        check_speedscope_common(&doc, &frames, &profiles);
        ck_assert_uint_eq(profiles->n, 1);
        jfree(&doc);
        free(b.d);

        b = run_writer(emit_chrome, p, NULL);
        json_parse(b.d, b.len, &doc);
        size_t n;
        free(check_trace(&doc, &n));
        ck_assert_uint_eq(n, 0);
        jfree(&doc);
        free(b.d);

        struct pprof pp;
        b = pprof_bytes(p, NULL, &pp);
        ck_assert_uint_eq(pp.nsm, 0);
        pp_free(&pp);
        free(b.d);

        b = run_writer(emit_svg, p, NULL);
        ck_assert_ptr_nonnull(strstr(b.d, "</svg>"));
        free(b.d);
        profile_free(p);
    }
}
END_TEST

START_TEST(write_errors)
{
    FILE *f = fopen("/dev/full", "w");
    if (!f) {
        printf("SKIP: /dev/full not available\n");
        return;
    }
    fclose(f);
    struct fixture fx;
    build(&fx, 1, 4);
    writer_fn fns[] = { emit_speedscope, emit_pprof, emit_chrome, emit_svg };
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        f = fopen("/dev/full", "w");
        ck_assert_ptr_nonnull(f);
        setvbuf(f, NULL, _IONBF, 0);
        int rc = fns[i](f, fx.p, NULL);
        ck_assert_msg(rc < 0, "writer %zu returned %d on a full disk", i, rc);
        fclose(f);
    }
    profile_free(fx.p);
}
END_TEST

/* ---- real readers ------------------------------------------------------------------ */

START_TEST(real_go_pprof)
{
    if (!have_cmd("go")) {
        printf("SKIP: go tool pprof not installed (apt-get install golang-go)\n");
        fflush(stdout);
        return;
    }
    char *dir = make_tmpdir();
    for (int x = 0; x < 2; x++) {
        struct fixture fx;
        build(&fx, 1, 4);
        struct emit_options o = { 0 };
        o.exclude_idle = x;
        o.qualnames = x;
        struct buf b = run_writer(emit_pprof, fx.p, &o);
        char path[600], outp[600], cmd[2000];
        snprintf(path, sizeof(path), "%s/p%d.pb.gz", dir, x);
        snprintf(outp, sizeof(outp), "%s/raw%d.txt", dir, x);
        write_file(path, b.d, b.len);
        /* Offline: no toolchain downloads, HOME for go's own files. */
        snprintf(cmd, sizeof(cmd),
                 "cd '%s' && HOME=\"${HOME:-%s}\" GOTOOLCHAIN=local GOFLAGS= GOPROXY=off "
                 "timeout 300 go tool pprof -raw '%s' > '%s' 2>&1",
                 dir, dir, path, outp);
        int st = run_status(cmd);
        char *raw = read_file(outp, NULL);
        ck_assert_msg(st == 0, "go tool pprof -raw failed (%d):\n%s", st, raw ? raw : "");
        /* The "Samples:" section: "  COUNT  NANOS: loc ids", then labels. */
        char *sec = strstr(raw, "\nSamples:\n");
        ck_assert_ptr_nonnull(sec);
        char *end = strstr(sec, "\nLocations\n");
        ck_assert_ptr_nonnull(end);
        *end = '\0';
        ck_assert_ptr_nonnull(strstr(sec, "samples/count wall/nanoseconds"));
        unsigned long long cnt = 0, ns = 0;
        size_t nsamples = 0;
        for (char *line = strtok(sec, "\n"); line; line = strtok(NULL, "\n")) {
            unsigned long long a, c;
            char colon;
            if (sscanf(line, " %llu %llu%c", &a, &c, &colon) == 3 && colon == ':') {
                cnt += a;
                ns += c;
                nsamples++;
            }
        }
        size_t nc;
        profile_counts(fx.p, &nc);
        ck_assert_uint_eq(cnt, total_samples(fx.p, x));
        ck_assert_uint_eq(ns, total_samples(fx.p, x) * PERIOD);
        ck_assert_uint_ge(nsamples, 1);
        ck_assert_ptr_nonnull(strstr(raw, "PeriodType: wall nanoseconds"));
        free(raw);
        free(b.d);
        profile_free(fx.p);
    }
    printf("real reader: go tool pprof -raw read the pprof output, totals match\n");
    fflush(stdout);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* A JSON-schema validator for the keywords speedscope's schema uses, plus the
 * checks speedscope's importer makes (frame indexes, samples vs weights). */
static const char SCHEMA_JS[] =
    "'use strict';\n"
    "const fs = require('fs');\n"
    "const schema = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));\n"
    "const known = new Set(['$schema','definitions','$ref','title','description','type',\n"
    "  'properties','required','items','anyOf','oneOf','allOf','enum','const',\n"
    "  'additionalProperties']);\n"
    "function resolve(ref) {\n"
    "  if (!ref.startsWith('#/')) throw new Error('unsupported $ref ' + ref);\n"
    "  let s = schema;\n"
    "  for (const part of ref.slice(2).split('/'))\n"
    "    s = s[part.replace(/~1/g, '/').replace(/~0/g, '~')];\n"
    "  if (s === undefined) throw new Error('dangling $ref ' + ref);\n"
    "  return s;\n"
    "}\n"
    "function isType(t, v) {\n"
    "  switch (t) {\n"
    "  case 'object': return v !== null && typeof v === 'object' && !Array.isArray(v);\n"
    "  case 'array': return Array.isArray(v);\n"
    "  case 'string': return typeof v === 'string';\n"
    "  case 'number': return typeof v === 'number' && isFinite(v);\n"
    "  case 'integer': return Number.isInteger(v);\n"
    "  case 'boolean': return typeof v === 'boolean';\n"
    "  case 'null': return v === null;\n"
    "  }\n"
    "  throw new Error('unsupported type ' + t);\n"
    "}\n"
    "function check(s, v, path, errs) {\n"
    "  for (const k of Object.keys(s))\n"
    "    if (!known.has(k)) throw new Error('unsupported schema keyword ' + k);\n"
    "  if (errs.length > 20) return;\n"
    "  if (s.$ref) check(resolve(s.$ref), v, path, errs);\n"
    "  if (s.type) {\n"
    "    const ts = Array.isArray(s.type) ? s.type : [s.type];\n"
    "    if (!ts.some(t => isType(t, v))) { errs.push(path + ': not ' + ts.join('|')); return; }\n"
    "  }\n"
    "  if ('const' in s && v !== s.const) errs.push(path + ': not ' + JSON.stringify(s.const));\n"
    "  if (s.enum && !s.enum.includes(v)) errs.push(path + ': not one of ' + s.enum.join(','));\n"
    "  if (isType('object', v)) {\n"
    "    for (const r of s.required || []) if (!(r in v)) errs.push(path + ': lacks ' + r);\n"
    "    for (const [k, ps] of Object.entries(s.properties || {}))\n"
    "      if (k in v) check(ps, v[k], path + '.' + k, errs);\n"
    "    if (s.additionalProperties === false)\n"
    "      for (const k of Object.keys(v))\n"
    "        if (!(s.properties && k in s.properties)) errs.push(path + ': extra ' + k);\n"
    "  }\n"
    "  if (s.items && Array.isArray(v))\n"
    "    for (let i = 0; i < v.length; i++) check(s.items, v[i], path + '[' + i + ']', errs);\n"
    "  const ok = a => { const e = []; check(a, v, path, e); return e.length === 0; };\n"
    "  if (s.anyOf && !s.anyOf.some(ok)) errs.push(path + ': matches none of anyOf');\n"
    "  if (s.oneOf && s.oneOf.filter(ok).length !== 1) errs.push(path + ': not exactly one of oneOf');\n"
    "  for (const a of s.allOf || []) check(a, v, path, errs);\n"
    "}\n"
    "let bad = 0;\n"
    "for (const file of process.argv.slice(3)) {\n"
    "  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));\n"
    "  const errs = [];\n"
    "  check(schema, doc, '$', errs);\n"
    "  const nf = doc.shared.frames.length;\n"
    "  for (const p of doc.profiles) {\n"
    "    if (p.type !== 'sampled') continue;\n"
    "    if (p.samples.length !== p.weights.length) errs.push(p.name + ': samples/weights');\n"
    "    for (const s of p.samples) for (const f of s)\n"
    "      if (!Number.isInteger(f) || f < 0 || f >= nf) errs.push(p.name + ': frame ' + f);\n"
    "    if (p.endValue < p.startValue) errs.push(p.name + ': endValue < startValue');\n"
    "  }\n"
    "  if (errs.length) { bad++; console.log(file + ':\\n  ' + errs.slice(0, 20).join('\\n  ')); }\n"
    "}\n"
    "console.log(bad ? 'INVALID' : 'ok');\n"
    "process.exit(bad ? 1 : 0);\n";

START_TEST(real_speedscope_schema)
{
    if (!have_cmd("node")) {
        printf("SKIP: speedscope schema check: node not installed (apt-get install nodejs npm)\n");
        fflush(stdout);
        return;
    }
    char *dir = make_tmpdir();
    char schema[1200], cmd[3000];
    const char *pre = getenv("PYFLAME_SPEEDSCOPE_DIR");
    if (pre && *pre) {
        snprintf(schema, sizeof(schema),
                 "%s/node_modules/speedscope/dist/release/file-format-schema.json", pre);
    } else {
        if (getenv("PYFLAME_OFFLINE") && *getenv("PYFLAME_OFFLINE")) {
            printf("SKIP: speedscope schema check: PYFLAME_OFFLINE is set (no npm install)\n");
            fflush(stdout);
            rm_rf(dir);
            free(dir);
            return;
        }
        if (!have_cmd("npm")) {
            printf("SKIP: speedscope schema check: npm not installed (apt-get install npm)\n");
            fflush(stdout);
            rm_rf(dir);
            free(dir);
            return;
        }
        snprintf(cmd, sizeof(cmd),
                 "cd '%s' && timeout 300 npm install --prefix '%s' --no-audit --no-fund "
                 "--no-save --fetch-retries=1 --loglevel=error speedscope > npm.log 2>&1",
                 dir, dir);
        int st = run_status(cmd);
        snprintf(schema, sizeof(schema),
                 "%s/node_modules/speedscope/dist/release/file-format-schema.json", dir);
        if (st != 0 || access(schema, R_OK) != 0) {
            char logp[700];
            snprintf(logp, sizeof(logp), "%s/npm.log", dir);
            char *log = read_file(logp, NULL);
            printf("SKIP: speedscope schema check: `npm install speedscope` failed (%d): %.300s\n",
                   st, log ? log : "");
            fflush(stdout);
            free(log);
            rm_rf(dir);
            free(dir);
            return;
        }
    }
    ck_assert_msg(access(schema, R_OK) == 0, "no schema at %s", schema);

    char js[700];
    snprintf(js, sizeof(js), "%s/validate.js", dir);
    write_file(js, SCHEMA_JS, strlen(SCHEMA_JS));
    size_t off = (size_t)snprintf(cmd, sizeof(cmd), "node '%s' '%s'", js, schema);

    /* Outputs: timeline (with and without idle), single thread, aggregates, empty. */
    for (int v = 0; v < 5; v++) {
        struct fixture fx;
        if (v == 4) {
            fx.p = profile_new(1);
        } else {
            build(&fx, v != 3, v == 2 ? 1 : 4);
        }
        struct emit_options o = { 0 };
        o.exclude_idle = v == 1;
        o.no_line_numbers = v == 1;
        struct buf b = run_writer(emit_speedscope, fx.p, &o);
        char path[700];
        snprintf(path, sizeof(path), "%s/s%d.speedscope.json", dir, v);
        write_file(path, b.d, b.len);
        off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, " '%s'", path);
        free(b.d);
        profile_free(fx.p);
    }
    char outp[700];
    snprintf(outp, sizeof(outp), "%s/node.out", dir);
    snprintf(cmd + off, sizeof(cmd) - off, " > '%s' 2>&1", outp);
    int st = run_status(cmd);
    char *res = read_file(outp, NULL);
    ck_assert_msg(st == 0, "speedscope schema check failed (%d):\n%s", st, res ? res : "");
    ck_assert_ptr_nonnull(strstr(res, "ok"));
    printf("real reader: 5 speedscope outputs valid against speedscope's file-format-schema.json\n");
    fflush(stdout);
    free(res);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- utils/flamechart2chrome -------------------------------------------------------- */

/* The converter `make` built (make check-unit builds it first), or $FLAMECHART2CHROME.
 * NULL (after a SKIP line) when neither is there. */
static char *build_converter(const char *dir)
{
    (void)dir;
    const char *env = getenv("FLAMECHART2CHROME");
    const char *bin = env && *env ? env : "utils/flamechart2chrome";
    if (access(bin, X_OK) != 0) {
        printf("SKIP: %s not built (run `make utils` from the repository root)\n", bin);
        fflush(stdout);
        return NULL;
    }
    return realpath(bin, NULL);
}

static struct jv run_converter(const char *dir, const char *bin, const char *input,
                               const char *args, int want_status, char **raw)
{
    char in[700], outp[700], cmd[2400];
    snprintf(in, sizeof(in), "%s/in.txt", dir);
    snprintf(outp, sizeof(outp), "%s/out.json", dir);
    write_file(in, input, strlen(input));
    snprintf(cmd, sizeof(cmd), "'%s' %s -o '%s' '%s' 2>'%s/err.txt'", bin, args, outp, in, dir);
    int st = run_status(cmd);
    ck_assert_int_eq(st, want_status);
    struct jv doc;
    memset(&doc, 0, sizeof(doc));
    *raw = NULL;
    if (want_status == 0) {
        size_t len;
        *raw = read_file(outp, &len);
        ck_assert_ptr_nonnull(*raw);
        json_parse(*raw, len, &doc);
    } else {
        ck_assert_int_ne(access(outp, F_OK), 0);    /* nothing left behind */
    }
    return doc;
}

START_TEST(flamechart2chrome_converts)
{
    char *dir = make_tmpdir();
    char *bin = build_converter(dir);
    if (!bin) {
        rm_rf(dir);
        free(dir);
        return;
    }
    /* Per-thread roots; thread T2 skips a timestamp; hostile names. */
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    const unsigned long long t0 = 1700000000000000ULL;
    for (int k = 0; k < 30; k++) {
        unsigned long long ts = t0 + (unsigned long long)k * 1000 + (unsigned long long)(k % 3);
        const char *root = "process 77 python3 a<b>.py;thread Main \"<&>\" (77);";
        if (k < 10)
            fprintf(f, "%llu\n%sa<&>.py:<module>:1;a<&>.py:run:%d;b\xff.py:work:5;\n", ts, root,
                    k < 5 ? 20 : 21);
        else if (k < 15)    /* as pyflame writes them: without the roots */
            fprintf(f, "%llu\n(idle)\n", ts);
        else if (k == 15)
            fprintf(f, "%llu\n(failed)\n", ts);
        else
            fprintf(f, "%llu\n%sa<&>.py:<module>:2;\n", ts, root);
        if (k != 7)
            fprintf(f, "%llu\nprocess 77 python3 a<b>.py;thread T2 (78);a<&>.py:<module>:1;\n", ts);
    }
    fclose(f);

    for (int x = 0; x < 2; x++) {
        char *raw;
        struct jv doc = run_converter(dir, bin, text, x ? "-x -p 1000" : "", 0, &raw);
        size_t n;
        struct slice *s = check_trace(&doc, &n);
        ck_assert(has_meta(&doc, "process_name", 77, -1, "process 77 python3 a<b>.py"));
        ck_assert(has_meta(&doc, "thread_name", 77, 77, "thread Main \"<&>\" (77)"));
        ck_assert(has_meta(&doc, "thread_name", 77, 78, "thread T2 (78)"));
        size_t nthreads = 0;
        const struct jv *evs = jreq(&doc, "traceEvents", J_ARR);
        for (size_t i = 0; i < evs->n; i++)
            if (strcmp(jstr(&evs->items[i], "ph"), "M") == 0 &&
                strcmp(jstr(&evs->items[i], "name"), "thread_name") == 0)
                nthreads++;
        ck_assert_uint_eq(nthreads, 2);     /* idle records joined their thread */
        const struct slice *first = NULL;
        /* <module> of Main: 0..9, then 16..29 after idle and failed. */
        ck_assert_uint_eq(count_slices(s, n, 77, 77, "<module>", &first), 2);
        ck_assert_int_eq(first->ts, (long long)t0);
        ck_assert_int_eq(first->ts + first->dur, (long long)(t0 + 10000 + 1));
        ck_assert_uint_eq(count_slices(s, n, 77, 77, "run", NULL), 1);
        ck_assert_uint_eq(count_slices(s, n, 77, 77, "work", &first), 2);
        ck_assert_uint_eq(count_slices(s, n, 77, 77, "(idle)", NULL), x ? 0 : 1);
        ck_assert_uint_eq(count_slices(s, n, 77, 77, "(failed)", NULL), 1);
        /* T2 has a gap at k == 7. */
        ck_assert_uint_eq(count_slices(s, n, 77, 78, "<module>", NULL), 2);
        /* The last sample lasts one period (-p, else the last interval). */
        long long last_end = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i].ts + s[i].dur > last_end)
                last_end = s[i].ts + s[i].dur;
        ck_assert_int_eq(last_end, (long long)(t0 + 29 * 1000 + 2 + (x ? 1000 : 1001)));
        ck_assert_ptr_nonnull(strstr(raw, "\"file\":\"b\\ufffd.py\""));
        free(s);
        jfree(&doc);
        free(raw);
    }

    /* Without roots: position within a timestamp is the thread. */
    const char *plain = "1700000000000000\na.py:f:1;\n1700000000000000\n(idle)\n"
                        "1700000000001000\na.py:f:2;a.py:g:3;\n1700000000001000\n(idle)\n";
    char *raw;
    struct jv doc = run_converter(dir, bin, plain, "--pid 9", 0, &raw);
    size_t n;
    struct slice *s = check_trace(&doc, &n);
    ck_assert_uint_eq(count_slices(s, n, 9, 1, "f", NULL), 1);
    ck_assert_uint_eq(count_slices(s, n, 9, 1, "g", NULL), 1);
    ck_assert_uint_eq(count_slices(s, n, 9, 2, "(idle)", NULL), 1);
    free(s);
    jfree(&doc);
    free(raw);

    /* Malformed inputs fail with status 1 and leave no output file. */
    run_converter(dir, bin, "1700000000000000\na.py:f:1\n", "", 1, &raw);
    run_converter(dir, bin, "not a timestamp\n", "", 1, &raw);
    run_converter(dir, bin, "1700000000000000\n", "", 1, &raw);

    free(text);
    free(bin);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* pyflame's own --flamechart output (per thread and process roots) through
 * the converter gives the slices emit_chrome gives for the same profile. */
START_TEST(flamechart2chrome_matches_emit_chrome)
{
    char *dir = make_tmpdir();
    char *bin = build_converter(dir);
    if (!bin) {
        rm_rf(dir);
        free(dir);
        return;
    }
    struct fixture fx;
    build(&fx, 1, 4);
    struct emit_options o = { 0 };
    o.format = FORMAT_FLAMECHART;
    o.per_thread = 1;
    o.per_process = 1;
    struct buf text = run_writer(emit_flamechart, fx.p, &o);
    char *raw;
    char args[64];
    snprintf(args, sizeof(args), "-p %llu", PERIOD / 1000);
    struct jv conv = run_converter(dir, bin, text.d, args, 0, &raw);
    size_t nc;
    struct slice *sc = check_trace(&conv, &nc);

    o.format = FORMAT_CHROME;
    struct buf chrome = run_writer(emit_chrome, fx.p, &o);
    struct jv ref;
    json_parse(chrome.d, chrome.len, &ref);
    size_t nr;
    struct slice *sr = check_trace(&ref, &nr);

    /* Threads with a known tid: the same slices, names aside from the bytes
     * the text format replaces with '?'. */
    const long long tids[] = { 100, 101, 300 };
    for (size_t t = 0; t < 3; t++) {
        size_t i = 0, k = 0, matched = 0;
        for (;;) {
            while (i < nc && sc[i].tid != tids[t])
                i++;
            while (k < nr && sr[k].tid != tids[t])
                k++;
            if (i == nc || k == nr)
                break;
            ck_assert_int_eq(sc[i].pid, sr[k].pid);
            ck_assert_int_eq(sc[i].ts, sr[k].ts);
            ck_assert_int_eq(sc[i].dur, sr[k].dur);
            char *want = strdup(sr[k].name);
            for (char *q = want; *q; q++)
                if (*q == ';' || *q == '\n')
                    *q = '?';
            ck_assert_str_eq(sc[i].name, want);
            free(want);
            i++;
            k++;
            matched++;
        }
        ck_assert_msg(i == nc && k == nr, "tid %lld: slice counts differ", tids[t]);
        ck_assert_uint_gt(matched, 0);
    }
    free(sc);
    free(sr);
    jfree(&conv);
    jfree(&ref);
    free(raw);
    free(text.d);
    free(chrome.d);
    profile_free(fx.p);
    free(bin);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- the suite ------------------------------------------------------------------------ */

static Suite *suite(void)
{
    Suite *s = suite_create("emit_formats");
    TCase *tc = tcase_create("writers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, speedscope_timeline);
    tcase_add_test(tc, speedscope_timeline_options);
    tcase_add_test(tc, speedscope_single_thread);
    tcase_add_test(tc, speedscope_aggregates);
    tcase_add_test(tc, pprof_structure);
    tcase_add_test(tc, pprof_options);
    tcase_add_test(tc, chrome_structure);
    tcase_add_test(tc, chrome_exclude_idle);
    tcase_add_test(tc, chrome_aggregates);
    tcase_add_test(tc, svg_output);
    tcase_add_test(tc, empty_profile);
    tcase_add_test(tc, write_errors);
    suite_add_tcase(s, tc);

    TCase *real = tcase_create("real_readers");
    tcase_set_timeout(real, 900);
    tcase_add_test(real, real_go_pprof);
    tcase_add_test(real, real_speedscope_schema);
    tcase_add_test(real, flamechart2chrome_converts);
    tcase_add_test(real, flamechart2chrome_matches_emit_chrome);
    suite_add_tcase(s, real);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
