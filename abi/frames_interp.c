/*
 * frames_interp.c - stacks made of _PyInterpreterFrames (CPython 3.11+):
 * the thread's current frame, then `previous`.  Frames owned by the C stack
 * (entry shims, owner 3 in 3.12/3.13) are skipped, and so is 3.13's shim
 * under a specialised __init__ call (codecache: shim); on 3.13 the frame's
 * executable must be a code object.  The line comes from the instruction
 * pointer's distance to the code's inline bytecode, through the location
 * table: 3.11/3.12 keep prev_instr (the last code unit executed), 3.13 keeps
 * instr_ptr (the instruction executing now).
 */
#include <errno.h>
#include <string.h>

#include "codecache.h"
#include "reader.h"

#define FRAME_OWNED_BY_CSTACK 3

int frames_interp_walk(struct pyreader *r, uint64_t frame, struct rframe *frames, size_t max,
                       size_t *n)
{
    const struct abi_offsets *o = &r->off;
    unsigned char buf[256];
    size_t k = 0;
    int truncated = 0;
    int cstack_owner = r->off.minor >= 12;   /* 3.11 marks entries with is_entry instead */
    reader_visit_reset(r);
    for (size_t depth = 0; frame; depth++) {
        if (depth >= READER_MAX_DEPTH * 4)
            return -EFAULT;
        if ((frame & 7) || reader_visit(r, frame))
            return -EFAULT;
        if (r->frame_len > sizeof(buf) || mem_read_stack(r->mem, frame, buf, r->frame_len) < 0)
            return -EFAULT;
        uint64_t code, prev, instr;
        memcpy(&code, buf + o->iframe_code, sizeof(code));
        memcpy(&prev, buf + o->iframe_previous, sizeof(prev));
        memcpy(&instr, buf + o->iframe_instr, sizeof(instr));
        unsigned char owner = buf[o->iframe_owner];
        reader_trail(r, frame, prev, code);
        if (owner > 4)
            return -EFAULT;
        if (cstack_owner && owner == FRAME_OWNED_BY_CSTACK) {
            frame = prev;
            continue;
        }
        if (k < max) {
            struct code_info *c = codecache_get(r, code);
            if (!c) {
                /* 3.13: an executable that is not a code object is not a Python frame. */
                if (r->off.minor >= 13 && r->target->code_type) {
                    uint64_t type = 0;
                    if (code && mem_read_u64(r->mem, code + (uint64_t)o->object_type, &type) == 0 &&
                        type != r->target->code_type) {
                        frame = prev;
                        continue;
                    }
                }
                return -EFAULT;
            }
            if (c->shim) {
                frame = prev;
                continue;
            }
            uint64_t bytecode = code + (uint64_t)o->code_code_adaptive;
            int64_t offset = (int64_t)(instr - bytecode);
            int line = codecache_line(r, c, offset > (1 << 24) ? -1 : (int)offset);
            struct rframe *f = &frames[k++];
            f->file = c->file;
            f->name = c->name;
            f->qualname = c->qualname;
            f->line = line;
            f->firstlineno = c->firstlineno;
        } else {
            truncated = 1;
        }
        frame = prev;
    }
    *n = k;
    return truncated ? -E2BIG : 0;
}
