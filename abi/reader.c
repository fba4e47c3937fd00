/*
 * reader.c - the interpreter, its threads and the GIL holder, per layout
 * family; the stack walks live in frames_object.c and frames_interp.c.
 */
#include "reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codecache.h"

#define READER_VISIT_SLOTS 8192   /* power of two, > 2 * READER_MAX_DEPTH */

static size_t max_end(int count, const int32_t *offs)
{
    int32_t m = 0;
    for (int i = 0; i < count; i++)
        if (offs[i] != ABI_NONE && offs[i] + 8 > m)
            m = offs[i] + 8;
    return (size_t)m;
}

int reader_init(struct pyreader *r, const struct pytarget *t, struct mem *m, struct profile *p)
{
    memset(r, 0, sizeof(*r));
    r->off = *t->abi;
    r->target = t;
    r->mem = m;
    r->prof = p;
    r->ltfmt = linetable_format_for(r->off.major, r->off.minor);
    r->cache = codecache_new();
    r->visit = calloc(READER_VISIT_SLOTS, sizeof(*r->visit));
    r->visit_gen = calloc(READER_VISIT_SLOTS, sizeof(*r->visit_gen));
    r->trail_addr = malloc(4 * READER_MAX_DEPTH * sizeof(uint64_t));
    r->trail_link = malloc(4 * READER_MAX_DEPTH * sizeof(uint64_t));
    r->trail_code = malloc(4 * READER_MAX_DEPTH * sizeof(uint64_t));
    if (!r->cache || !r->visit || !r->visit_gen || !r->trail_addr || !r->trail_link || !r->trail_code) {
        reader_free(r);
        return -ENOMEM;
    }
    if (r->off.major == 3 && r->off.minor >= 13 && t->runtime)
        debug_offsets_apply(r);

    const struct abi_offsets *o = &r->off;
    int32_t ts[] = { o->tstate_next, o->tstate_interp, o->tstate_frame, o->tstate_cframe,
                     o->tstate_current_frame, o->tstate_thread_id, o->tstate_native_thread_id };
    r->tstate_len = max_end((int)(sizeof(ts) / sizeof(ts[0])), ts);
    int32_t fr[] = { o->frame_back, o->frame_code, o->frame_lasti, o->iframe_previous,
                     o->iframe_code, o->iframe_instr, o->iframe_owner, o->iframe_is_entry };
    r->frame_len = max_end((int)(sizeof(fr) / sizeof(fr[0])), fr);
    int32_t co[] = { o->code_filename, o->code_name, o->code_qualname, o->code_firstlineno,
                     o->code_linetable, o->object_type };
    r->code_len = max_end((int)(sizeof(co) / sizeof(co[0])), co);
    return 0;
}

void reader_free(struct pyreader *r)
{
    codecache_free(r->cache);
    free(r->visit);
    free(r->visit_gen);
    free(r->trail_addr);
    free(r->trail_link);
    free(r->trail_code);
    free(r->verify_buf);
    r->verify_buf = NULL;
    r->trail_addr = r->trail_link = r->trail_code = NULL;
    r->cache = NULL;
    r->visit = NULL;
    r->visit_gen = NULL;
}

void reader_visit_reset(struct pyreader *r)
{
    r->gen++;
    if (r->gen == 0) {   /* wrapped: clear for real */
        memset(r->visit_gen, 0, READER_VISIT_SLOTS * sizeof(*r->visit_gen));
        r->gen = 1;
    }
}

int reader_visit(struct pyreader *r, uint64_t addr)
{
    uint64_t h = (addr >> 3) * 0x9e3779b97f4a7c15ULL;
    size_t j = (size_t)(h >> 40) & (READER_VISIT_SLOTS - 1);
    for (size_t k = 0; k < READER_VISIT_SLOTS; k++) {
        if (r->visit_gen[j] != r->gen) {
            r->visit_gen[j] = r->gen;
            r->visit[j] = addr;
            return 0;
        }
        if (r->visit[j] == addr)
            return 1;
        j = (j + 1) & (READER_VISIT_SLOTS - 1);
    }
    return 1;   /* full: treat as a cycle */
}

