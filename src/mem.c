/* mem.c - remote memory reads.  See mem.h. */
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define MEM_MAX_IOV 256

void mem_init(struct mem *m, pid_t pid)
{
    memset(m, 0, sizeof(*m));
    m->pid = pid;
    m->memfd = -1;
    m->rng = 0x9e3779b97f4a7c15ULL;
}

int mem_cache_enable(struct mem *m)
{
    if (!m->cache)
        m->cache = calloc(MEM_CACHE_PAGES, sizeof(*m->cache));
    m->gen = 1;
    return m->cache ? 0 : -ENOMEM;
}

void mem_cache_reset(struct mem *m)
{
    if (++m->gen == 0) {
        for (size_t i = 0; m->cache && i < MEM_CACHE_PAGES; i++)
            m->cache[i].gen = 0;
        m->gen = 1;
    }
}

/* Reads the pages listed into their cache slots with as few calls as the
 * transfer allows: process_vm_readv stops at the first unreadable page, so a
 * batch goes on after it, three times at most. */
static void prefetch(struct mem *m, const uint64_t *pages, size_t n)
{
    struct iovec local[MEM_PREFETCH], remote[MEM_PREFETCH];
    struct mem_page *slots[MEM_PREFETCH];
    size_t k = 0;
    for (size_t i = 0; i < n && k < MEM_PREFETCH; i++) {
        struct mem_page *s = &m->cache[(pages[i] / MEM_PAGE) & (MEM_CACHE_PAGES - 1)];
        if (s->gen == m->gen)
            continue;   /* the slot is taken in this batch (or already read) */
        s->addr = pages[i];
        s->gen = m->gen;   /* claimed; cleared below unless read */
        slots[k] = s;
        local[k].iov_base = s->data;
        local[k].iov_len = MEM_PAGE;
        remote[k].iov_base = (void *)(uintptr_t)pages[i];
        remote[k].iov_len = MEM_PAGE;
        k++;
    }
    for (size_t i = 0; i < k; i++)
        slots[i]->gen = 0;
    size_t start = 0;
    for (int tries = 0; tries < 3 && start < k; tries++) {
        m->calls++;
        ssize_t got = process_vm_readv(m->pid, local + start, k - start, remote + start, k - start, 0);
        if (got < 0) {
            if (errno == ENOSYS || errno == EPERM)
                m->vm_broken = 1;
            if (errno != EFAULT)
                return;
            got = 0;
        }
        size_t ok = (size_t)got / MEM_PAGE;
        for (size_t i = start; i < start + ok; i++)
            slots[i]->gen = m->gen;
        m->prefetched += ok;
        start += ok + 1;   /* past the page that stopped it */
    }
}

void mem_tick_begin(struct mem *m)
{
    mem_cache_reset(m);
    if (++m->tick == 0)
        m->tick = 1;
    size_t n = m->nused;
    m->nused = 0;
    if (!m->cache || m->vm_broken || n == 0)
        return;
    uint64_t pages[MEM_PREFETCH];
    memcpy(pages, m->used, n * sizeof(pages[0]));
    prefetch(m, pages, n);
}

void mem_refresh_pages(struct mem *m, const uint64_t *pages, size_t n)
{
    mem_cache_reset(m);
    if (m->cache && !m->vm_broken && n)
        prefetch(m, pages, n < MEM_PREFETCH ? n : MEM_PREFETCH);
}

/* Notes that this tick used the page at base (held in slot pg). */
static void mark_used(struct mem *m, struct mem_page *pg, uint64_t base)
{
    if (pg->used_addr == base && pg->used_tick == m->tick)
        return;
    pg->used_addr = base;
    pg->used_tick = m->tick;
    if (m->nused < MEM_PREFETCH)
        m->used[m->nused++] = base;
}

void mem_close(struct mem *m)
{
    free(m->cache);
    m->cache = NULL;
    if (m->memfd >= 0)
        close(m->memfd);
    m->memfd = -1;
}

static double rng_unit(struct mem *m)
{
    /* xorshift64* */
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return (double)((m->rng * 0x2545F4914F6CDD1DULL) >> 11) / (double)(1ULL << 53);
}

