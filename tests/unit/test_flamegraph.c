/*
 * test_flamegraph.c - the flame-graph renderer (flamegraph/): structure of
 * the SVG, counts and percentages, merging, collapsed-line parsing, escaping
 * of hostile names, colours, minwidth, the empty graph, speed, and the
 * flamegraph program when it has been built.
 *
 * Every SVG is checked by a small XML well-formedness checker below, and by
 * `xmllint --noout` too when it is installed.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flamegraph.h"

/* ---- helpers --------------------------------------------------------------------- */

static char *render(const struct fg *g, const struct fg_options *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    int r = fg_write_svg(g, f, o);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_uint_eq(strlen(buf), len);    /* no NUL inside */
    return buf;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Valid UTF-8 without XML-forbidden characters? */
static const char *check_chars(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return "control character";
            s++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
        else return "invalid UTF-8 lead byte";
        for (size_t i = 1; i < n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return "invalid UTF-8 continuation";
            cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return "overlong UTF-8";
        if ((cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
            return "character not allowed in XML";
        s += n;
    }
    return NULL;
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == ':' || c == '.';
}

static const char *check_entity(const char **pp)
{
    const char *p = *pp;
    static const char *const ents[] = { "&amp;", "&lt;", "&gt;", "&quot;", "&apos;" };
    for (size_t i = 0; i < 5; i++) {
        if (strncmp(p, ents[i], strlen(ents[i])) == 0) {
            *pp = p + strlen(ents[i]);
            return NULL;
        }
    }
    if (p[1] == '#') {
        const char *q = p + 2;
        int hex = *q == 'x';
        q += hex;
        const char *d = q;
        while ((*q >= '0' && *q <= '9') || (hex && ((*q >= 'a' && *q <= 'f') || (*q >= 'A' && *q <= 'F'))))
            q++;
        if (q > d && *q == ';') {
            *pp = q + 1;
            return NULL;
        }
    }
    return "bad entity";
}

/* A minimal XML well-formedness check: one root element, tags nest and
 * match, attributes quoted and unique, entities known, no stray '<' or '&'. */
static const char *xml_check(const char *s)
{
    const char *err = check_chars((const unsigned char *)s);
    if (err)
        return err;
    const char *stack[64];
    size_t stacklen[64];
    int depth = 0, roots = 0;
    const char *p = s;
    if (strncmp(p, "<?xml", 5) == 0) {
        p = strstr(p, "?>");
        if (!p)
            return "unterminated XML declaration";
        p += 2;
    }
    while (*p) {
        if (*p == '<') {
            if (strncmp(p, "<!--", 4) == 0) {
                const char *q = strstr(p + 4, "-->");
                if (!q)
                    return "unterminated comment";
                p = q + 3;
            } else if (strncmp(p, "<![CDATA[", 9) == 0) {
                if (!depth)
                    return "CDATA outside the root";
                const char *q = strstr(p + 9, "]]>");
                if (!q)
                    return "unterminated CDATA";
                p = q + 3;
            } else if (p[1] == '/') {
                const char *n = p + 2, *q = n;
                while (is_name_char(*q))
                    q++;
                if (!depth || (size_t)(q - n) != stacklen[depth - 1] ||
                    strncmp(n, stack[depth - 1], stacklen[depth - 1]) != 0)
                    return "mismatched end tag";
                while (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')
                    q++;
                if (*q != '>')
                    return "bad end tag";
                depth--;
                p = q + 1;
            } else {
                const char *n = p + 1, *q = n;
                while (is_name_char(*q))
                    q++;
                if (q == n)
                    return "stray '<'";
                if (depth == 0 && roots++)
                    return "more than one root element";
                const char *attrs[32];
                size_t attrlen[32];
                int nattrs = 0, closed = 0;
                for (;;) {
                    int ws = 0;
                    while (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r') {
                        q++;
                        ws = 1;
                    }
                    if (*q == '>') {
                        q++;
                        break;
                    }
                    if (q[0] == '/' && q[1] == '>') {
                        q += 2;
                        closed = 1;
                        break;
                    }
                    if (!ws)
                        return "attribute without space before it";
                    const char *an = q;
                    while (is_name_char(*q))
                        q++;
                    if (q == an || *q != '=' || (q[1] != '"' && q[1] != '\''))
                        return "bad attribute";
                    for (int i = 0; i < nattrs; i++)
                        if (attrlen[i] == (size_t)(q - an) && strncmp(attrs[i], an, attrlen[i]) == 0)
                            return "duplicate attribute";
                    if (nattrs == 32)
                        return "too many attributes";
                    attrs[nattrs] = an;
                    attrlen[nattrs++] = (size_t)(q - an);
                    char quote = q[1];
                    q += 2;
                    while (*q && *q != quote) {
                        if (*q == '<')
                            return "'<' in an attribute value";
                        if (*q == '&') {
                            if ((err = check_entity(&q)))
                                return err;
                        } else {
                            q++;
                        }
                    }
                    if (!*q)
                        return "unterminated attribute value";
                    q++;
                }
                if (!closed) {
                    if (depth == 64)
                        return "nested too deeply";
                    stack[depth] = n;
                    stacklen[depth++] = (size_t)(strcspn(n, " \t\r\n/>"));
                }
                p = q;
            }
        } else if (*p == '&') {
            if (!depth)
                return "entity outside the root";
            if ((err = check_entity(&p)))
                return err;
        } else {
            if (!depth && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
                return "text outside the root";
            if (strncmp(p, "]]>", 3) == 0)
                return "']]>' in text";
            p++;
        }
    }
    if (depth)
        return "unclosed element";
    if (!roots)
        return "no root element";
    return NULL;
}

static int have_xmllint(void)
{
    static int have = -1;
    if (have < 0) {
        have = system("command -v xmllint >/dev/null 2>&1") == 0;
        if (!have)
            fprintf(stderr, "test_flamegraph: xmllint not installed, using the built-in check only\n");
    }
    return have;
}

static void assert_wellformed(const char *svg)
{
    const char *err = xml_check(svg);
    ck_assert_msg(err == NULL, "SVG not well-formed: %s", err ? err : "");
    if (!have_xmllint())
        return;
    char path[] = "/tmp/test_flamegraph_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(svg);
    ck_assert_int_eq(write(fd, svg, len), (ssize_t)len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "xmllint --noout '%s'", path);
    int st = system(cmd);
    unlink(path);
    ck_assert_msg(st == 0, "xmllint rejected the SVG");
}

/* The <g>...</g> of the frame whose tooltip starts with "NAME (" (NAME as
 * escaped in the SVG), copied; NULL if none.  *count gets how many there are. */
static char *frame_g(const char *svg, const char *name, int *count)
{
    char key[512];
    snprintf(key, sizeof(key), "<title>%s (", name);
    const char *hit = NULL;
    int n = 0;
    for (const char *p = strstr(svg, key); p; p = strstr(p + 1, key)) {
        if (!hit)
            hit = p;
        n++;
    }
    if (count)
        *count = n;
    if (!hit)
        return NULL;
    const char *start = hit;
    while (start > svg && strncmp(start, "<g ", 3) != 0)
        start--;
    const char *end = strstr(hit, "</g>");
    ck_assert_ptr_nonnull(end);
    return strndup(start, (size_t)(end + 4 - start));
}

/* The value of attribute `attr` of the first element `elem` in s. */
static char *attr_of(const char *s, const char *elem, const char *attr)
{
    char key[64];
    snprintf(key, sizeof(key), "<%s ", elem);
    const char *e = strstr(s, key);
    ck_assert_msg(e != NULL, "no <%s> in %s", elem, s);
    const char *close = strchr(e, '>');
    snprintf(key, sizeof(key), " %s=\"", attr);
    const char *a = strstr(e, key);
    ck_assert_msg(a != NULL && a < close, "no %s= in <%s>", attr, elem);
    a += strlen(key);
    return strndup(a, strcspn(a, "\""));
}

static char *fill_of(const char *svg, const char *name)
{
    char *g = frame_g(svg, name, NULL);
    ck_assert_msg(g != NULL, "no frame %s", name);
    char *fill = attr_of(g, "rect", "fill");
    free(g);
    return fill;
}

static double rect_num(const char *svg, const char *name, const char *attr)
{
    char *g = frame_g(svg, name, NULL);
    ck_assert_msg(g != NULL, "no frame %s", name);
    char *v = attr_of(g, "rect", attr);
    double d = strtod(v, NULL);
    free(v);
    free(g);
    return d;
}

static void add_line(struct fg *g, const char *line)
{
    ck_assert_int_eq(fg_add_collapsed(g, line, strlen(line)), 0);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- structure, counts, merging ------------------------------------------------------ */

START_TEST(test_structure)
{
    struct fg *g = fg_new();
    ck_assert_ptr_nonnull(g);
    const char *s1[] = { "main.py:main:1", "a.py:f:10", "b.py:g:3" };
    const char *s2[] = { "main.py:main:1", "a.py:f:10" };
    const char *s3[] = { "main.py:main:1", "(idle)" };
    ck_assert_int_eq(fg_add(g, s1, 3, 5), 0);
    ck_assert_int_eq(fg_add(g, s2, 2, 3), 0);
    ck_assert_int_eq(fg_add(g, s3, 2, 2), 0);

    struct fg_options o;
    fg_options_init(&o);
    o.title = "My Title";
    o.subtitle = "sub title";
    char *svg = render(g, &o);
    assert_wellformed(svg);

    ck_assert_ptr_nonnull(strstr(svg, "<svg "));
    ck_assert_ptr_nonnull(strstr(svg, "xmlns=\"http://www.w3.org/2000/svg\""));
    ck_assert_ptr_nonnull(strstr(svg, ">My Title</text>"));
    ck_assert_ptr_nonnull(strstr(svg, ">sub title</text>"));
    ck_assert_ptr_nonnull(strstr(svg, ">Reset Zoom</text>"));
    ck_assert_ptr_nonnull(strstr(svg, ">Search</text>"));
    ck_assert_ptr_nonnull(strstr(svg, "id=\"fg-details\""));
    ck_assert_ptr_nonnull(strstr(svg, "id=\"fg-matched\""));
    ck_assert_ptr_nonnull(strstr(svg, "<script"));
    ck_assert_ptr_nonnull(strstr(svg, "Matched: "));
    ck_assert_ptr_nonnull(strstr(svg, "prompt("));

    /* all, main, a, b, idle: one <g> each, with a title, a rect and a text */
    ck_assert_uint_eq(count_of(svg, "<g class=\"f\""), 5);
    ck_assert_uint_eq(count_of(svg, "<title>"), 5);
    ck_assert_uint_eq(count_of(svg, "</title><rect x="), 5);
    ck_assert_ptr_nonnull(strstr(svg, "<title>all (10 samples, 100.00%)</title>"));
    ck_assert_ptr_nonnull(strstr(svg, "<title>main.py:main:1 (10 samples, 100.00%)</title>"));
    ck_assert_ptr_nonnull(strstr(svg, "<title>a.py:f:10 (8 samples, 80.00%)</title>"));
    ck_assert_ptr_nonnull(strstr(svg, "<title>b.py:g:3 (5 samples, 50.00%)</title>"));
    ck_assert_ptr_nonnull(strstr(svg, "<title>(idle) (2 samples, 20.00%)</title>"));

    /* widths in proportion: 1200 - 2 * 10 px for 10 samples */
    ck_assert_double_eq_tol(rect_num(svg, "all", "width"), 1180.0, 0.01);
    ck_assert_double_eq_tol(rect_num(svg, "a.py:f:10", "width"), 944.0, 0.01);
    ck_assert_double_eq_tol(rect_num(svg, "b.py:g:3", "width"), 590.0, 0.01);
    /* children sorted by name: "(idle)" before "a.py..." */
    ck_assert_double_eq_tol(rect_num(svg, "(idle)", "x"), 10.0, 0.01);
    ck_assert_double_eq_tol(rect_num(svg, "a.py:f:10", "x"), 10.0 + 236.0, 0.01);
    /* flame: deeper frames higher up */
    ck_assert(rect_num(svg, "b.py:g:3", "y") < rect_num(svg, "a.py:f:10", "y"));
    ck_assert(rect_num(svg, "a.py:f:10", "y") < rect_num(svg, "all", "y"));
    free(svg);

    /* icicle: the other way round; countname */
    o.inverted = 1;
    o.countname = "ms";
    svg = render(g, &o);
    assert_wellformed(svg);
    ck_assert(rect_num(svg, "b.py:g:3", "y") > rect_num(svg, "a.py:f:10", "y"));
    ck_assert(rect_num(svg, "a.py:f:10", "y") > rect_num(svg, "all", "y"));
    ck_assert_ptr_nonnull(strstr(svg, "<title>a.py:f:10 (8 ms, 80.00%)</title>"));
    free(svg);

    /* NULL options = defaults */
    svg = render(g, NULL);
    assert_wellformed(svg);
    ck_assert_ptr_nonnull(strstr(svg, ">Flame Graph</text>"));
    ck_assert_ptr_nonnull(strstr(svg, "width=\"1200\""));
    free(svg);
    fg_free(g);
}
END_TEST

START_TEST(test_merge)
{
    struct fg *g = fg_new();
    const char *s[] = { "x.py:a", "x.py:b" };
    ck_assert_int_eq(fg_add(g, s, 2, 4), 0);
    add_line(g, "x.py:a;x.py:b 6");
    add_line(g, "x.py:a;x.py:b 10\n");
    add_line(g, "x.py:a 1");
    ck_assert_int_eq(fg_add(g, s, 2, 0), 0);     /* nothing */
    ck_assert_int_eq(fg_add(g, NULL, 0, 3), 0);  /* root only */
    char *svg = render(g, NULL);
    assert_wellformed(svg);
    int n;
    char *fr = frame_g(svg, "x.py:b", &n);
    ck_assert_int_eq(n, 1);
    ck_assert_ptr_nonnull(strstr(fr, "(20 samples, 83.33%)"));
    ck_assert_ptr_nonnull(strstr(fr, "data-n=\"20\""));
    free(fr);
    fr = frame_g(svg, "x.py:a", &n);
    ck_assert_int_eq(n, 1);
    ck_assert_ptr_nonnull(strstr(fr, "(21 samples, 87.50%)"));
    free(fr);
    ck_assert_ptr_nonnull(strstr(svg, "<title>all (24 samples, 100.00%)</title>"));
    ck_assert_uint_eq(count_of(svg, "<g class=\"f\""), 3);
    free(svg);

    /* the same name under different parents stays apart */
    fg_free(g);
    g = fg_new();
    add_line(g, "a;c 1");
    add_line(g, "b;c 1");
    svg = render(g, NULL);
    free(frame_g(svg, "c", &n));
    ck_assert_int_eq(n, 2);
    free(svg);
    fg_free(g);
}
END_TEST

START_TEST(test_collapsed_parsing)
{
    struct fg *g = fg_new();
    const char *bad[] = { "", "   ", "\n", "\r\n", "a;b", "a;b x", "123", "a;b 12x", "a;b -3",
                          "a;b .5", "a;b 99999999999999999999999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(fg_add_collapsed(g, bad[i], strlen(bad[i])) == -EINVAL, "accepted '%s'", bad[i]);

    add_line(g, "p.py:a;p.py:b 1\r\n");        /* CRLF */
    add_line(g, "p.py:a;p.py:b 2   \t ");      /* trailing whitespace */
    add_line(g, "p.py:a;p.py:b\t3");           /* tab before the count */
    add_line(g, "p.py:a;p.py:b 4 100");        /* differential: second count ignored */
    add_line(g, "p.py:a;p.py:b 1.6");          /* decimal: rounded */
    add_line(g, "p.py:a;p.py:b 0");            /* zero: nothing */
    add_line(g, "thread main (12) 5");         /* a synthetic root ending in a number */
    add_line(g, "process 42 7");
    add_line(g, "q.py:with space:1;r.py:x 9");
    add_line(g, " 3");                         /* empty stack: the root only */
    /* len shorter than the string, and a NUL inside */
    ck_assert_int_eq(fg_add_collapsed(g, "s.py:a 11 garbage", 9), 0);
    ck_assert_int_eq(fg_add_collapsed(g, "s.py:b 12\0 5", 12), 0);

    char *svg = render(g, NULL);
    assert_wellformed(svg);
    ck_assert_ptr_nonnull(strstr(svg, "<title>p.py:b (12 samples, "));
    ck_assert_ptr_nonnull(strstr(svg, "<title>thread main (12) (5 samples, "));
    ck_assert_ptr_nonnull(strstr(svg, "<title>process 42 (7 samples, "));
    ck_assert_ptr_nonnull(strstr(svg, "<title>q.py:with space:1 (9 samples, "));
    ck_assert_ptr_nonnull(strstr(svg, "<title>r.py:x (9 samples, "));
    ck_assert_ptr_nonnull(strstr(svg, "<title>s.py:a (11 samples, "));
    ck_assert_ptr_nonnull(strstr(svg, "<title>s.py:b (12 samples, "));
    /* 12 + 5 + 7 + 9 + 3 + 11 + 12 */
    ck_assert_ptr_nonnull(strstr(svg, "<title>all (59 samples, 100.00%)</title>"));
    free(svg);
    fg_free(g);
}
END_TEST

/* ---- escaping --------------------------------------------------------------------- */

START_TEST(test_escaping)
{
    struct fg *g = fg_new();
    const char *hostile[] = {
        "<script>alert(1)</script>",
        "a&b&amp;",
        "\"quoted\" 'single'",
        "semi;colon",
        "with spaces  here",
        "new\nline\ttab\r",
        "bad \xff\xfe utf8 \xc3( \xed\xa0\x80 \xef\xbf\xbe \xf8\x88\x80\x80\x80 \xe2\x82",
        "c1 \xc2\x85 ctl \x01\x1b\x7f",
        "]]> cdata end",
        "<!-- comment -->",
        "ok \xc3\xa9\xe2\x82\xac\xf0\x9f\x94\xa5",
    };
    size_t n = sizeof(hostile) / sizeof(hostile[0]);
    for (size_t i = 0; i < n; i++) {
        const char *stack[] = { "root.py:r", hostile[i] };
        ck_assert_int_eq(fg_add(g, stack, 2, 10 + i), 0);
    }
    /* a narrow frame whose cut name must not split a character or an entity */
    const char *deep[] = { "root.py:r", "<<<<<<<<<<&&&&&&&&&&\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" };
    ck_assert_int_eq(fg_add(g, deep, 2, 7), 0);

    struct fg_options o;
    fg_options_init(&o);
    o.title = "<T> & \"t\" 'x' \xff";
    o.subtitle = "line\nbreak <b>";
    o.countname = "<s&mples>";
    o.width = 400;
    char *svg = render(g, &o);
    assert_wellformed(svg);

    ck_assert_ptr_null(strstr(svg, "<script>alert"));
    ck_assert_ptr_null(strstr(svg, "<!-- comment"));
    ck_assert_ptr_null(strstr(svg, "<T>"));
    ck_assert_ptr_null(strstr(svg, "<b>"));
    ck_assert_ptr_nonnull(strstr(svg, "<title>&lt;script&gt;alert(1)&lt;/script&gt; ("));
    ck_assert_ptr_nonnull(strstr(svg, "<title>a&amp;b&amp;amp; ("));
    ck_assert_ptr_nonnull(strstr(svg, "<title>&quot;quoted&quot; &apos;single&apos; ("));
    ck_assert_ptr_nonnull(strstr(svg, "<title>semi;colon ("));
    ck_assert_ptr_nonnull(strstr(svg, "<title>with spaces  here ("));
    ck_assert_ptr_nonnull(strstr(svg, "<title>new?line?tab? ("));
    ck_assert_ptr_nonnull(strstr(svg, "<title>c1 ? ctl ??? ("));
    ck_assert_ptr_nonnull(strstr(svg, "<title>]]&gt; cdata end ("));
    ck_assert_ptr_nonnull(strstr(svg, "<title>ok \xc3\xa9\xe2\x82\xac\xf0\x9f\x94\xa5 ("));
    ck_assert_ptr_nonnull(strstr(svg, "<title>bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd( "));
    ck_assert_ptr_nonnull(strstr(svg, "&lt;s&amp;mples&gt;, "));
    ck_assert_ptr_nonnull(strstr(svg, "&lt;T&gt; &amp; &quot;t&quot; &apos;x&apos; \xef\xbf\xbd</text>"));
    ck_assert_ptr_nonnull(strstr(svg, "line?break &lt;b&gt;</text>"));
    free(svg);

    /* the same through the collapsed parser: a name with '<', '&', '"', spaces */
    fg_free(g);
    g = fg_new();
    add_line(g, "a<b>;c&d \"e\" f\xff 3");
    svg = render(g, NULL);
    assert_wellformed(svg);
    ck_assert_ptr_nonnull(strstr(svg, "<title>a&lt;b&gt; (3 samples"));
    ck_assert_ptr_nonnull(strstr(svg, "<title>c&amp;d &quot;e&quot; f\xef\xbf\xbd (3 samples"));
    free(svg);
    fg_free(g);
}
END_TEST

START_TEST(test_truncation)
{
    struct fg *g = fg_new();
    add_line(g, "short.py:a 50");
    add_line(g, "a_rather_long_module_name.py:a_rather_long_function_name:123 50");
    add_line(g, "tiny.py:x 1");
    struct fg_options o;
    fg_options_init(&o);
    o.width = 300;
    char *svg = render(g, &o);
    assert_wellformed(svg);
    char *fr = frame_g(svg, "a_rather_long_module_name.py:a_rather_long_function_name:123", NULL);
    ck_assert_ptr_nonnull(fr);
    const char *t = strstr(fr, "<text ");
    t = strchr(t, '>') + 1;
    size_t len = strcspn(t, "<");
    ck_assert_msg(len > 3 && len < 60 && strncmp(t + len - 2, "..", 2) == 0, "text: %.*s", (int)len, t);
    ck_assert(strncmp(t, "a_rather_long", 13) == 0);
    free(fr);
    fr = frame_g(svg, "short.py:a", NULL);
    ck_assert_ptr_nonnull(strstr(fr, ">short.py:a</text>"));
    free(fr);
    fr = frame_g(svg, "tiny.py:x", NULL);          /* 2.8 px: no room for text */
    ck_assert_ptr_nonnull(strstr(fr, "\"></text>"));
    free(fr);
    free(svg);
    fg_free(g);
}
END_TEST

/* ---- colours -------------------------------------------------------------------- */

START_TEST(test_colour_stability)
{
    struct fg *g1 = fg_new(), *g2 = fg_new();
    add_line(g1, "app/main.py:main:1;app/models.py:save:40 10");
    add_line(g1, "app/main.py:main:1;lib/json.py:dumps:7 5");
    add_line(g2, "other.py:x:1;zzz.py:q:2;app/models.py:load:99 3");
    add_line(g2, "thread t (1);app/models.py:save:41 8");
    add_line(g2, "app/models.py:save:40 1");
    char *a = render(g1, NULL);
    char *b = render(g2, NULL);
    char *fa = fill_of(a, "app/models.py:save:40");
    char *fb1 = fill_of(b, "app/models.py:load:99");
    char *fb2 = fill_of(b, "app/models.py:save:41");
    char *fb3 = fill_of(b, "app/models.py:save:40");
    ck_assert_str_eq(fa, fb1);
    ck_assert_str_eq(fa, fb2);
    ck_assert_str_eq(fa, fb3);
    ck_assert(strncmp(fa, "rgb(", 4) == 0);
    /* other files get other colours (these three do) */
    char *fj = fill_of(a, "lib/json.py:dumps:7");
    char *fm = fill_of(a, "app/main.py:main:1");
    ck_assert_str_ne(fa, fj);
    ck_assert_str_ne(fa, fm);
    ck_assert_str_ne(fj, fm);
    /* the same render twice is byte for byte the same */
    char *a2 = render(g1, NULL);
    ck_assert_str_eq(a, a2);
    /* "hot" is stable per file too, and differs from "python" */
    struct fg_options o;
    fg_options_init(&o);
    o.palette = "hot";
    char *h1 = render(g1, &o), *h2 = render(g2, &o);
    char *ha = fill_of(h1, "app/models.py:save:40"), *hb = fill_of(h2, "app/models.py:load:99");
    ck_assert_str_eq(ha, hb);
    ck_assert_str_ne(ha, fa);
    free(ha); free(hb); free(h1); free(h2);
    free(fa); free(fb1); free(fb2); free(fb3); free(fj); free(fm);
    free(a); free(a2); free(b);
    fg_free(g1);
    fg_free(g2);
}
END_TEST

START_TEST(test_special_colours)
{
    struct fg *g = fg_new();
    add_line(g, "process 7 python x.py;thread main (7);x.py:run:1;(idle) 5");
    add_line(g, "process 7 python x.py;thread main (7);x.py:run:1;(failed) 2");
    add_line(g, "process 7 python x.py;thread main (7);x.py:run:1;y.py:f:3 4");
    char *svg = render(g, NULL);
    assert_wellformed(svg);
    char *idle = fill_of(svg, "(idle)");
    char *failed = fill_of(svg, "(failed)");
    char *thread = fill_of(svg, "thread main (7)");
    char *process = fill_of(svg, "process 7 python x.py");
    char *py = fill_of(svg, "x.py:run:1");
    char *py2 = fill_of(svg, "y.py:f:3");
    /* idle is a grey */
    int r, gr, b;
    ck_assert_int_eq(sscanf(idle, "rgb(%d,%d,%d)", &r, &gr, &b), 3);
    ck_assert_int_eq(r, gr);
    ck_assert_int_eq(gr, b);
    /* failed is the striped red pattern, defined in the document */
    ck_assert_str_eq(failed, "url(#fg-failed)");
    ck_assert_ptr_nonnull(strstr(svg, "<pattern id=\"fg-failed\""));
    /* the synthetic roots share one neutral colour, unlike any frame here */
    ck_assert_str_eq(thread, process);
    ck_assert_str_ne(thread, idle);
    ck_assert_str_ne(thread, py);
    ck_assert_str_ne(thread, py2);
    ck_assert_str_ne(idle, py);
    ck_assert_str_ne(idle, py2);
    free(idle); free(failed); free(thread); free(process); free(py); free(py2);
    free(svg);
    fg_free(g);
}
END_TEST

/* ---- minwidth, empty, options, errors -------------------------------------------------- */

START_TEST(test_minwidth)
{
    struct fg *g = fg_new();
    add_line(g, "big.py:a;big.py:b 999990");
    add_line(g, "big.py:a;small.py:c;small.py:d 10");    /* 0.0118 px at 1200 */
    char *svg = render(g, NULL);
    assert_wellformed(svg);
    ck_assert_ptr_null(strstr(svg, "small.py"));
    /* the omitted time still counts in the parent */
    ck_assert_ptr_nonnull(strstr(svg, "<title>big.py:a (1000000 samples, 100.00%)</title>"));
    ck_assert_ptr_nonnull(strstr(svg, "<title>big.py:b (999990 samples, 100.00%)</title>"));
    ck_assert_uint_eq(count_of(svg, "<g class=\"f\""), 3);
    free(svg);

    struct fg_options o;
    fg_options_init(&o);
    o.minwidth = 0;
    svg = render(g, &o);
    assert_wellformed(svg);
    ck_assert_ptr_nonnull(strstr(svg, "<title>small.py:c (10 samples, 0.00%)</title>"));
    ck_assert_ptr_nonnull(strstr(svg, "<title>small.py:d (10 samples, 0.00%)</title>"));
    ck_assert_uint_eq(count_of(svg, "<g class=\"f\""), 5);
    free(svg);

    /* a large minwidth leaves the root alone */
    o.minwidth = 5000;
    svg = render(g, &o);
    assert_wellformed(svg);
    ck_assert_uint_eq(count_of(svg, "<g class=\"f\""), 1);
    free(svg);
    fg_free(g);
}
END_TEST

START_TEST(test_empty)
{
    struct fg *g = fg_new();
    char *svg = render(g, NULL);
    assert_wellformed(svg);
    ck_assert_ptr_nonnull(strstr(svg, "No samples"));
    ck_assert_uint_eq(count_of(svg, "<g class=\"f\""), 0);
    free(svg);
    /* zero counts and blank lines leave it empty */
    add_line(g, "a;b 0");
    ck_assert_int_eq(fg_add_collapsed(g, "\n", 1), -EINVAL);
    struct fg_options o;
    fg_options_init(&o);
    o.inverted = 1;
    o.subtitle = "nothing here";
    svg = render(g, &o);
    assert_wellformed(svg);
    ck_assert_ptr_nonnull(strstr(svg, "No samples"));
    free(svg);
    fg_free(g);
}
END_TEST

START_TEST(test_bad_arguments)
{
    struct fg *g = fg_new();
    add_line(g, "a 1");
    struct fg_options o;
    FILE *f = fopen("/dev/null", "w");
    ck_assert_ptr_nonnull(f);
    fg_options_init(&o);
    o.width = 0;
    ck_assert_int_eq(fg_write_svg(g, f, &o), -EINVAL);
    fg_options_init(&o);
    o.minwidth = -1;
    ck_assert_int_eq(fg_write_svg(g, f, &o), -EINVAL);
    fg_options_init(&o);
    o.palette = "rainbow";
    ck_assert_int_eq(fg_write_svg(g, f, &o), -EINVAL);
    fg_options_init(&o);
    o.palette = NULL;
    o.title = NULL;
    o.countname = NULL;
    ck_assert_int_eq(fg_write_svg(g, f, &o), 0);
    ck_assert_int_eq(fg_write_svg(NULL, f, &o), -EINVAL);
    ck_assert_int_eq(fg_add(NULL, NULL, 0, 1), -EINVAL);
    ck_assert_int_eq(fg_add(g, NULL, 2, 1), -EINVAL);
    const char *withnull[] = { "a", NULL };
    ck_assert_int_eq(fg_add(g, withnull, 2, 1), -EINVAL);
    ck_assert_int_eq(fg_add_collapsed(NULL, "a 1", 3), -EINVAL);
    fclose(f);
    fg_free(NULL);

    /* a write error is reported */
    f = fopen("/dev/full", "w");
    if (f) {
        ck_assert_int_eq(fg_write_svg(g, f, NULL), -ENOSPC);
        fclose(f);
    }
    fg_free(g);
}
END_TEST

/* ---- speed ---------------------------------------------------------------------- */

START_TEST(test_100k_stacks)
{
    /* 100,000 distinct stacks of depth 17..23 over 50 modules, as collapsed
     * lines: parse, merge and render (default options), into a real file. */
    enum { NSTACKS = 100000 };
    uint64_t rng = 12345;
    char **lines = malloc(NSTACKS * sizeof(*lines));
    ck_assert_ptr_nonnull(lines);
    size_t made = 0;
    for (size_t i = 0; i < NSTACKS; i++) {
        char buf[2048];
        size_t len = 0;
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int depth = 17 + (int)((rng >> 33) % 7);
        for (int d = 0; d < depth; d++) {
            /* the first 12 levels branch a little, deeper ones a lot */
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            unsigned c = (unsigned)(rng >> 35) % (d < 12 ? 3 : 40);
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%spkg/mod%u.py:func_%u:%d",
                                    d ? ";" : "", (d * 7 + c) % 50, c, d * 10 + 1);
        }
        /* the stack index as the last frame keeps every line distinct */
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, ";leaf.py:f%zu:1 %u\n", i,
                                1 + (unsigned)(rng >> 40) % 100);
        lines[i] = strdup(buf);
        made++;
    }
    FILE *out = tmpfile();
    ck_assert_ptr_nonnull(out);

    double t0 = now();
    struct fg *g = fg_new();
    for (size_t i = 0; i < made; i++)
        ck_assert_int_eq(fg_add_collapsed(g, lines[i], strlen(lines[i])), 0);
    double t1 = now();
    ck_assert_int_eq(fg_write_svg(g, out, NULL), 0);
    double t2 = now();
    long size = ftell(out);
    fg_free(g);
    fclose(out);
    printf("test_flamegraph: 100000 distinct stacks: add %.3f s, render %.3f s, total %.3f s, "
           "%ld bytes of SVG\n", t1 - t0, t2 - t1, t2 - t0, size);
    fflush(stdout);
    if (!getenv("PYFLAME_NO_TIMING"))   /* set under valgrind */
        ck_assert_msg(t2 - t0 < 4.0, "100k stacks took %.3f s", t2 - t0);
    for (size_t i = 0; i < made; i++)
        free(lines[i]);
    free(lines);
}
END_TEST

START_TEST(test_deep_stack)
{
    /* a very deep stack must not blow the C stack and still be well-formed */
    enum { DEPTH = 5000 };
    const char **frames = malloc(DEPTH * sizeof(*frames));
    char (*names)[32] = malloc(DEPTH * sizeof(*names));
    for (int i = 0; i < DEPTH; i++) {
        snprintf(names[i], sizeof(names[i]), "r.py:f:%d", i);
        frames[i] = names[i];
    }
    struct fg *g = fg_new();
    ck_assert_int_eq(fg_add(g, frames, DEPTH, 3), 0);
    char *svg = render(g, NULL);
    ck_assert_ptr_null(xml_check(svg));
    ck_assert_uint_eq(count_of(svg, "<g class=\"f\""), DEPTH + 1);
    free(svg);
    fg_free(g);
    free(frames);
    free(names);
}
END_TEST

/* ---- the program ------------------------------------------------------------------ */

static const char *program(void)
{
    const char *p = getenv("FLAMEGRAPH");
    if (p && *p)
        return p;
    return "flamegraph/flamegraph";
}

static int run_shell(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(buf);
        return strdup("");
    }
    return buf;
}

START_TEST(test_program)
{
    const char *prog = program();
    if (access(prog, X_OK) != 0) {
        printf("test_flamegraph: SKIP test_program: %s not built (set FLAMEGRAPH=path)\n", prog);
        return;
    }
    char dir[] = "/tmp/test_flamegraph_prog_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char in[256], out[256], err[256], cmd[1200];
    snprintf(in, sizeof(in), "%s/in.txt", dir);
    snprintf(out, sizeof(out), "%s/out.svg", dir);
    snprintf(err, sizeof(err), "%s/err.txt", dir);
    FILE *f = fopen(in, "w");
    ck_assert_ptr_nonnull(f);
    fputs("m.py:main:1;m.py:work:5 7\n"
          "\n"
          "   \n"
          "m.py:main:1;m.py:work:5 3   \n"
          "not a stack line\n"
          "m.py:main:1;(idle) 2\r\n"
          "another bad one\n"
          "m.py:main:1;<odd & name> 1 5\n", f);
    fclose(f);

    snprintf(cmd, sizeof(cmd), "'%s' --title 'T <x>' --subtitle=sub --countname=ticks --width=900 "
             "--minwidth=0 --colors=hot -o '%s' '%s' 2>'%s'", prog, out, in, err);
    ck_assert_int_eq(run_shell(cmd), 0);
    char *svg = slurp(out), *msg = slurp(err);
    ck_assert_ptr_nonnull(svg);
    assert_wellformed(svg);
    ck_assert_ptr_nonnull(strstr(svg, "<title>m.py:work:5 (10 ticks, 76.92%)</title>"));
    ck_assert_ptr_nonnull(strstr(svg, "<title>&lt;odd &amp; name&gt; (1 ticks, "));
    ck_assert_ptr_nonnull(strstr(svg, "T &lt;x&gt;</text>"));
    ck_assert_ptr_nonnull(strstr(svg, "width=\"900\""));
    /* two bad lines, reported once; blank lines are not bad */
    ck_assert_uint_eq(count_of(msg, "flamegraph: "), 1);
    ck_assert_ptr_nonnull(strstr(msg, "2 lines"));
    free(svg);
    free(msg);

    /* standard input, --inverted, and the same through "-" */
    snprintf(cmd, sizeof(cmd), "'%s' --inverted < '%s' > '%s' 2>/dev/null", prog, in, out);
    ck_assert_int_eq(run_shell(cmd), 0);
    svg = slurp(out);
    assert_wellformed(svg);
    ck_assert_ptr_nonnull(strstr(svg, "<title>all (13 samples, 100.00%)</title>"));
    free(svg);
    snprintf(cmd, sizeof(cmd), "cat '%s' | '%s' - '%s' > '%s' 2>/dev/null", in, prog, in, out);
    ck_assert_int_eq(run_shell(cmd), 0);
    svg = slurp(out);
    ck_assert_ptr_nonnull(strstr(svg, "<title>all (26 samples, 100.00%)</title>"));
    free(svg);

    /* empty input */
    snprintf(cmd, sizeof(cmd), "'%s' < /dev/null > '%s'", prog, out);
    ck_assert_int_eq(run_shell(cmd), 0);
    svg = slurp(out);
    assert_wellformed(svg);
    ck_assert_ptr_nonnull(strstr(svg, "No samples"));
    free(svg);

    /* errors: one line "flamegraph: ...", exit 1 */
    const char *bad[] = { "--bogus", "--width=abc", "--width", "--colors=rainbow", "--minwidth=-2",
                          "/nonexistent/file.txt", "-o /nonexistent/dir/out.svg" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cmd, sizeof(cmd), "'%s' %s < '%s' > /dev/null 2>'%s'", prog, bad[i], in, err);
        ck_assert_msg(run_shell(cmd) == 1, "%s: not exit 1", bad[i]);
        msg = slurp(err);
        /* the bad-line warning may come before the error for -o */
        const char *last = msg;
        size_t nl = count_of(msg, "\n");
        if (nl == 2)
            last = strchr(msg, '\n') + 1;
        ck_assert_msg(nl >= 1 && nl <= 2 && strncmp(last, "flamegraph: ", 12) == 0,
                      "%s: stderr '%s'", bad[i], msg);
        free(msg);
    }

    snprintf(cmd, sizeof(cmd), "'%s' --help > '%s'", prog, out);
    ck_assert_int_eq(run_shell(cmd), 0);
    msg = slurp(out);
    ck_assert_ptr_nonnull(strstr(msg, "Usage: flamegraph"));
    free(msg);
    snprintf(cmd, sizeof(cmd), "'%s' -v > '%s'", prog, out);
    ck_assert_int_eq(run_shell(cmd), 0);
    msg = slurp(out);
    ck_assert_ptr_nonnull(strstr(msg, "flamegraph"));
    free(msg);

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(run_shell(cmd), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("flamegraph");
    TCase *tc = tcase_create("svg");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_structure);
    tcase_add_test(tc, test_merge);
    tcase_add_test(tc, test_collapsed_parsing);
    tcase_add_test(tc, test_escaping);
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_colour_stability);
    tcase_add_test(tc, test_special_colours);
    tcase_add_test(tc, test_minwidth);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_deep_stack);
    suite_add_tcase(s, tc);

    TCase *perf = tcase_create("speed");
    tcase_set_timeout(perf, 120);
    tcase_add_test(perf, test_100k_stacks);
    suite_add_tcase(s, perf);

    TCase *prog = tcase_create("program");
    tcase_set_timeout(prog, 60);
    tcase_add_test(prog, test_program);
    suite_add_tcase(s, prog);
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