static uint64_t rd64(const unsigned char *buf, int32_t off)
{
    uint64_t v;
    memcpy(&v, buf + off, sizeof(v));
    return v;
}

int reader_interp(struct pyreader *r, uint64_t *interp)
{
    const struct abi_offsets *o = &r->off;
    const struct pytarget *t = r->target;
    uint64_t v = 0;
    *interp = 0;
    if (t->runtime) {
        int32_t off = o->runtime_interp_main != ABI_NONE ? o->runtime_interp_main
                                                         : o->runtime_interp_head;
        if (mem_read_u64(r->mem, t->runtime + (uint64_t)off, &v) < 0)
            return -EFAULT;
        if (!v && o->runtime_interp_head != ABI_NONE &&
            mem_read_u64(r->mem, t->runtime + (uint64_t)o->runtime_interp_head, &v) < 0)
            return -EFAULT;
    } else {
        if (t->interp_head && mem_read_u64(r->mem, t->interp_head, &v) < 0)
            return -EFAULT;
        if (!v) {
            /* No interp_head symbol: the current thread state knows its interpreter. */
            uint64_t ts = 0;
            if (r->interp) {
                v = r->interp;
            } else if (mem_read_u64(r->mem, t->tstate_current, &ts) == 0 && ts) {
                if (mem_read_u64(r->mem, ts + (uint64_t)o->tstate_interp, &v) < 0)
                    v = 0;
            }
        }
        /* interp_head is the newest interpreter; the main one is the last. */
        for (int i = 0; v && i < 64; i++) {
            uint64_t next = 0;
            if (mem_read_u64(r->mem, v + (uint64_t)o->interp_next, &next) < 0 || !next)
                break;
            v = next;
        }
    }
    r->interp = v;
    *interp = v;
    return 0;
}

int reader_gil_holder(struct pyreader *r, uint64_t interp, uint64_t *tstate)
{
    const struct abi_offsets *o = &r->off;
    const struct pytarget *t = r->target;
    uint64_t v = 0;
    *tstate = 0;
    if (o->interp_ceval_gil != ABI_NONE) {
        /* 3.12+: the interpreter's GIL; last_holder counts only while locked. */
        uint64_t gil = 0;
        int32_t locked = 0;
        if (!interp || mem_read_u64(r->mem, interp + (uint64_t)o->interp_ceval_gil, &gil) < 0 || !gil)
            return -EFAULT;
        if (mem_read_i32(r->mem, gil + (uint64_t)o->gil_locked, &locked) < 0)
            return -EFAULT;
        if (locked != 1)
            return 0;
        if (mem_read_u64(r->mem, gil + (uint64_t)o->gil_last_holder, &v) < 0)
            return -EFAULT;
    } else if (o->runtime_tstate_current != ABI_NONE) {
        if (mem_read_u64(r->mem, t->runtime + (uint64_t)o->runtime_tstate_current, &v) < 0)
            return -EFAULT;
    } else {
        if (mem_read_u64(r->mem, t->tstate_current, &v) < 0)
            return -EFAULT;
    }
    *tstate = v;
    return 0;
}

int reader_threads(struct pyreader *r, uint64_t interp, uint64_t *tstates, size_t max, size_t *n)
{
    const struct abi_offsets *o = &r->off;
    uint64_t ts = 0;
    *n = 0;
    if (!interp)
        return 0;
    if (mem_read_u64(r->mem, interp + (uint64_t)o->interp_tstate_head, &ts) < 0)
        return -EFAULT;
    reader_visit_reset(r);
    size_t k = 0;
    for (size_t i = 0; ts && i < READER_MAX_THREADS; i++) {
        if (reader_visit(r, ts))
            return -EFAULT;   /* a cycle: garbage */
        if (k < max)
            tstates[k++] = ts;
        if (mem_read_u64(r->mem, ts + (uint64_t)o->tstate_next, &ts) < 0)
            return -EFAULT;
    }
    *n = k;
    return 0;
}

