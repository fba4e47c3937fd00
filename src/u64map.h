/*
 * u64map.h - a small open-addressing hash map from a 64-bit key to a
 * uint32_t value, for the writers that need to index things by id or hash.
 * Zero-initialise a struct u64map to start; u64map_free releases it.
 */
#ifndef PYFLAME_U64MAP_H
#define PYFLAME_U64MAP_H

#include <stddef.h>
#include <stdint.h>

#define U64MAP_NONE UINT32_MAX   /* "no value"; cannot be stored */

struct u64map {
    uint64_t *keys;
    uint32_t *vals;     /* U64MAP_NONE = empty slot */
    size_t cap, used;
};

/* The value for key, or U64MAP_NONE. */
uint32_t u64map_get(const struct u64map *m, uint64_t key);
/* Sets key to val (not U64MAP_NONE).  0 or -ENOMEM. */
int u64map_put(struct u64map *m, uint64_t key, uint32_t val);
void u64map_free(struct u64map *m);
/* A good 64-bit mixing function (for making keys out of several numbers). */
uint64_t u64map_mix(uint64_t x);

#endif
