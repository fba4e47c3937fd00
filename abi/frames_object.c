/*
 * frames_object.c - stacks made of PyFrameObjects (CPython 2.7 .. 3.10):
 * tstate->frame, then f_back; the line comes from f_lasti and the code
 * object's co_lnotab (<=3.9, f_lasti in bytes) or co_linetable (3.10,
 * f_lasti in code units).
 */
#include <errno.h>
#include <string.h>

#include "codecache.h"
#include "reader.h"

int frames_object_walk(struct pyreader *r, uint64_t frame, struct rframe *frames, size_t max,
                       size_t *n)
{
    const struct abi_offsets *o = &r->off;
    unsigned char buf[512];
    size_t k = 0;
    int truncated = 0;
    reader_visit_reset(r);
    for (size_t depth = 0; frame; depth++) {
        if (depth >= READER_MAX_DEPTH * 4)
            return -EFAULT;   /* no real stack is this deep: garbage */
        if ((frame & 7) || reader_visit(r, frame))
            return -EFAULT;
        if (r->frame_len > sizeof(buf) || mem_read(r->mem, frame, buf, r->frame_len) < 0)
            return -EFAULT;
        uint64_t code, back;
        int32_t lasti;
        memcpy(&code, buf + o->frame_code, sizeof(code));
        memcpy(&back, buf + o->frame_back, sizeof(back));
        memcpy(&lasti, buf + o->frame_lasti, sizeof(lasti));
        reader_trail(r, frame, back, code);
        if (k < max) {
            struct code_info *c = codecache_get(r, code);
            if (!c)
                return -EFAULT;
            int offset = r->ltfmt == LINETABLE_310 ? (lasti < 0 ? -1 : lasti * 2) : lasti;
            int line = codecache_line(r, c, offset);
            struct rframe *f = &frames[k++];
            f->file = c->file;
            f->name = c->name;
            f->qualname = c->qualname;
            f->line = line;
            f->firstlineno = c->firstlineno;
        } else {
            truncated = 1;
        }
        frame = back;
    }
    *n = k;
    return truncated ? -E2BIG : 0;
}
