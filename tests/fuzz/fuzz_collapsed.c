/*
 * fuzz_collapsed.c - libFuzzer target for the flame-graph library's
 * collapsed-line parser (flamegraph/flamegraph.h fg_add_collapsed).
 *
 * The input is split at '\n' (as the flamegraph program reads a file) and
 * each line is handed to fg_add_collapsed in a buffer of exactly its
 * length (no NUL after it: ASan catches a read past len).  The graph is then
 * written as SVG to a memory stream (when the input is small, to keep the
 * fuzzer fast); an SVG that does not end with "</svg>\n" is a bug.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flamegraph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fg *g = fg_new();
    if (!g)
        return 0;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        size_t len = i - start;
        char *line = malloc(len ? len : 1);
        if (!line)
            abort();
        memcpy(line, data + start, len);
        int rc = fg_add_collapsed(g, len ? line : NULL, len);
        if (rc != 0 && rc != -EINVAL && rc != -ENOMEM)
            abort();
        free(line);
        start = i + 1;
    }
    /* Also the whole input as one "line" (NULs and newlines inside). */
    char *all = malloc(size ? size : 1);
    if (!all)
        abort();
    memcpy(all, data, size);
    (void)fg_add_collapsed(g, size ? all : NULL, size);
    free(all);

    if (size <= 2048) {
        char *buf = NULL;
        size_t blen = 0;
        FILE *f = open_memstream(&buf, &blen);
        if (f) {
            struct fg_options o;
            fg_options_init(&o);
            o.minwidth = (size & 1) ? 0.0 : 0.1;
            o.inverted = (size & 2) != 0;
            int rc = fg_write_svg(g, f, &o);
            fclose(f);
            if (rc != 0 && rc != -ENOMEM)
                abort();
            if (rc == 0 && (blen < 7 || memcmp(buf + blen - 7, "</svg>\n", 7) != 0))
                abort();
            free(buf);
        }
    }
    fg_free(g);
    return 0;
}
