/*
 * flamechart2chrome - convert Pyflame's --flamechart text to the Chrome Trace
 * Event Format (JSON), for chrome://tracing, Perfetto or speedscope.
 *
 *   flamechart2chrome [-x] [-p PERIOD_US] [--pid PID] [-o OUT.json] [IN.txt]
 *
 * Input: records of two lines, a timestamp (microseconds since the epoch),
 * then the stack root -> leaf with every frame followed by ';'
 * ("a.py:<module>:3;a.py:f:10;"), or "(idle)" / "(failed)".  With --threads
 * several records share one timestamp: one per thread.
 *
 * Threads: a record whose stack starts with pyflame's synthetic roots
 * "process PID ..." and/or "thread NAME (TID)" (--per-process, --per-thread)
 * goes to that process and thread, and the roots are dropped from the stack.
 * A record without roots (pyflame writes "(idle)" and "(failed)" without
 * them) goes to the thread last seen at its position within a timestamp.
 * Otherwise the records of one timestamp are told apart by position: the
 * first is track "#0", the second "#1", ... (pid from --pid, default 1).
 *
 * Output, as in pyflame's own chrome format (src/emit_chrome.c): "M" events
 * naming processes and threads; "X" slices with ts/dur in whole microseconds
 * since the epoch (absolute, as in the input).  A sample lasts until the next
 * timestamp (the last one for one period: -p, else the last interval seen,
 * else 10 ms); a second record of the same thread at one timestamp is
 * ignored.  A frame carries on from one sample to the next when it is
 * the same function ("file:function", the line left out) and every frame
 * above it is the very same frame; so slices nest.  A thread missing from a
 * timestamp gets a gap.  "(idle)" samples make "(idle)" slices, or nothing
 * under -x; "(failed)" samples make "(failed)" slices.  A slice is named by
 * its function, with args {"file": ...}.
 *
 * Exit status: 0, 1 for a malformed input (with the line number), 2 for bad
 * usage or an I/O error; on failure the -o file is removed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emit.h"

#define DEFAULT_PERIOD_US 10000ULL
#define SYNTH_TID_BASE 1000000000LL

/* ---- output --------------------------------------------------------------- */

static FILE *out;
static int first_event = 1;

/* s[0..len) as a JSON string (src/emit_common.c). */
static void json_str(const char *s, size_t len)
{
    emit_json_stringn(out, s, len);
}

static void sep(void)
{
    if (!first_event)
        fputs(",\n", out);
    first_event = 0;
}

/* ---- tracks ------------------------------------------------------------------ */

struct track {
    char *key;
    long long pid, tid;
    char **frames;            /* open slices, root first */
    unsigned long long *start;
    size_t depth, cap;
    unsigned long long cur_end;
};

static struct track *tracks;
static size_t ntracks, tracks_cap;
static long long *pids_named;
static size_t npids_named;
static char **pos_key;        /* position in a timestamp -> last rooted track there */
static size_t npos;

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "flamechart2chrome: out of memory\n");
        exit(2);
    }
    return q;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* The length of frame f without a trailing ":<digits>" (its line). */
static size_t func_len(const char *f)
{
    size_t n = strlen(f), i = n;
    while (i > 0 && f[i - 1] >= '0' && f[i - 1] <= '9')
        i--;
    if (i < n && i > 0 && f[i - 1] == ':')
        return i - 1;
    return n;
}

static int same_function(const char *a, const char *b)
{
    size_t la = func_len(a), lb = func_len(b);
    return la == lb && memcmp(a, b, la) == 0;
}

static void emit_slice(const struct track *t, const char *frame, unsigned long long ts,
                       unsigned long long te)
{
    if (te <= ts)
        return;
    sep();
    fprintf(out, "{\"ph\":\"X\",\"pid\":%lld,\"tid\":%lld,\"ts\":%llu,\"dur\":%llu,\"name\":",
            t->pid, t->tid, ts, te - ts);
    if (strcmp(frame, "(idle)") == 0) {
        fputs("\"(idle)\",\"cat\":\"idle\"}", out);
        return;
    }
    if (strcmp(frame, "(failed)") == 0) {
        fputs("\"(failed)\",\"cat\":\"failed\"}", out);
        return;
    }
    size_t fl = func_len(frame);
    const char *colon = NULL;
    for (size_t i = fl; i > 0; i--)
        if (frame[i - 1] == ':') {
            colon = frame + i - 1;
            break;
        }
    if (!colon || colon == frame) {
        json_str(frame, fl);
        fputs(",\"cat\":\"python\"}", out);
        return;
    }
    json_str(colon + 1, (size_t)(frame + fl - colon - 1));
    fputs(",\"cat\":\"python\",\"args\":{\"file\":", out);
    json_str(frame, (size_t)(colon - frame));
    fputs("}}", out);
}

