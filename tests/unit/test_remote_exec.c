/*
 * test_remote_exec.c - the parts of the PEP 768 path (src/remote_exec.c,
 * src/inject.c) that can be checked without a CPython 3.14: the mirror of
 * 3.14's _Py_DebugOffsets, the script sent to the target, and the refusals
 * on processes that are not 3.14.  (test_perf runs the whole path against
 * every 3.14+ interpreter present; without one it says so.)
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/inject.h"
#include "src/remote_exec.h"

/* Counted from CPython 3.14's Include/internal/pycore_debug_offsets.h: an
 * 8-byte cookie, version and free_threaded, then groups of uint64_t of
 * 3 (runtime), 16 (interpreter), 9 (thread), 8 (frame), 11 (code), 2, 4, 3,
 * 3, 4, 3, 2, 3, 3, 4, 2, 4, 2 and the 6 of debugger_support. */
START_TEST(test_layout)
{
    ck_assert_uint_eq(rexec_layout_offset("interpreter_state"), 8 + 2 * 8 + 3 * 8);
    ck_assert_uint_eq(rexec_layout_offset("thread_state"), 48 + 16 * 8);
    ck_assert_uint_eq(rexec_layout_offset("debugger_support"), 8 + 8 * 88);
    ck_assert_uint_eq(rexec_layout_offset("size"), 8 + 8 * 94);
    ck_assert_uint_eq(rexec_layout_offset("nonsense"), (size_t)-1);
}
END_TEST

START_TEST(test_script)
{
    char buf[4096];
    ck_assert_int_eq(inject_remote_script(1, "/tmp/pyflame-perf-1-ab.out", buf, sizeof(buf)), 0);
    ck_assert_ptr_nonnull(strstr(buf, "sys.activate_stack_trampoline('perf')"));
    ck_assert_ptr_nonnull(strstr(buf, "with open('/tmp/pyflame-perf-1-ab.out', 'w') as f:\n"));
    ck_assert_ptr_nonnull(strstr(buf, "    f.write('%d\\n' % r)\n"));
    ck_assert_ptr_null(strstr(buf, "__RESULT__"));
    ck_assert_int_eq(inject_remote_script(0, "/tmp/x.out", buf, sizeof(buf)), 0);
    ck_assert_ptr_nonnull(strstr(buf, "sys.deactivate_stack_trampoline()"));
    /* a path that would need quoting is refused, a short buffer too */
    ck_assert_int_eq(inject_remote_script(1, "/tmp/a'b.out", buf, sizeof(buf)), -EINVAL);
    ck_assert_int_eq(inject_remote_script(1, "/tmp/a\nb", buf, sizeof(buf)), -EINVAL);
    ck_assert_int_eq(inject_remote_script(1, "/tmp/x.out", buf, 64), -ENOSPC);
}
END_TEST

/* This process is no Python: rexec_prepare must say so, not crash. */
START_TEST(test_not_python)
{
    struct rexec_target rt;
    struct error e = { 0, "" };
    static const char junk[64] = "not the debug offsets";
    int rc = rexec_prepare(getpid(), (uint64_t)(uintptr_t)junk, &rt, &e);
    ck_assert_int_eq(rc, INJECT_E_FAILED);
    ck_assert_ptr_nonnull(strstr(e.msg, "xdebugpy"));
    rc = rexec_prepare(getpid(), 0, &rt, &e);
    ck_assert_int_eq(rc, INJECT_E_NO_SYMBOLS);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("remote_exec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_script);
    tcase_add_test(tc, test_not_python);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
