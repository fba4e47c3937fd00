/*
 * fg_svg.c - writing the call tree (flamegraph.c) as an interactive SVG.
 *
 * Layout: every frame gets x = (samples before it) / total * width, its width
 * in proportion to its samples; children are sorted by name.  Frames
 * narrower than minwidth are left out (their samples still count in their
 * parent).  Each frame is
 *
 *   <g class="f" data-s="START" data-n="SAMPLES"><title>NAME (N samples, P%)</title>
 *   <rect x= y= width= height= fill=/><text x= y=>NAME, cut to fit</text></g>
 *
 * where START and SAMPLES are exact integers the script (fg_script.c) uses
 * to zoom and to compute the matched percentage of a search.
 */
#include "flamegraph.h"
#include "fg_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* geometry, px */
#define XPAD        10
#define FRAME_H     16      /* one level; the rect is FRAME_H - 1 high */
#define FRAME_H_1   "15"
#define FONT_SIZE   12
#define CHAR_W      (FONT_SIZE * 0.59)   /* average glyph width, for cutting names */
#define TOP_PAD     40
#define SUBTITLE_H  18
#define BOTTOM_PAD  34

/* ---- buffered output ------------------------------------------------------------ */

struct out {
    FILE *f;
    int err;                /* first errno */
    size_t len;
    char buf[1 << 16];
};

static void out_flush(struct out *o)
{
    if (o->len && !o->err && fwrite(o->buf, 1, o->len, o->f) != o->len)
        o->err = errno ? errno : EIO;
    o->len = 0;
}

