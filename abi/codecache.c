/*
 * codecache.c - code objects, their names and line tables, and the string
 * and bytes objects they point to.  See codecache.h.
 */
#include "codecache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pystring.h"

#define CODECACHE_SLOTS 4096          /* direct-mapped, power of two */
#define LINETABLE_MAX   (1u << 20)    /* bytes of line table we accept */

struct codecache {
    struct code_info slot[CODECACHE_SLOTS];
};

struct codecache *codecache_new(void)
{
    return calloc(1, sizeof(struct codecache));
}

void codecache_free(struct codecache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < CODECACHE_SLOTS; i++)
        free(c->slot[i].linetable);
    free(c);
}

static uint64_t rd64(const unsigned char *buf, int32_t off)
{
    uint64_t v;
    memcpy(&v, buf + off, sizeof(v));
    return v;
}

static uint32_t rd32(const unsigned char *buf, int32_t off)
{
    uint32_t v;
    memcpy(&v, buf + off, sizeof(v));
    return v;
}

/* Python 2 names are bytes: valid UTF-8 is kept, any other byte becomes
 * U+FFFD, so every name pyflame writes is UTF-8. */
static size_t bytes_to_utf8(const unsigned char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = 0;
        unsigned char c = s[i];
        if (c < 0x80)
            n = 1;
        else if (c >= 0xc2 && c <= 0xdf && i + 1 < len && (s[i + 1] & 0xc0) == 0x80)
            n = 2;
        else if (c >= 0xe0 && c <= 0xef && i + 2 < len && (s[i + 1] & 0xc0) == 0x80 &&
                 (s[i + 2] & 0xc0) == 0x80 && !(c == 0xe0 && s[i + 1] < 0xa0) &&
                 !(c == 0xed && s[i + 1] >= 0xa0))
            n = 3;
        else if (c >= 0xf0 && c <= 0xf4 && i + 3 < len && (s[i + 1] & 0xc0) == 0x80 &&
                 (s[i + 2] & 0xc0) == 0x80 && (s[i + 3] & 0xc0) == 0x80 &&
                 !(c == 0xf0 && s[i + 1] < 0x90) && !(c == 0xf4 && s[i + 1] >= 0x90))
            n = 4;
        const unsigned char *src = s + i;
        size_t w = n ? n : 3;
        if (o + w + 1 > cap)
            break;
        if (n)
            memcpy(out + o, src, n);
        else
            memcpy(out + o, "\xef\xbf\xbd", 3);
        o += w;
        i += n ? n : 1;
    }
    out[o] = '\0';
    return o;
}

int pyobj_read_string(struct pyreader *r, uint64_t addr, char *out, size_t cap)
{
    const struct abi_offsets *o = &r->off;
    unsigned char hdr[128];
    if (!addr || cap == 0)
        return -EFAULT;
    if (o->unicode_state == ABI_NONE) {
        /* Python 2 str: ob_size bytes at ob_sval. */
        if (mem_read(r->mem, addr, hdr, (size_t)o->bytes_sval) < 0)
            return -EFAULT;
        int64_t size = (int64_t)rd64(hdr, o->varobject_size);
        if (size < 0 || size > 1 << 20)
            return -EFAULT;
        size_t len = (size_t)size < cap - 1 ? (size_t)size : cap - 1;
        unsigned char raw[READER_MAX_STRING];
        if (len > sizeof(raw))
            len = sizeof(raw);
        if (mem_read(r->mem, addr + (uint64_t)o->bytes_sval, raw, len) < 0)
            return -EFAULT;
        return (int)bytes_to_utf8(raw, len, out, cap);
    }
    size_t hlen = (size_t)o->unicode_compact_size;
    if (hlen > sizeof(hdr) || mem_read(r->mem, addr, hdr, hlen) < 0)
        return -EFAULT;
    int64_t length = (int64_t)rd64(hdr, o->unicode_length);
    uint32_t state = rd32(hdr, o->unicode_state);
    int kind = (int)((state >> o->unicode_kind_shift) & 7);
    int compact = (int)((state >> o->unicode_compact_shift) & 1);
    int ascii = (int)((state >> o->unicode_ascii_shift) & 1);
    if (length < 0 || length > 1 << 20 || !compact || (kind != 1 && kind != 2 && kind != 4))
        return -EFAULT;
    if (ascii) {
        size_t len = (size_t)length < cap - 1 ? (size_t)length : cap - 1;
        if (mem_read(r->mem, addr + (uint64_t)o->unicode_ascii_size, out, len) < 0)
            return -EFAULT;
        out[len] = '\0';
        return (int)len;
    }
    size_t nchars = (size_t)length < READER_MAX_STRING ? (size_t)length : READER_MAX_STRING;
    unsigned char data[READER_MAX_STRING * 4];
    if (mem_read(r->mem, addr + (uint64_t)o->unicode_compact_size, data, nchars * (size_t)kind) < 0)
        return -EFAULT;
    return (int)pystring_ucs_to_utf8(kind, data, nchars, out, cap);
}

