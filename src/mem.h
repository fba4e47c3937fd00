/*
 * mem.h - the one door to the target's memory.  Every remote read goes
 * through here: process_vm_readv first, /proc/PID/mem as the fallback.
 * Reads are counted, and a test-only fault injector can fail, truncate or
 * corrupt a chosen share of them (PYFLAME_TEST_FAULTS, see mem_faults_from_env).
 */
#ifndef PYFLAME_MEM_H
#define PYFLAME_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mem_faults {
    double fail;       /* share of reads that fail with -EFAULT */
    double corrupt;    /* share of reads whose bytes are scrambled */
    double truncate;   /* share of reads that come back short (-EFAULT) */
    uint64_t seed;
};

#define MEM_PAGE        4096
#define MEM_CACHE_PAGES 128
#define MEM_PREFETCH    64     /* pages of the last tick read ahead, at most */

/* One page of the target, as read during the current tick. */
struct mem_page {
    uint64_t addr;
    uint32_t gen;
    uint32_t used_tick;        /* the tick in which used_addr was last used */
    uint64_t used_addr;
    unsigned char data[MEM_PAGE];
};

struct mem {
    pid_t pid;
    int memfd;             /* /proc/PID/mem, opened on first need, or -1 */
    int vm_broken;         /* process_vm_readv is not usable: use memfd */
    uint64_t reads, bytes, failures;
    struct mem_faults faults;
    uint64_t rng;
    struct mem_page *cache;    /* page cache, valid for one tick (see mem_cache_reset) */
    uint32_t gen;
    uint32_t tick;
    uint64_t used[MEM_PREFETCH];   /* the pages this tick used, in order of first use */
    size_t nused;
    uint64_t page_reads;       /* pages read on demand */
    uint64_t calls;            /* system calls that read memory */
    uint64_t prefetched;       /* pages read ahead (mem_tick_begin) */
};

void mem_init(struct mem *m, pid_t pid);
void mem_close(struct mem *m);

/* Page caching: while enabled, small reads are served from whole pages read
 * once per generation.  Only correct while the memory does not change, i.e.
 * while the target is stopped, or for one read of one stack.  A new
 * generation (mem_cache_reset) forgets everything. */
int mem_cache_enable(struct mem *m);
void mem_cache_reset(struct mem *m);

/* Starts a tick (a new generation): the pages the last tick used are read
 * again, all in one system call, on the guess that the stacks are where they
 * were.  A page that is not used costs a copy; a page that is not there any
 * more is read on demand.  Call it once the target is stopped (or, when
 * non-blocking, right before reading). */
void mem_tick_begin(struct mem *m);

/* A new generation that starts with the pages listed, read in one system
 * call: for checking, right after a read of a running target, that what was
 * read is still there. */
void mem_refresh_pages(struct mem *m, const uint64_t *pages, size_t n);

/* Reads exactly len bytes at addr.  0, or -EFAULT (any failure, incl. a
 * short read), or -ESRCH when the process is gone. */
int mem_read(struct mem *m, uint64_t addr, void *buf, size_t len);

/* The same for a frame of a 3.11+ data stack: on a page miss the pages just
 * below are read in the same call, since walking `previous` goes down the
 * stack.  Only useful with the page cache on. */
int mem_read_stack(struct mem *m, uint64_t addr, void *buf, size_t len);

/* Typed helpers. */
int mem_read_u64(struct mem *m, uint64_t addr, uint64_t *out);
int mem_read_i32(struct mem *m, uint64_t addr, int32_t *out);

/* One batch of reads in a single system call where possible: each entry is
 * (addr, buf, len).  Returns 0 when all succeeded, else -EFAULT. */
struct mem_req { uint64_t addr; void *buf; size_t len; };
int mem_readv(struct mem *m, const struct mem_req *reqs, size_t n);

/* Parses PYFLAME_TEST_FAULTS="fail=0.1,corrupt=0.05,truncate=0.05,seed=7"
 * into m->faults.  Returns 1 if faults were enabled. */
int mem_faults_from_env(struct mem *m);

#endif