int reader_thread(struct pyreader *r, uint64_t tstate, struct rthread *out)
{
    const struct abi_offsets *o = &r->off;
    unsigned char buf[4096];
    memset(out, 0, sizeof(*out));
    if (r->tstate_len > sizeof(buf) || mem_read(r->mem, tstate, buf, r->tstate_len) < 0)
        return -EFAULT;
    out->tstate = tstate;
    out->thread_id = rd64(buf, o->tstate_thread_id);
    if (o->tstate_native_thread_id != ABI_NONE) {
        uint64_t nid = rd64(buf, o->tstate_native_thread_id);
        out->native_id = nid > 0 && nid < (1u << 30) ? (pid_t)nid : 0;
    }
    if (o->tstate_frame != ABI_NONE) {
        out->top_frame = rd64(buf, o->tstate_frame);
    } else if (o->tstate_current_frame != ABI_NONE) {
        out->top_frame = rd64(buf, o->tstate_current_frame);
    } else if (o->tstate_cframe != ABI_NONE) {
        uint64_t cframe = rd64(buf, o->tstate_cframe), f = 0;
        if (cframe && mem_read_u64(r->mem, cframe + (uint64_t)o->cframe_current_frame, &f) < 0)
            return -EFAULT;
        out->cframe = cframe ? cframe + (uint64_t)o->cframe_current_frame : 0;
        out->top_frame = f;
    }
    return 0;
}

int reader_stack(struct pyreader *r, const struct rthread *t, struct rframe *frames, size_t max,
                 size_t *n)
{
    *n = 0;
    r->trail_n = 0;
    if (!t->top_frame)
        return 0;
    if (r->off.iframe_previous != ABI_NONE)
        return frames_interp_walk(r, t->top_frame, frames, max, n);
    return frames_object_walk(r, t->top_frame, frames, max, n);
}

/* reader_verify for frames spread over many pages: one small read each. */
static int verify_frames(struct pyreader *r, int32_t link_off, int32_t code_off, int32_t lo,
                         int32_t hi)
{
    size_t span = (size_t)(hi - lo);
    enum { BATCH = 256 };
    unsigned char buf[BATCH][64];
    struct mem_req req[BATCH];
    if (span > sizeof(buf[0]))
        return -EFAULT;
    for (size_t i = 0; i < r->trail_n; i += BATCH) {
        size_t k = r->trail_n - i < BATCH ? r->trail_n - i : BATCH;
        for (size_t j = 0; j < k; j++) {
            req[j].addr = r->trail_addr[i + j] + (uint64_t)lo;
            req[j].buf = buf[j];
            req[j].len = span;
        }
        if (mem_readv(r->mem, req, k) < 0)
            return -EAGAIN;
        for (size_t j = 0; j < k; j++) {
            uint64_t link, code;
            memcpy(&link, buf[j] + (link_off - lo), 8);
            memcpy(&code, buf[j] + (code_off - lo), 8);
            if (link != r->trail_link[i + j] || code != r->trail_code[i + j])
                return -EAGAIN;
        }
    }
    return 0;
}

/* Adds the pages of [addr, addr + len) to the list (no duplicates); 0, or
 * -E2BIG when it is full. */
static int add_pages(uint64_t *pages, size_t *np, size_t cap, uint64_t addr, uint64_t len)
{
    enum { PAGE = 4096 };
    if (!addr || !len)
        return 0;
    for (uint64_t pg = addr & ~(uint64_t)(PAGE - 1); pg <= ((addr + len - 1) & ~(uint64_t)(PAGE - 1));
         pg += PAGE) {
        size_t k = 0;
        while (k < *np && pages[k] != pg)
            k++;
        if (k == *np) {
            if (*np == cap)
                return -E2BIG;
            pages[(*np)++] = pg;
        }
    }
    return 0;
}