static void close_to(struct track *t, size_t depth, unsigned long long at)
{
    while (t->depth > depth) {
        t->depth--;
        emit_slice(t, t->frames[t->depth], t->start[t->depth], at);
        free(t->frames[t->depth]);
    }
}

static void name_process(long long pid, const char *name, size_t len)
{
    for (size_t i = 0; i < npids_named; i++)
        if (pids_named[i] == pid)
            return;
    pids_named = xrealloc(pids_named, (npids_named + 1) * sizeof(*pids_named));
    pids_named[npids_named++] = pid;
    sep();
    fprintf(out, "{\"ph\":\"M\",\"pid\":%lld,\"tid\":0,\"name\":\"process_name\",\"args\":{\"name\":",
            pid);
    json_str(name, len);
    fputs("}}", out);
}

static struct track *get_track(const char *key, long long pid, long long tid, const char *name)
{
    for (size_t i = 0; i < ntracks; i++)
        if (strcmp(tracks[i].key, key) == 0)
            return &tracks[i];
    if (ntracks == tracks_cap) {
        tracks_cap = tracks_cap ? tracks_cap * 2 : 16;
        tracks = xrealloc(tracks, tracks_cap * sizeof(*tracks));
    }
    /* tids are unique within a process: make one up on a clash. */
    long long synth = SYNTH_TID_BASE + (long long)ntracks;
    for (int clash = 1; clash;) {
        clash = 0;
        for (size_t i = 0; i < ntracks; i++)
            if (tracks[i].pid == pid && tracks[i].tid == tid) {
                tid = synth++;
                clash = 1;
                break;
            }
    }
    struct track *t = &tracks[ntracks++];
    memset(t, 0, sizeof(*t));
    t->key = xstrndup(key, strlen(key));
    t->pid = pid;
    t->tid = tid;
    sep();
    fprintf(out, "{\"ph\":\"M\",\"pid\":%lld,\"tid\":%lld,\"name\":\"thread_name\",\"args\":{\"name\":",
            pid, tid);
    json_str(name, strlen(name));
    fputs("}}", out);
    return t;
}

/* ---- records and rounds ---------------------------------------------------------- */

struct record {
    char *line;        /* the stack line, frames split in place */
    char **frames;
    size_t n;
};

struct round {
    unsigned long long ts;
    struct record *rec;
    size_t n, cap;
};

static int exclude_idle;
static long long default_pid = 1;
static const char *input_name = "stdin";