static void out_put(struct out *o, const char *s, size_t n)
{
    while (n) {
        if (o->len == sizeof(o->buf))
            out_flush(o);
        size_t k = sizeof(o->buf) - o->len;
        if (k > n)
            k = n;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

static void out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void out_fmt(struct out *o, const char *fmt, ...)
{
    va_list ap;
    if (sizeof(o->buf) - o->len < 512)
        out_flush(o);
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(o->buf) - o->len) {
        o->len += (size_t)n;
        return;
    }
    /* longer than the room left: format into a heap buffer */
    char *big = malloc((size_t)n + 1);
    if (!big) {
        if (!o->err)
            o->err = ENOMEM;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    out_put(o, big, (size_t)n);
    free(big);
}

static void out_u64(struct out *o, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    out_put(o, tmp + i, sizeof(tmp) - i);
}

/* v >= 0 with two decimals, like "%.2f" */
static void out_fix2(struct out *o, double v)
{
    if (!(v >= 0) || v >= 1e15) {
        out_fmt(o, "%.2f", v);
        return;
    }
    uint64_t c = (uint64_t)llround(v * 100);
    char tmp[4] = { '.', (char)('0' + c / 10 % 10), (char)('0' + c % 10), 0 };
    out_u64(o, c / 100);
    out_put(o, tmp, 3);
}

/* ---- text: valid UTF-8, no control characters, XML-escaped ------------------------ */

/* One "character" of s: how many input bytes it takes, and what to write
 * for it (raw bytes, an entity, '?' for a control character, or U+FFFD for
 * a byte that is not valid UTF-8). */
static size_t next_char(const unsigned char *s, const char **rep, size_t *replen)
{
    unsigned char c = s[0];
    static const char fffd[] = "\xef\xbf\xbd";
    if (c < 0x80) {
        switch (c) {
        case '&': *rep = "&amp;"; *replen = 5; return 1;
        case '<': *rep = "&lt;"; *replen = 4; return 1;
        case '>': *rep = "&gt;"; *replen = 4; return 1;
        case '"': *rep = "&quot;"; *replen = 6; return 1;
        case '\'': *rep = "&apos;"; *replen = 6; return 1;
        default:
            if (c < 0x20 || c == 0x7f) {
                *rep = "?";
                *replen = 1;
            } else {
                *rep = (const char *)s;
                *replen = 1;
            }
            return 1;
        }
    }
    size_t n = 0;
    if (c >= 0xc2 && c <= 0xdf) {
        if ((s[1] & 0xc0) == 0x80)
            n = 2;
        if (n && c == 0xc2 && s[1] < 0xa0) {        /* C1 control character */
            *rep = "?";
            *replen = 1;
            return 2;
        }
    } else if (c >= 0xe0 && c <= 0xef) {
        if ((s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
            !(c == 0xe0 && s[1] < 0xa0) &&          /* overlong */
            !(c == 0xed && s[1] >= 0xa0))           /* surrogate */
            n = 3;
        if (n && c == 0xef && s[1] == 0xbf && (s[2] == 0xbe || s[2] == 0xbf))
            n = 0;                                  /* U+FFFE, U+FFFF: not XML */
    } else if (c >= 0xf0 && c <= 0xf4) {
        if ((s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80 &&
            !(c == 0xf0 && s[1] < 0x90) && !(c == 0xf4 && s[1] >= 0x90))
            n = 4;
    }
    if (n == 0) {
        *rep = fffd;
        *replen = 3;
        return 1;
    }
    *rep = (const char *)s;
    *replen = n;
    return n;
}

/* Write s escaped; at most max characters, or max - 2 and ".." when longer. */
static void out_text(struct out *o, const char *s, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t nchars = 0;
    if (max != SIZE_MAX) {
        const char *rep;
        size_t replen;
        for (const unsigned char *p = u; *p && nchars <= max; nchars++)
            p += next_char(p, &rep, &replen);
        if (nchars > max) {
            if (max < 3)
                return;
            max -= 2;
        } else {
            max = SIZE_MAX;
        }
    }
    for (nchars = 0; *u && nchars < max; nchars++) {
        const char *rep;
        size_t replen;
        u += next_char(u, &rep, &replen);
        out_put(o, rep, replen);
    }
    if (*u)
        out_put(o, "..", 2);
}

/* ---- colours ------------------------------------------------------------------ */

enum palette { PAL_PYTHON, PAL_HOT };

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    /* spread the low bits */
    h ^= h >> 15;
    h *= 0x2c1b3c6dU;
    h ^= h >> 12;
    return h;
}

static void hsl_to_rgb(double h, double s, double l, int rgb[3])
{
    double c = (1 - fabs(2 * l - 1)) * s;
    double hp = fmod(h, 360.0) / 60.0;
    double x = c * (1 - fabs(fmod(hp, 2.0) - 1));
    double r = 0, gr = 0, b = 0;
    if (hp < 1) { r = c; gr = x; }
    else if (hp < 2) { r = x; gr = c; }
    else if (hp < 3) { gr = c; b = x; }
    else if (hp < 4) { gr = x; b = c; }
    else if (hp < 5) { r = x; b = c; }
    else { r = c; b = x; }
    double m = l - c / 2;
    rgb[0] = (int)lround((r + m) * 255);
    rgb[1] = (int)lround((gr + m) * 255);
    rgb[2] = (int)lround((b + m) * 255);
}

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* The fill of a frame: "rgb(...)" or a pattern reference. */
static void frame_fill(const char *name, int is_root, enum palette pal, char *buf, size_t cap)
{
    if (is_root) {
        snprintf(buf, cap, "rgb(218,214,200)");
        return;
    }
    if (has_prefix(name, "(idle")) {
        snprintf(buf, cap, "rgb(190,190,190)");
        return;
    }
    if (has_prefix(name, "(failed")) {
        snprintf(buf, cap, "url(#fg-failed)");
        return;
    }
    if (has_prefix(name, "thread ") || has_prefix(name, "process ")) {
        snprintf(buf, cap, "rgb(168,184,206)");
        return;
    }
    const char *colon = strchr(name, ':');
    size_t filelen = colon ? (size_t)(colon - name) : strlen(name);
    uint32_t h = fnv1a(name, filelen);
    int rgb[3];
    if (pal == PAL_HOT) {
        /* reds, oranges and yellows */
        hsl_to_rgb(4 + (h % 52), 0.80 + ((h >> 8) % 20) / 100.0,
                   0.52 + ((h >> 16) % 12) / 100.0, rgb);
    } else {
        /* any hue but the reds kept for (failed) */
        hsl_to_rgb(25 + (h % 311), 0.45 + ((h >> 9) % 30) / 100.0,
                   0.58 + ((h >> 18) % 14) / 100.0, rgb);
    }
    snprintf(buf, cap, "rgb(%d,%d,%d)", rgb[0], rgb[1], rgb[2]);
}

/* ---- layout --------------------------------------------------------------------- */

struct vis {                /* one frame drawn */
    uint32_t node, depth;
    uint64_t start;         /* samples before it */
};

struct vec {
    void *p;
    size_t len, cap, elem;
};

static void *vec_push(struct vec *v)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        void *p = realloc(v->p, cap * v->elem);
        if (!p)
            return NULL;
        v->p = p;
        v->cap = cap;
    }
    return (char *)v->p + v->elem * v->len++;
}

struct sname {
    const char *s;
    uint32_t id;
};

static int cmp_sname(const void *a, const void *b)
{
    return strcmp(((const struct sname *)a)->s, ((const struct sname *)b)->s);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The frames to draw, in depth-first order with children sorted by name. */
static int layout(const struct fg *g, double scale, double minwidth, struct vec *vis,
                  uint32_t *maxdepth)
{
    int ret = -ENOMEM;
    uint32_t *rank = NULL;
    struct sname *names = NULL;
    struct vec stack = { .elem = sizeof(struct vis) };
    struct vec kids = { .elem = sizeof(uint64_t) };

    /* name -> rank in byte order, so children sort by an integer */
    rank = malloc((g->nstr ? g->nstr : 1) * sizeof(*rank));
    names = malloc((g->nstr ? g->nstr : 1) * sizeof(*names));
    if (!rank || !names)
        goto out;
    for (uint32_t i = 0; i < g->nstr; i++)
        names[i] = (struct sname){ fg_str(g, i), i };
    qsort(names, g->nstr, sizeof(*names), cmp_sname);
    for (uint32_t i = 0; i < g->nstr; i++)
        rank[names[i].id] = i;
    free(names);
    names = NULL;

    struct vis *top = vec_push(&stack);
    if (!top)
        goto out;
    *top = (struct vis){ 0, 0, 0 };
    *maxdepth = 0;
    while (stack.len) {
        struct vis cur = ((struct vis *)stack.p)[--stack.len];
        struct vis *v = vec_push(vis);
        if (!v)
            goto out;
        *v = cur;
        if (cur.depth > *maxdepth)
            *maxdepth = cur.depth;

        kids.len = 0;
        for (uint32_t c = g->nodes[cur.node].first_child; c != FG_NONE; c = g->nodes[c].next_sibling) {
            if (g->nodes[c].total == 0)
                continue;
            uint64_t *k = vec_push(&kids);
            if (!k)
                goto out;
            *k = (uint64_t)rank[g->nodes[c].name] << 32 | c;
        }
        if (kids.len == 0)
            continue;
        qsort(kids.p, kids.len, sizeof(uint64_t), cmp_u64);
        /* starts in name order; push in reverse so they pop in order */
        size_t first = stack.len;
        uint64_t at = cur.start;
        for (size_t i = 0; i < kids.len; i++) {
            uint32_t c = (uint32_t)((uint64_t *)kids.p)[i];
            uint64_t t = g->nodes[c].total;
            if ((double)t * scale >= minwidth) {
                struct vis *s = vec_push(&stack);
                if (!s)
                    goto out;
                *s = (struct vis){ c, cur.depth + 1, at };
            }
            at = at > UINT64_MAX - t ? UINT64_MAX : at + t;
        }
        struct vis *a = (struct vis *)stack.p + first, *b = (struct vis *)stack.p + stack.len - 1;
        for (; a < b; a++, b--) {
            struct vis tmp = *a;
            *a = *b;
            *b = tmp;
        }
    }
    ret = 0;
out:
    free(rank);
    free(names);
    free(stack.p);
    free(kids.p);
    return ret;
}

/* ---- the document ---------------------------------------------------------------- */

static void write_head(struct out *o, const struct fg_options *opt, int height,
                       uint64_t total, int root_y)
{
    int w = opt->width;
    out_str(o, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
    out_fmt(o, "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" "
               "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n", w, height, w, height);
    out_str(o, "<!-- Flame graph by pyflame's flamegraph renderer. Click a frame to zoom, "
               "Ctrl-F to search. -->\n");
    out_str(o, "<defs>\n"
               "<linearGradient id=\"fg-bg\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
               "<stop offset=\"5%\" stop-color=\"#f4f4f8\"/>"
               "<stop offset=\"95%\" stop-color=\"#e4e6ee\"/></linearGradient>\n"
               "<pattern id=\"fg-failed\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" "
               "patternTransform=\"rotate(45)\">"
               "<rect width=\"8\" height=\"8\" fill=\"rgb(235,60,60)\"/>"
               "<rect width=\"3\" height=\"8\" fill=\"rgb(150,20,20)\"/></pattern>\n"
               "</defs>\n");
    out_fmt(o, "<style type=\"text/css\">\n"
               "text { font-family: Verdana, Helvetica, Arial, sans-serif; font-size: %dpx; fill: #000; }\n"
               "#fg-title { font-size: 17px; text-anchor: middle; }\n"
               "#fg-subtitle { fill: #555; text-anchor: middle; }\n"
               "#fg-search, #fg-matched { text-anchor: end; }\n"
               ".fg-ctl { cursor: pointer; fill: #2050a0; }\n"
               ".fg-ctl:hover { text-decoration: underline; }\n"
               ".fg-hidden { display: none; }\n"
               ".f { cursor: pointer; }\n"
               ".f text { pointer-events: none; }\n"
               ".f:hover rect { stroke: #000; stroke-width: 0.5; }\n"
               ".f.fg-anc rect { opacity: 0.55; }\n"
               "</style>\n", FONT_SIZE);
    out_fmt(o, "<script type=\"text/ecmascript\"><![CDATA[\n"
               "var fgConf = { xpad: %d, width: %d, frameH: %d, charW: %.4f, inverted: %d, "
               "rootY: %d, total: %.17g };\n",
            XPAD, w - 2 * XPAD, FRAME_H, CHAR_W, opt->inverted ? 1 : 0, root_y, (double)total);
    out_str(o, fg_script_js);
    out_str(o, "]]></script>\n");
    out_fmt(o, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"url(#fg-bg)\"/>\n", w, height);
    out_fmt(o, "<text id=\"fg-title\" x=\"%.1f\" y=\"24\">", w / 2.0);
    out_text(o, opt->title ? opt->title : "Flame Graph", SIZE_MAX);
    out_str(o, "</text>\n");
    if (opt->subtitle && *opt->subtitle) {
        out_fmt(o, "<text id=\"fg-subtitle\" x=\"%.1f\" y=\"%d\">", w / 2.0, 24 + SUBTITLE_H);
        out_text(o, opt->subtitle, SIZE_MAX);
        out_str(o, "</text>\n");
    }
}

static void write_tail_controls(struct out *o, const struct fg_options *opt, int height)
{
    int w = opt->width;
    out_fmt(o, "<text id=\"fg-unzoom\" class=\"fg-ctl fg-hidden\" x=\"%d\" y=\"24\">Reset Zoom</text>\n",
            XPAD);
    out_fmt(o, "<text id=\"fg-search\" class=\"fg-ctl\" x=\"%d\" y=\"24\">Search</text>\n", w - XPAD);
    out_fmt(o, "<text id=\"fg-details\" x=\"%d\" y=\"%d\"> </text>\n", XPAD, height - 12);
    out_fmt(o, "<text id=\"fg-matched\" x=\"%d\" y=\"%d\"> </text>\n", w - XPAD, height - 12);
}

static int parse_palette(const char *p, enum palette *pal)
{
    if (!p || strcmp(p, "python") == 0)
        *pal = PAL_PYTHON;
    else if (strcmp(p, "hot") == 0)
        *pal = PAL_HOT;
    else
        return -1;
    return 0;
}

int fg_write_svg(const struct fg *g, FILE *out, const struct fg_options *o)
{
    struct fg_options def;
    enum palette pal;
    if (!g || !out)
        return -EINVAL;
    if (!o) {
        fg_options_init(&def);
        o = &def;
    }
    if (o->width <= 2 * XPAD || o->width > 10000000 || !(o->minwidth >= 0) ||
        isinf(o->minwidth) || parse_palette(o->palette, &pal) < 0)
        return -EINVAL;
    const char *countname = o->countname ? o->countname : "samples";

    struct out *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->f = out;
    w->err = 0;
    w->len = 0;

    uint64_t total = g->nodes[0].total;
    int top = TOP_PAD + (o->subtitle && *o->subtitle ? SUBTITLE_H : 0);
    int ret = 0;

    if (total == 0) {
        int height = top + 3 * FRAME_H + BOTTOM_PAD;
        write_head(w, o, height, 0, 0);
        out_fmt(w, "<text id=\"fg-empty\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" "
                   "font-size=\"17\">No samples</text>\n", o->width / 2.0, top + 2 * FRAME_H);
        write_tail_controls(w, o, height);
        out_str(w, "</svg>\n");
        goto done;
    }

    double avail = o->width - 2 * XPAD;
    double scale = avail / (double)total;
    struct vec vis = { .elem = sizeof(struct vis) };
    uint32_t maxdepth = 0;
    if (layout(g, scale, o->minwidth, &vis, &maxdepth) < 0) {
        free(vis.p);
        free(w);
        return -ENOMEM;
    }
    if (maxdepth > 1000000) {       /* keeps the height within int */
        free(vis.p);
        free(w);
        return -EINVAL;
    }

    int height = top + (int)(maxdepth + 1) * FRAME_H + BOTTOM_PAD;
    int root_y = o->inverted ? top : height - BOTTOM_PAD - FRAME_H;
    write_head(w, o, height, total, root_y);
    out_str(w, "<g id=\"fg-frames\">\n");
    char fill[64];
    for (size_t i = 0; i < vis.len; i++) {
        const struct vis *v = (const struct vis *)vis.p + i;
        const struct fg_node *nd = &g->nodes[v->node];
        const char *name = v->node == 0 ? "all" : fg_str(g, nd->name);
        double x = XPAD + (double)v->start * scale;
        double fw = (double)nd->total * scale;
        int y = o->inverted ? root_y + (int)v->depth * FRAME_H : root_y - (int)v->depth * FRAME_H;
        long double pct = (long double)nd->total * 100.0L / (long double)total;

        frame_fill(name, v->node == 0, pal, fill, sizeof(fill));
        /* hand-formatted: this loop runs once per frame drawn */
        out_str(w, "<g class=\"f\" data-s=\"");
        out_u64(w, v->start);
        out_str(w, "\" data-n=\"");
        out_u64(w, nd->total);
        out_str(w, "\"><title>");
        out_text(w, name, SIZE_MAX);
        out_str(w, " (");
        out_u64(w, nd->total);
        out_str(w, " ");
        out_text(w, countname, SIZE_MAX);
        out_str(w, ", ");
        out_fix2(w, (double)pct);
        out_str(w, "%)</title><rect x=\"");
        out_fix2(w, x);
        out_str(w, "\" y=\"");
        out_u64(w, (uint64_t)y);
        out_str(w, "\" width=\"");
        out_fix2(w, fw);
        out_str(w, "\" height=\"" FRAME_H_1 "\" fill=\"");
        out_str(w, fill);
        out_str(w, "\"/><text x=\"");
        out_fix2(w, x + 3);
        out_str(w, "\" y=\"");
        out_u64(w, (uint64_t)(y + FRAME_H - 4));
        out_str(w, "\">");
        double room = (fw - 6) / CHAR_W;
        out_text(w, name, room < 0 ? 0 : (size_t)room);
        out_str(w, "</text></g>\n");
    }
    out_str(w, "</g>\n");
    free(vis.p);
    write_tail_controls(w, o, height);
    out_str(w, "</svg>\n");

done:
    out_flush(w);
    if (!w->err && fflush(out) != 0)
        w->err = errno ? errno : EIO;
    if (!w->err && ferror(out))
        w->err = EIO;
    ret = w->err ? -w->err : 0;
    free(w);
    return ret;
}