int reader_verify(struct pyreader *r, const struct rthread *t)
{
    enum { VPAGES = 64, PAGE = 4096 };
    int iframes = r->off.iframe_previous != ABI_NONE;
    int32_t link_off = iframes ? r->off.iframe_previous : r->off.frame_back;
    int32_t code_off = iframes ? r->off.iframe_code : r->off.frame_code;
    int32_t lo = link_off < code_off ? link_off : code_off;
    int32_t hi = (link_off > code_off ? link_off : code_off) + 8;

    /* The pages to read again, all in one call: the frames' (they share
     * pages: the 3.11+ data stack is contiguous), the thread state's, and
     * the frame slot just above the top one (a call made since). */
    uint64_t pages[VPAGES];
    size_t np = 0;
    int scattered = 0;
    for (size_t i = 0; i < r->trail_n && !scattered; i++)
        scattered = add_pages(pages, &np, VPAGES - 8, r->trail_addr[i] + (uint64_t)lo,
                              (uint64_t)(hi - lo)) < 0;
    size_t nframes = np;
    add_pages(pages, &np, VPAGES, t->tstate, r->tstate_len);
    add_pages(pages, &np, VPAGES, t->cframe, 8);
    add_pages(pages, &np, VPAGES, t->top_frame, (uint64_t)r->frame_len * 2);
    mem_refresh_pages(r->mem, pages, np);

    struct rthread now;
    if (reader_thread(r, t->tstate, &now) < 0)
        return -EFAULT;
    if (now.top_frame != t->top_frame) {
        /* The thread moved on.  The stack read is still one it had if it only
         * returned into a frame we read, or called one more function on top
         * of the frame we read first; the frames below are checked next. */
        int returned = 0;
        for (size_t i = 0; i < r->trail_n && !returned; i++)
            returned = r->trail_addr[i] == now.top_frame;
        uint64_t link = 0;
        if (!returned && (mem_read_u64(r->mem, now.top_frame + (uint64_t)link_off, &link) < 0 ||
                          link != t->top_frame))
            return -EAGAIN;
    }
    if (scattered)
        return verify_frames(r, link_off, code_off, lo, hi);

    /* Compare each frame's link and code with what the walk saw. */
    if (!r->verify_buf && !(r->verify_buf = malloc((size_t)VPAGES * PAGE)))
        return -ENOMEM;
    for (size_t k = 0; k < nframes; k++)   /* served by the refresh above */
        if (mem_read(r->mem, pages[k], r->verify_buf + k * PAGE, PAGE) < 0)
            return -EAGAIN;   /* a page went away: the stack changed */
    size_t last = 0;
    for (size_t i = 0; i < r->trail_n; i++) {
        uint64_t vals[2] = { 0, 0 };
        int32_t offs[2] = { link_off, code_off };
        for (int f = 0; f < 2; f++) {
            /* frames are 8-aligned and so are the fields: never across a page */
            uint64_t a = r->trail_addr[i] + (uint64_t)offs[f];
            uint64_t pg = a & ~(uint64_t)(PAGE - 1);
            if (pages[last] != pg) {
                last = 0;
                while (last < nframes && pages[last] != pg)
                    last++;
                if (last == nframes)
                    return -EFAULT;
            }
            memcpy(&vals[f], r->verify_buf + last * PAGE + (a - pg), 8);
        }
        if (vals[0] != r->trail_link[i] || vals[1] != r->trail_code[i])
            return -EAGAIN;
    }
    return 0;
}

int reader_finalizing(struct pyreader *r)
{
    uint64_t v = 0;
    if (!r->target->runtime || r->off.runtime_finalizing == ABI_NONE)
        return 0;
    if (mem_read_u64(r->mem, r->target->runtime + (uint64_t)r->off.runtime_finalizing, &v) < 0)
        return 0;
    return v != 0;
}
