/* u64map.c - see u64map.h. */
#include "u64map.h"

#include <errno.h>
#include <stdlib.h>


uint64_t u64map_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint32_t u64map_get(const struct u64map *m, uint64_t key)
{
    if (!m->cap)
        return U64MAP_NONE;
    size_t j = u64map_mix(key) & (m->cap - 1);
    while (m->vals[j] != U64MAP_NONE) {
        if (m->keys[j] == key)
            return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return U64MAP_NONE;
}

int u64map_put(struct u64map *m, uint64_t key, uint32_t val)
{
    if ((m->used + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 256;
        uint64_t *nk = malloc(ncap * sizeof(*nk));
        uint32_t *nv = malloc(ncap * sizeof(*nv));
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return -ENOMEM;
        }
        for (size_t i = 0; i < ncap; i++)
            nv[i] = U64MAP_NONE;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->vals[i] == U64MAP_NONE)
                continue;
            size_t j = u64map_mix(m->keys[i]) & (ncap - 1);
            while (nv[j] != U64MAP_NONE)
                j = (j + 1) & (ncap - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = ncap;
    }
    size_t j = u64map_mix(key) & (m->cap - 1);
    while (m->vals[j] != U64MAP_NONE) {
        if (m->keys[j] == key) {
            m->vals[j] = val;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key;
    m->vals[j] = val;
    m->used++;
    return 0;
}

void u64map_free(struct u64map *m)
{
    free(m->keys);
    free(m->vals);
}