/* Applies the injected faults to a successful read; returns its new result. */
static int inject(struct mem *m, void *buf, size_t len)
{
    if (m->faults.fail > 0 && rng_unit(m) < m->faults.fail)
        return -EFAULT;
    if (m->faults.truncate > 0 && rng_unit(m) < m->faults.truncate)
        return -EFAULT;
    if (m->faults.corrupt > 0 && len && rng_unit(m) < m->faults.corrupt) {
        unsigned char *b = buf;
        for (size_t i = 0; i < len; i++)
            b[i] ^= (unsigned char)(rng_unit(m) * 256.0);
    }
    return 0;
}

static int open_memfd(struct mem *m)
{
    if (m->memfd >= 0)
        return 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/mem", (int)m->pid);
    m->memfd = open(path, O_RDONLY | O_CLOEXEC);
    return m->memfd >= 0 ? 0 : -errno;
}

static int read_memfd(struct mem *m, uint64_t addr, void *buf, size_t len)
{
    if (open_memfd(m) < 0)
        return -EFAULT;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(m->memfd, (char *)buf + got, len - got, (off_t)(addr + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 && errno == ESRCH ? -ESRCH : -EFAULT;
        got += (size_t)r;
    }
    return 0;
}

static int read_raw(struct mem *m, uint64_t addr, void *buf, size_t len);

/* How many pages below a missed one are read along with it: a frame chain
 * walked through `previous` goes down the 3.11+ data stack, so the next
 * frames are usually just below (costs a copy, saves system calls). */
#define MEM_READ_AROUND 3

/* The cached page holding addr, reading it when needed; NULL if unreadable. */
static const struct mem_page *page_get(struct mem *m, uint64_t addr, size_t around)
{
    uint64_t base = addr & ~(uint64_t)(MEM_PAGE - 1);
    struct mem_page *pg = &m->cache[(base / MEM_PAGE) & (MEM_CACHE_PAGES - 1)];
    if (pg->gen == m->gen && pg->addr == base) {
        mark_used(m, pg, base);
        return pg;
    }
    m->page_reads++;
    m->calls++;
    if (m->vm_broken) {
        if (read_raw(m, base, pg->data, MEM_PAGE) < 0) {
            pg->gen = 0;
            return NULL;
        }
        pg->addr = base;
        pg->gen = m->gen;
        mark_used(m, pg, base);
        return pg;
    }
    /* The page and the ones below it, in one call; the transfer stops at the
     * first unreadable page, so the missed page comes first. */
    struct iovec local[MEM_READ_AROUND + 1], remote[MEM_READ_AROUND + 1];
    struct mem_page *slots[MEM_READ_AROUND + 1];
    if (around > MEM_READ_AROUND)
        around = MEM_READ_AROUND;
    size_t k = 0;
    for (size_t i = 0; i <= around && base >= i * MEM_PAGE + MEM_PAGE; i++) {
        uint64_t a = base - i * MEM_PAGE;
        struct mem_page *s = &m->cache[(a / MEM_PAGE) & (MEM_CACHE_PAGES - 1)];
        if (i > 0 && s->gen == m->gen)
            break;   /* already here (this tick) */
        slots[k] = s;
        local[k].iov_base = s->data;
        local[k].iov_len = MEM_PAGE;
        remote[k].iov_base = (void *)(uintptr_t)a;
        remote[k].iov_len = MEM_PAGE;
        s->gen = 0;
        s->addr = a;
        k++;
    }
    ssize_t got = process_vm_readv(m->pid, local, k, remote, k, 0);
    if (got < (ssize_t)MEM_PAGE) {
        if (got < 0 && (errno == ENOSYS || errno == EPERM))
            m->vm_broken = 1;
        return NULL;
    }
    for (size_t i = 0; i < k && (ssize_t)((i + 1) * MEM_PAGE) <= got; i++)
        slots[i]->gen = m->gen;
    mark_used(m, pg, base);
    return pg;
}

static int read_cached(struct mem *m, uint64_t addr, void *buf, size_t len, size_t around)
{
    unsigned char *out = buf;
    while (len) {
        const struct mem_page *pg = page_get(m, addr, around);
        if (!pg)
            return read_raw(m, addr, out, len);   /* e.g. the last bytes of a mapping */
        size_t off = (size_t)(addr - pg->addr), n = MEM_PAGE - off;
        if (n > len)
            n = len;
        memcpy(out, pg->data + off, n);
        out += n;
        addr += n;
        len -= n;
    }
    return 0;
}

static int read_counted(struct mem *m, uint64_t addr, void *buf, size_t len, size_t around)
{
    m->reads++;
    if (len == 0)
        return 0;
    int rc;
    if (addr == 0 || addr + len < addr || addr >= (1ULL << 47))
        rc = -EFAULT;
    else if (m->cache && len <= 2 * MEM_PAGE)
        rc = read_cached(m, addr, buf, len, around);
    else
        rc = read_raw(m, addr, buf, len);
    if (rc == 0 && (m->faults.fail > 0 || m->faults.corrupt > 0 || m->faults.truncate > 0))
        rc = inject(m, buf, len);
    if (rc < 0)
        m->failures++;
    else
        m->bytes += len;
    return rc;
}

int mem_read(struct mem *m, uint64_t addr, void *buf, size_t len)
{
    return read_counted(m, addr, buf, len, 0);
}

int mem_read_stack(struct mem *m, uint64_t addr, void *buf, size_t len)
{
    return read_counted(m, addr, buf, len, MEM_READ_AROUND);
}

/* One read from the target, uncached, uncounted. */
static int read_raw(struct mem *m, uint64_t addr, void *buf, size_t len)
{
    int rc;
    m->calls++;
    if (!m->vm_broken) {
        struct iovec local = { buf, len };
        struct iovec remote = { (void *)(uintptr_t)addr, len };
        ssize_t r = process_vm_readv(m->pid, &local, 1, &remote, 1, 0);
        if (r == (ssize_t)len) {
            rc = 0;
        } else if (r < 0 && (errno == ENOSYS || errno == EPERM)) {
            m->vm_broken = 1;
            rc = read_memfd(m, addr, buf, len);
        } else {
            rc = r < 0 && errno == ESRCH ? -ESRCH : -EFAULT;
        }
    } else {
        rc = read_memfd(m, addr, buf, len);
    }
    return rc;
}

int mem_read_u64(struct mem *m, uint64_t addr, uint64_t *out)
{
    return mem_read(m, addr, out, sizeof(*out));
}

int mem_read_i32(struct mem *m, uint64_t addr, int32_t *out)
{
    return mem_read(m, addr, out, sizeof(*out));
}

int mem_readv(struct mem *m, const struct mem_req *reqs, size_t n)
{
    if (m->vm_broken || m->faults.fail > 0 || m->faults.corrupt > 0 || m->faults.truncate > 0) {
        for (size_t i = 0; i < n; i++)
            if (mem_read(m, reqs[i].addr, reqs[i].buf, reqs[i].len) < 0)
                return -EFAULT;
        return 0;
    }
    for (size_t i = 0; i < n;) {
        struct iovec local[MEM_MAX_IOV], remote[MEM_MAX_IOV];
        size_t k = 0, total = 0;
        for (; k < MEM_MAX_IOV && i + k < n; k++) {
            const struct mem_req *r = &reqs[i + k];
            if (r->addr == 0 || r->addr >= (1ULL << 47))
                return -EFAULT;
            local[k].iov_base = r->buf;
            local[k].iov_len = r->len;
            remote[k].iov_base = (void *)(uintptr_t)r->addr;
            remote[k].iov_len = r->len;
            total += r->len;
        }
        m->reads += k;
        m->calls++;
        ssize_t got = process_vm_readv(m->pid, local, k, remote, k, 0);
        if (got != (ssize_t)total) {
            m->failures++;
            return -EFAULT;
        }
        m->bytes += total;
        i += k;
    }
    return 0;
}

int mem_faults_from_env(struct mem *m)
{
    const char *s = getenv("PYFLAME_TEST_FAULTS");
    if (!s || !*s)
        return 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy)
        return 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq++ = '\0';
        if (strcmp(tok, "fail") == 0)
            m->faults.fail = atof(eq);
        else if (strcmp(tok, "corrupt") == 0)
            m->faults.corrupt = atof(eq);
        else if (strcmp(tok, "truncate") == 0)
            m->faults.truncate = atof(eq);
        else if (strcmp(tok, "seed") == 0)
            m->faults.seed = strtoull(eq, NULL, 10);
    }
    free(copy);
    if (m->faults.seed)
        m->rng = m->faults.seed * 0x9e3779b97f4a7c15ULL + 1;
    return m->faults.fail > 0 || m->faults.corrupt > 0 || m->faults.truncate > 0;
}