int pyobj_read_bytes(struct pyreader *r, uint64_t addr, size_t max, uint8_t **out, uint32_t *len)
{
    const struct abi_offsets *o = &r->off;
    uint64_t size;
    *out = NULL;
    *len = 0;
    if (mem_read_u64(r->mem, addr + (uint64_t)o->varobject_size, &size) < 0)
        return -EFAULT;
    if ((int64_t)size < 0 || size > max)
        return -EFAULT;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return -ENOMEM;
    if (size && mem_read(r->mem, addr + (uint64_t)o->bytes_sval, buf, size) < 0) {
        free(buf);
        return -EFAULT;
    }
    *out = buf;
    *len = (uint32_t)size;
    return 0;
}

static uint32_t intern_name(struct pyreader *r, uint64_t addr)
{
    char buf[READER_MAX_STRING * 4 + 1];
    int len = pyobj_read_string(r, addr, buf, sizeof(buf));
    if (len < 0)
        return PF_NONE;
    return profile_string(r->prof, buf, (size_t)len);
}

struct code_info *codecache_get(struct pyreader *r, uint64_t addr)
{
    const struct abi_offsets *o = &r->off;
    unsigned char buf[512];
    struct code_info *c = &r->cache->slot[((addr >> 4) * 0x9e3779b97f4a7c15ULL) >> 52 & (CODECACHE_SLOTS - 1)];
    /* Every use is checked against the target: code objects are freed and
     * their memory reused for other code objects (exec, compile, imports),
     * and a stale entry would put wrong names on real stacks.  The read is
     * usually served by this tick's page cache. */
    if (!addr || (addr & 7) || r->code_len > sizeof(buf) || mem_read(r->mem, addr, buf, r->code_len) < 0)
        return NULL;
    if (r->target->code_type && rd64(buf, o->object_type) != r->target->code_type)
        return NULL;   /* not a code object */
    uint64_t filename_p = rd64(buf, o->code_filename);
    uint64_t name_p = rd64(buf, o->code_name);
    uint64_t qualname_p = o->code_qualname != ABI_NONE ? rd64(buf, o->code_qualname) : 0;
    uint64_t linetable_p = rd64(buf, o->code_linetable);
    int32_t firstlineno = (int32_t)rd32(buf, o->code_firstlineno);

    if (c->addr == addr && c->filename_p == filename_p && c->name_p == name_p &&
        c->qualname_p == qualname_p && c->linetable_p == linetable_p && c->firstlineno == firstlineno)
        return c;

    /* Miss: read the names and the line table, then replace the slot. */
    uint32_t file = intern_name(r, filename_p);
    uint32_t name = intern_name(r, name_p);
    if (file == PF_NONE || name == PF_NONE)
        return NULL;
    uint32_t qual = qualname_p ? intern_name(r, qualname_p) : PF_NONE;
    uint8_t *lt = NULL;
    uint32_t ltlen = 0;
    if (linetable_p && pyobj_read_bytes(r, linetable_p, LINETABLE_MAX, &lt, &ltlen) < 0)
        return NULL;
    /* 3.13's _Py_InitCleanup: the shim frame pushed under a specialised call of
     * a Python __init__.  Known by its symbol, or (stripped builds) by its make:
     * file name and name the same "__init__" object, first line 0. */
    int shim = addr == r->target->init_cleanup ||
               (!r->target->init_cleanup && r->off.minor >= 13 && filename_p == name_p &&
                firstlineno == 0 && name == profile_string(r->prof, "__init__", 8));
    free(c->linetable);
    c->shim = (uint8_t)shim;
    c->addr = addr;
    c->filename_p = filename_p;
    c->name_p = name_p;
    c->qualname_p = qualname_p;
    c->linetable_p = linetable_p;
    c->firstlineno = firstlineno;
    c->file = file;
    c->name = name;
    c->qualname = qual;
    c->linetable = lt;
    c->linetable_len = ltlen;
    for (int i = 0; i < 4; i++)
        c->memo_off[i] = INT32_MIN;
    c->memo_next = 0;
    return c;
}

int codecache_line(struct pyreader *r, struct code_info *c, int offset)
{
    if (offset < 0)
        return c->firstlineno;   /* the frame has not started yet */
    for (int i = 0; i < 4; i++)
        if (c->memo_off[i] == offset)
            return c->memo_line[i];
    int line = linetable_lookup(r->ltfmt, c->linetable, c->linetable_len, c->firstlineno, offset);
    if (line < 0)
        line = c->firstlineno;   /* an instruction with no line (3.10+ prologues): the def line */
    uint32_t k = c->memo_next++ & 3;
    c->memo_off[k] = offset;
    c->memo_line[k] = line;
    return line;
}
