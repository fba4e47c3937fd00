/*
 * flamegraph - render collapsed stacks ("a;b;c 123" lines, as written by
 * pyflame or flamegraph.pl's stackcollapse tools) as an interactive SVG.
 *
 *   flamegraph [options] [FILE...] > out.svg
 */
#include "flamegraph.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PYFLAME_VERSION
#define PYFLAME_VERSION "unknown"
#endif

static const char usage_text[] =
    "Usage: flamegraph [options] [FILE...] > out.svg\n"
    "Render collapsed stacks (\"frame;frame;frame COUNT\" lines) from the FILEs,\n"
    "or standard input when none (or \"-\"), as an interactive SVG flame graph.\n"
    "\n"
    "Options:\n"
    "  --title=TEXT       title (default \"Flame Graph\")\n"
    "  --subtitle=TEXT    second line under the title\n"
    "  --countname=TEXT   what the counts are (default \"samples\")\n"
    "  --width=PX         image width (default 1200)\n"
    "  --minwidth=PX      leave out frames narrower than this (default 0.1)\n"
    "  --inverted         icicle graph: root at the top\n"
    "  --colors=PALETTE   python (default; a colour per source file) or hot\n"
    "  -o, --output=FILE  write to FILE instead of standard output\n"
    "  -h, --help         this help\n"
    "  -v, --version      print the version\n"
    "\n"
    "In the SVG: click a frame to zoom, Ctrl-F to search.\n";

__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("flamegraph: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Lines read, and lines that were not collapsed stacks. */
struct counts {
    unsigned long long bad;
};

static void read_stream(struct fg *g, FILE *in, const char *name, struct counts *c)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, in)) > 0) {
        size_t len = (size_t)n;
        size_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' ||
                           line[i] == '\n' || line[i] == '\v' || line[i] == '\f'))
            i++;
        if (i == len)
            continue;               /* blank line */
        int r = fg_add_collapsed(g, line, len);
        if (r == -EINVAL)
            c->bad++;
        else if (r < 0)
            die("%s: %s", name, strerror(-r));
    }
    if (ferror(in))
        die("%s: read error: %s", name, strerror(errno));
    free(line);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_TITLE = 256, OPT_SUBTITLE, OPT_COUNTNAME, OPT_WIDTH, OPT_MINWIDTH,
           OPT_INVERTED, OPT_COLORS };
    static const struct option longopts[] = {
        { "title", required_argument, NULL, OPT_TITLE },
        { "subtitle", required_argument, NULL, OPT_SUBTITLE },
        { "countname", required_argument, NULL, OPT_COUNTNAME },
        { "width", required_argument, NULL, OPT_WIDTH },
        { "minwidth", required_argument, NULL, OPT_MINWIDTH },
        { "inverted", no_argument, NULL, OPT_INVERTED },
        { "colors", required_argument, NULL, OPT_COLORS },
        { "output", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'v' },
        { NULL, 0, NULL, 0 },
    };
    struct fg_options opt;
    const char *output = NULL;
    fg_options_init(&opt);

    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":o:hv", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_TITLE: opt.title = optarg; break;
        case OPT_SUBTITLE: opt.subtitle = optarg; break;
        case OPT_COUNTNAME: opt.countname = optarg; break;
        case OPT_WIDTH: {
            long v;
            if (parse_int(optarg, 100, 1000000, &v) < 0)
                die("--width: expected a number of pixels from 100 to 1000000, got '%s'", optarg);
            opt.width = (int)v;
            break;
        }
        case OPT_MINWIDTH: {
            char *end;
            errno = 0;
            double v = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(v >= 0) || isinf(v))
                die("--minwidth: expected a number of pixels >= 0, got '%s'", optarg);
            opt.minwidth = v;
            break;
        }
        case OPT_INVERTED: opt.inverted = 1; break;
        case OPT_COLORS:
            if (strcmp(optarg, "python") != 0 && strcmp(optarg, "hot") != 0)
                die("--colors: expected python or hot, got '%s'", optarg);
            opt.palette = optarg;
            break;
        case 'o': output = optarg; break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'v':
            printf("flamegraph (pyflame) %s\n", PYFLAME_VERSION);
            return 0;
        case ':':
            if (optopt > 0 && optopt < 256)
                die("option -%c needs an argument (see --help)", optopt);
            die("option %s needs an argument (see --help)", argv[optind - 1]);
        default:
            if (optopt > 0 && optopt < 256)
                die("unknown option -%c (see --help)", optopt);
            die("unknown option %s (see --help)", argv[optind - 1]);
        }
    }

    struct fg *g = fg_new();
    if (!g)
        die("out of memory");
    struct counts c = { 0 };
    if (optind >= argc) {
        read_stream(g, stdin, "standard input", &c);
    } else {
        for (int i = optind; i < argc; i++) {
            if (strcmp(argv[i], "-") == 0) {
                read_stream(g, stdin, "standard input", &c);
                continue;
            }
            FILE *in = fopen(argv[i], "r");
            if (!in)
                die("cannot open %s: %s", argv[i], strerror(errno));
            read_stream(g, in, argv[i], &c);
            fclose(in);
        }
    }
    if (c.bad)
        fprintf(stderr, "flamegraph: skipped %llu line%s that %s not collapsed stacks\n",
                c.bad, c.bad == 1 ? "" : "s", c.bad == 1 ? "was" : "were");

    FILE *out = stdout;
    char *tmp = NULL;
    if (output && strcmp(output, "-") != 0) {
        /* write next to the target and rename, so a failure keeps the old file */
        size_t n = strlen(output) + sizeof(".XXXXXX");
        tmp = malloc(n);
        if (!tmp)
            die("out of memory");
        snprintf(tmp, n, "%s.XXXXXX", output);
        int fd = mkstemp(tmp);
        if (fd < 0) {
            int e = errno;
            free(tmp);
            die("cannot write %s: %s", output, strerror(e));
        }
        out = fdopen(fd, "w");
        if (!out) {
            int e = errno;
            close(fd);
            unlink(tmp);
            free(tmp);
            die("cannot write %s: %s", output, strerror(e));
        }
    }
    int r = fg_write_svg(g, out, &opt);
    fg_free(g);
    if (tmp) {
        if (fclose(out) != 0 && r == 0)
            r = -(errno ? errno : EIO);
        mode_t mask = umask(0);
        umask(mask);
        if (r == 0 && chmod(tmp, 0666 & ~mask) != 0)
            r = -errno;
        if (r == 0 && rename(tmp, output) != 0)
            r = -errno;
        if (r < 0) {
            unlink(tmp);
            free(tmp);
            die("cannot write %s: %s", output, strerror(-r));
        }
        free(tmp);
    } else if (r < 0) {
        die("cannot write the SVG: %s", strerror(-r));
    }
    return 0;
}