static int is_digits(const char *s, size_t n)
{
    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* "thread NAME (TID)": the TID, or -1 when f is not such a root. */
static long long thread_root(const char *f)
{
    size_t n = strlen(f);
    if (strncmp(f, "thread ", 7) != 0 || n < 10 || f[n - 1] != ')')
        return -1;
    size_t i = n - 1;
    while (i > 0 && f[i - 1] >= '0' && f[i - 1] <= '9')
        i--;
    if (i == n - 1 || i < 2 || f[i - 1] != '(' || f[i - 2] != ' ')
        return -1;
    return strtoll(f + i, NULL, 10);
}

/* "process PID[ CMDLINE]": the PID, or -1. */
static long long process_root(const char *f)
{
    if (strncmp(f, "process ", 8) != 0)
        return -1;
    size_t i = 8, j = 8;
    while (f[j] >= '0' && f[j] <= '9')
        j++;
    if (j == i || (f[j] != '\0' && f[j] != ' '))
        return -1;
    return strtoll(f + i, NULL, 10);
}

static void play_record(struct record *r, size_t position, unsigned long long start,
                        unsigned long long end)
{
    size_t k = 0;
    long long pid = default_pid, tid = -1;
    const char *pname = NULL, *tname = NULL;
    if (k < r->n && process_root(r->frames[k]) >= 0) {
        pid = process_root(r->frames[k]);
        pname = r->frames[k++];
    }
    if (k < r->n && thread_root(r->frames[k]) >= 0) {
        tid = thread_root(r->frames[k]);
        tname = r->frames[k++];
    }
    char key[64], posname[64];
    char *keybuf = NULL;
    if (pname)
        name_process(pid, pname, strlen(pname));
    else
        name_process(pid, input_name, strlen(input_name));
    if (tname) {
        size_t len = strlen(tname) + 32;
        keybuf = xrealloc(NULL, len);
        snprintf(keybuf, len, "%lld/%s", pid, tname);
        if (position >= npos) {
            pos_key = xrealloc(pos_key, (position + 1) * sizeof(*pos_key));
            while (npos <= position)
                pos_key[npos++] = NULL;
        }
        free(pos_key[position]);
        pos_key[position] = xstrndup(keybuf, strlen(keybuf));
    } else if (!pname && position < npos && pos_key[position]) {
        /* No roots (pyflame writes idle and failed samples without them):
         * the thread last seen at this position. */
        keybuf = xstrndup(pos_key[position], strlen(pos_key[position]));
        posname[0] = '\0';
        tname = posname;
    } else {
        snprintf(key, sizeof(key), "%lld/#%zu", pid, position);
        snprintf(posname, sizeof(posname), "thread #%zu", position);
        tname = posname;
    }
    if (tid <= 0)
        tid = (long long)position + 1;
    struct track *t = get_track(keybuf ? keybuf : key, pid, tid, tname);
    free(keybuf);

    char **fr = r->frames + k;
    size_t n = r->n - k;
    if (t->cur_end > start)
        return;                            /* a second record of one thread at one time */
    if (t->depth && start != t->cur_end)
        close_to(t, 0, t->cur_end);        /* the thread was missing: a gap */
    if (exclude_idle && n == 1 && strcmp(fr[0], "(idle)") == 0) {
        close_to(t, 0, start);
        t->cur_end = end;
        return;
    }
    size_t same = 0;
    while (same < n && same < t->depth) {
        if (same > 0 && strcmp(t->frames[same - 1], fr[same - 1]) != 0)
            break;
        if (!same_function(t->frames[same], fr[same]))
            break;
        same++;
    }
    close_to(t, same, start);
    if (n > t->cap) {
        t->cap = n;
        t->frames = xrealloc(t->frames, n * sizeof(*t->frames));
        t->start = xrealloc(t->start, n * sizeof(*t->start));
    }
    for (size_t i = 0; i < n; i++) {
        if (i < t->depth) {
            free(t->frames[i]);
        } else {
            t->start[i] = start;
        }
        t->frames[i] = xstrndup(fr[i], strlen(fr[i]));
    }
    t->depth = n;
    t->cur_end = end;
}

static void play_round(struct round *rd, unsigned long long end)
{
    for (size_t i = 0; i < rd->n; i++) {
        play_record(&rd->rec[i], i, rd->ts, end);
        free(rd->rec[i].line);
        free(rd->rec[i].frames);
    }
    rd->n = 0;
}

/* Split a stack line into frames, in place. */
static int parse_stack(char *line, struct record *r)
{
    r->line = line;
    r->frames = NULL;
    r->n = 0;
    if (strcmp(line, "(idle)") == 0 || strcmp(line, "(failed)") == 0) {
        r->frames = xrealloc(NULL, sizeof(char *));
        r->frames[r->n++] = line;
        return 0;
    }
    size_t cap = 0;
    char *p = line;
    while (*p) {
        char *semi = strchr(p, ';');
        if (!semi)
            return -1;        /* every frame is followed by ';' */
        *semi = '\0';
        if (r->n == cap) {
            cap = cap ? cap * 2 : 16;
            r->frames = xrealloc(r->frames, cap * sizeof(char *));
        }
        r->frames[r->n++] = p;
        p = semi + 1;
    }
    return r->n ? 0 : -1;
}

static void usage(FILE *f)
{
    fputs("usage: flamechart2chrome [-x] [-p PERIOD_US] [--pid PID] [-o OUT.json] [IN.txt]\n"
          "Convert Pyflame --flamechart output to Chrome trace JSON.\n"
          "  -x, --exclude-idle     no slices for idle samples\n"
          "  -p, --period-us=N      how long the last sample lasts (default: the last\n"
          "                         interval between timestamps, else 10000)\n"
          "      --pid=PID          pid for records without a \"process ...\" root (default 1)\n"
          "  -o, --output=PATH      write there instead of stdout\n", f);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "exclude-idle", no_argument, NULL, 'x' },
        { "period-us", required_argument, NULL, 'p' },
        { "pid", required_argument, NULL, 'P' },
        { "output", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long long period = 0;
    const char *outpath = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "xp:o:h", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'x':
            exclude_idle = 1;
            break;
        case 'p':
            errno = 0;
            period = strtoull(optarg, &end, 10);
            if (errno || *end || !period || optarg[0] == '-') {
                fprintf(stderr, "flamechart2chrome: bad period \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'P':
            errno = 0;
            default_pid = strtoll(optarg, &end, 10);
            if (errno || *end || default_pid < 0 || default_pid > INT32_MAX) {
                fprintf(stderr, "flamechart2chrome: bad pid \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'o':
            outpath = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        usage(stderr);
        return 2;
    }
    FILE *in = stdin;
    if (optind < argc && strcmp(argv[optind], "-") != 0) {
        input_name = argv[optind];
        in = fopen(argv[optind], "r");
        if (!in) {
            fprintf(stderr, "flamechart2chrome: %s: %s\n", argv[optind], strerror(errno));
            return 2;
        }
    }
    out = stdout;
    if (outpath && strcmp(outpath, "-") != 0) {
        out = fopen(outpath, "w");
        if (!out) {
            fprintf(stderr, "flamechart2chrome: %s: %s\n", outpath, strerror(errno));
            return 2;
        }
    }

    fputs("{\"traceEvents\":[\n", out);
    struct round rd = { 0, NULL, 0, 0 };
    int have_round = 0, rc = 0;
    unsigned long long last_interval = 0, ts = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long lineno = 0, ts_line = 0;
    int want_stack = 0;
    while ((len = getline(&line, &cap, in)) != -1) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!want_stack)
            while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
                line[--len] = '\0';
        if (!want_stack) {
            if (len == 0)
                continue;
            if (!is_digits(line, (size_t)len)) {
                fprintf(stderr, "flamechart2chrome: %s:%lu: expected a timestamp "
                        "(microseconds since the epoch)\n", input_name, lineno);
                rc = 1;
                break;
            }
            errno = 0;
            ts = strtoull(line, NULL, 10);
            if (errno) {
                fprintf(stderr, "flamechart2chrome: %s:%lu: timestamp out of range\n",
                        input_name, lineno);
                rc = 1;
                break;
            }
            ts_line = lineno;
            want_stack = 1;
            continue;
        }
        want_stack = 0;
        struct record r = { NULL, NULL, 0 };
        char *copy = xstrndup(line, (size_t)len);
        if (len == 0 || parse_stack(copy, &r) < 0) {
            fprintf(stderr, "flamechart2chrome: %s:%lu: expected a stack (frames each "
                    "followed by ';', or \"(idle)\" / \"(failed)\")\n", input_name, lineno);
            free(copy);
            free(r.frames);
            rc = 1;
            break;
        }
        /* Timestamps are made monotonic: a clock stepping back gives a
         * zero-length round rather than overlapping slices. */
        if (have_round && ts < rd.ts)
            ts = rd.ts;
        if (have_round && ts != rd.ts) {
            last_interval = ts - rd.ts;
            play_round(&rd, ts);
        }
        if (!have_round || rd.n == 0)
            rd.ts = ts;
        have_round = 1;
        if (rd.n == rd.cap) {
            rd.cap = rd.cap ? rd.cap * 2 : 16;
            rd.rec = xrealloc(rd.rec, rd.cap * sizeof(*rd.rec));
        }
        rd.rec[rd.n++] = r;
    }
    if (rc == 0 && want_stack) {
        fprintf(stderr, "flamechart2chrome: %s:%lu: a timestamp without a stack at the end\n",
                input_name, ts_line);
        rc = 1;
    }
    if (rc == 0 && ferror(in)) {
        fprintf(stderr, "flamechart2chrome: %s: %s\n", input_name, strerror(errno));
        rc = 2;
    }
    if (rc == 0) {
        if (have_round && rd.n) {
            unsigned long long p = period ? period : last_interval ? last_interval
                                                                   : DEFAULT_PERIOD_US;
            play_round(&rd, rd.ts + p);
        }
        for (size_t i = 0; i < ntracks; i++)
            close_to(&tracks[i], 0, tracks[i].cur_end);
        fputs("\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"converter\":\"flamechart2chrome\","
              "\"ts_unit\":\"us since the epoch\"}}\n", out);
    }
    for (size_t i = 0; i < rd.n; i++) {
        free(rd.rec[i].line);
        free(rd.rec[i].frames);
    }
    free(rd.rec);
    free(line);
    for (size_t i = 0; i < ntracks; i++) {
        for (size_t k = 0; k < tracks[i].depth; k++)
            free(tracks[i].frames[k]);
        free(tracks[i].frames);
        free(tracks[i].start);
        free(tracks[i].key);
    }
    free(tracks);
    free(pids_named);
    for (size_t i = 0; i < npos; i++)
        free(pos_key[i]);
    free(pos_key);
    if (in != stdin)
        fclose(in);
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "flamechart2chrome: writing the output: %s\n", strerror(errno));
        rc = 2;
    }
    if (out != stdout && fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "flamechart2chrome: writing the output: %s\n", strerror(errno));
        rc = 2;
    }
    if (rc != 0 && out != stdout)
        unlink(outpath);                /* no half-written file left behind */
    return rc;
}
