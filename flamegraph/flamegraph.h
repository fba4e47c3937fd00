/*
 * flamegraph.h - pyflame's own flame-graph renderer (interactive SVG).
 *
 * Build a call tree with fg_add() / fg_add_collapsed(), then write it with
 * fg_write_svg().  The SVG carries a small inline script: click a frame to
 * zoom into it, "Reset Zoom", "Search" (or Ctrl-F) for a regular expression,
 * a details line showing the hovered frame.
 *
 * Frame names are arbitrary bytes.  Python frames look like
 * "file.py:func:line" (or "file.py:func"); their colour depends only on a
 * hash of the file part (the text before the first ':'), so a module keeps
 * its colour from one run to the next.  "(idle)" frames are grey, "(failed)"
 * frames red and striped, and the synthetic roots "thread ..." / "process ..."
 * a neutral blue-grey.
 */
#ifndef PYFLAME_FLAMEGRAPH_H
#define PYFLAME_FLAMEGRAPH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct fg_options {
    const char *title;        /* default "Flame Graph" */
    const char *subtitle;     /* may be NULL */
    const char *countname;    /* default "samples" */
    int width;                /* px, default 1200 */
    double minwidth;          /* px; narrower frames are omitted (their time still counts in parents), default 0.1 */
    int inverted;             /* icicle graph: root at the top */
    const char *palette;      /* "python" (default) or "hot"; may be NULL */
};

struct fg;

/* Fill in the defaults above. */
void fg_options_init(struct fg_options *o);

/* A new, empty graph (NULL when out of memory), and its release (NULL is fine). */
struct fg *fg_new(void);
void fg_free(struct fg *g);

/* Add `count` samples of one stack.  frames are root-first; each frame a
 * NUL-terminated string of any bytes (may be invalid UTF-8).  n == 0 adds
 * the samples to the root only; count == 0 adds nothing.  Identical stacks
 * add up (saturating at UINT64_MAX).  Returns 0, -EINVAL (NULL arguments),
 * or -ENOMEM. */
int fg_add(struct fg *g, const char *const *frames, size_t n, uint64_t count);

/* Add one flamegraph.pl "collapsed" line: "a;b;c 123".  The count is the
 * number after the last run of whitespace (trailing whitespace, \r and \n are
 * ignored; a decimal count such as "12.5" is rounded).  flamegraph.pl's
 * differential form "a;b;c 10 12" is accepted and the second count ignored,
 * except when the last frame is a synthetic root ("thread ..." / "process
 * ..."), whose name may itself end in a number.  The line is len bytes long
 * (or up to an earlier NUL).  Returns 0, -EINVAL for a line with no count
 * (including a blank line), or -ENOMEM. */
int fg_add_collapsed(struct fg *g, const char *line, size_t len);

/* Write the graph as a standalone, well-formed SVG document.  o may be NULL
 * for the defaults.  An empty graph gives a valid SVG saying "No samples".
 * Returns 0, -EINVAL for bad options (width <= 0, negative minwidth, unknown
 * palette), -ENOMEM, or -errno when writing failed. */
int fg_write_svg(const struct fg *g, FILE *out, const struct fg_options *o);

#endif
