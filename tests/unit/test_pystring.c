/*
 * test_pystring.c - abi/pystring.c: PEP 393 UCS1/UCS2/UCS4 -> UTF-8.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "abi/pystring.h"

#define FFFD "\xEF\xBF\xBD"

/* Convert from an exactly-sized, deliberately misaligned heap copy. */
static size_t conv(int kind, const void *chars, size_t nchars, char *out, size_t outcap)
{
    size_t bytes = nchars * (size_t)kind;
    unsigned char *block = malloc(bytes + 1);
    ck_assert_ptr_nonnull(block);
    memcpy(block + 1, chars, bytes);
    size_t n = pystring_ucs_to_utf8(kind, block + 1, nchars, out, outcap);
    free(block);
    return n;
}

static void expect(int kind, const void *chars, size_t nchars, const char *want, size_t wantlen)
{
    char out[64];
    memset(out, 'X', sizeof out);
    size_t n = conv(kind, chars, nchars, out, sizeof out);
    ck_assert_uint_eq(n, wantlen);
    ck_assert_int_eq(memcmp(out, want, wantlen), 0);
    ck_assert_int_eq(out[n], '\0');
}

START_TEST(test_ucs1)
{
    static const uint8_t s[] = {'a', 'b', 0x7F, 0x80, 0xE9, 0xFF};
    expect(1, s, sizeof s, "ab\x7F\xC2\x80\xC3\xA9\xC3\xBF", 9);
    expect(1, s, 0, "", 0);
    static const uint8_t nul[] = {'a', 0, 'b'};
    expect(1, nul, 3, "a\0b", 3);
}
END_TEST

START_TEST(test_ucs2)
{
    static const uint16_t s[] = {'A', 0x7FF, 0x800, 0x20AC, 0xFFFF, 0xD7FF, 0xE000};
    expect(2, s, 7, "A\xDF\xBF\xE0\xA0\x80\xE2\x82\xAC\xEF\xBF\xBF\xED\x9F\xBF\xEE\x80\x80", 18);
    /* lone surrogates, and a "pair": PEP 393 never pairs them, each is U+FFFD */
    static const uint16_t sur[] = {0xD800, 'x', 0xDFFF, 0xD83D, 0xDE00};
    expect(2, sur, 5, FFFD "x" FFFD FFFD FFFD, 13);
}
END_TEST

START_TEST(test_ucs4)
{
    static const uint32_t s[] = {0x1F600, 0x10000, 0x10FFFF, 'z'};
    expect(4, s, 4, "\xF0\x9F\x98\x80\xF0\x90\x80\x80\xF4\x8F\xBF\xBF" "z", 13);
    static const uint32_t bad[] = {0x110000, 0xD800, 0xDBFF, 0xFFFFFFFFu, 0x80000000u, 'q'};
    expect(4, bad, 6, FFFD FFFD FFFD FFFD FFFD "q", 16);
}
END_TEST

/* Decode one UTF-8 sequence (test side), returning its length. */
static size_t dec(const unsigned char *p, uint32_t *cp)
{
    if (p[0] < 0x80) { *cp = p[0]; return 1; }
    if ((p[0] & 0xE0) == 0xC0) { *cp = (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F); return 2; }
    if ((p[0] & 0xF0) == 0xE0) {
        *cp = (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        return 3;
    }
    *cp = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
          (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    return 4;
}

START_TEST(test_all_code_points)
{
    /* Every code point through UCS4 (and the BMP through UCS2) round-trips,
     * with the shortest encoding, or becomes U+FFFD. */
    for (uint32_t cp = 0; cp <= 0x110010; cp++) {
        char out[8];
        size_t n = pystring_ucs_to_utf8(4, &cp, 1, out, sizeof out);
        int valid = cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        uint32_t want = valid ? cp : 0xFFFD;
        size_t wantlen = want < 0x80 ? 1 : want < 0x800 ? 2 : want < 0x10000 ? 3 : 4;
        ck_assert_uint_eq(n, wantlen);
        uint32_t back;
        ck_assert_uint_eq(dec((const unsigned char *)out, &back), wantlen);
        ck_assert_uint_eq(back, want);
        if (cp <= 0xFFFF) {
            uint16_t u = (uint16_t)cp;
            char out2[8];
            ck_assert_uint_eq(pystring_ucs_to_utf8(2, &u, 1, out2, sizeof out2), n);
            ck_assert_int_eq(memcmp(out, out2, n + 1), 0);
        }
    }
}
END_TEST

START_TEST(test_truncation)
{
    /* "a" U+20AC "b" U+1F600: 1 + 3 + 1 + 4 bytes */
    static const uint32_t s[] = {'a', 0x20AC, 'b', 0x1F600};
    static const size_t want_n[] = {0, 0, 1, 1, 1, 4, 5, 5, 5, 5, 9, 9};
    for (size_t cap = 0; cap < sizeof want_n / sizeof want_n[0]; cap++) {
        char *out = malloc(cap ? cap : 1);
        ck_assert_ptr_nonnull(out);
        out[0] = 'X';
        size_t n = conv(4, s, 4, out, cap);
        ck_assert_msg(n == want_n[cap], "outcap %zu: wrote %zu, want %zu", cap, n, want_n[cap]);
        if (cap == 0) {
            ck_assert_int_eq(out[0], 'X');          /* nothing written at all */
        } else {
            ck_assert_int_eq(out[n], '\0');
            ck_assert_int_eq(memcmp(out, "a\xE2\x82\xAC" "b\xF0\x9F\x98\x80", n), 0);
        }
        free(out);
    }
    /* the same through UCS2 and UCS1 */
    static const uint16_t s2[] = {0x20AC, 0x20AC};
    char o[6];
    ck_assert_uint_eq(conv(2, s2, 2, o, 6), 3);
    ck_assert_str_eq(o, "\xE2\x82\xAC");
    static const uint8_t s1[] = {0xE9, 'x'};
    ck_assert_uint_eq(conv(1, s1, 2, o, 2), 0);
    ck_assert_str_eq(o, "");
    ck_assert_uint_eq(conv(1, s1, 2, o, 3), 2);
    ck_assert_str_eq(o, "\xC3\xA9");
}
END_TEST

START_TEST(test_bad_args)
{
    char out[8] = "XXXXXXX";
    static const uint8_t s[] = {'a', 'b', 'c', 'd'};
    ck_assert_uint_eq(pystring_ucs_to_utf8(3, s, 1, out, sizeof out), 0);
    ck_assert_str_eq(out, "");
    memcpy(out, "XXXXXXX", 8);
    ck_assert_uint_eq(pystring_ucs_to_utf8(0, s, 1, out, sizeof out), 0);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(pystring_ucs_to_utf8(-4, s, 1, out, sizeof out), 0);
    ck_assert_uint_eq(pystring_ucs_to_utf8(1, NULL, 5, out, sizeof out), 0);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(pystring_ucs_to_utf8(1, s, 4, NULL, 10), 0);
    ck_assert_uint_eq(pystring_ucs_to_utf8(1, NULL, 0, out, 1), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pystring");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ucs1);
    tcase_add_test(tc, test_ucs2);
    tcase_add_test(tc, test_ucs4);
    tcase_add_test(tc, test_all_code_points);
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
