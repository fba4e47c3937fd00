/*
 * test_core.c - unit tests of the core's pure parts: option parsing, version
 * recognition, the profile, the collapsed / flamechart / dump writers, the
 * atomic file writer, and ELF lookups (on this test program itself).
 */
#include <check.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elffile.h"
#include "emit.h"
#include "options.h"
#include "proc.h"
#include "profile.h"
#include "pyversion.h"

/* ---- options ---------------------------------------------------------------- */

static int parse(struct options *o, struct error *e, ...)
{
    static char *argv[32];   /* options keep pointers into argv */
    int argc = 0;
    va_list ap;
    va_start(ap, e);
    argv[argc++] = "pyflame";
    char *a;
    while ((a = va_arg(ap, char *)) != NULL)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    memset(e, 0, sizeof(*e));
    return options_parse(argc, argv, o, e);
}

START_TEST(test_options_defaults)
{
    struct options o;
    struct error e;
    ck_assert_int_eq(parse(&o, &e, "-p", "42", NULL), 0);
    ck_assert_int_eq(o.npids, 1);
    ck_assert_int_eq(o.pids[0], 42);
    ck_assert(o.seconds == 1.0);
    ck_assert(o.rate == 0.01);
    ck_assert_int_eq(o.format, FORMAT_COLLAPSED);
    ck_assert_ptr_null(o.output);
    ck_assert_int_eq(o.deprecated_pid, 0);
}
END_TEST

START_TEST(test_options_values)
{
    struct options o;
    struct error e;
    ck_assert_int_eq(parse(&o, &e, "-s", "2.5", "-r", "0.001", "-x", "-n", "--threads", "-p", "7", NULL), 0);
    ck_assert(o.seconds == 2.5);
    ck_assert(o.rate == 0.001);
    ck_assert(o.exclude_idle && o.no_line_numbers && o.threads);
    ck_assert_int_eq(parse(&o, &e, "--seconds=-1", "--pid=9", NULL), 0);
    ck_assert(o.seconds < 0);
    /* abbreviated long options, permuted operands */
    ck_assert_int_eq(parse(&o, &e, "--thr", "123", NULL), 0);
    ck_assert(o.threads);
    ck_assert_int_eq(o.pids[0], 123);
    ck_assert_int_eq(o.deprecated_pid, 1);
    /* several -p */
    ck_assert_int_eq(parse(&o, &e, "-p", "1", "-p", "2", NULL), 0);
    ck_assert_int_eq(o.npids, 2);
}
END_TEST

START_TEST(test_options_errors)
{
    struct options o;
    struct error e;
    ck_assert_int_lt(parse(&o, &e, "-p", "abc", NULL), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "failed to parse \"abc\" as a PID"));
    ck_assert_int_lt(parse(&o, &e, "-p", "0", NULL), 0);
    ck_assert_int_lt(parse(&o, &e, "-p", "-1", NULL), 0);
    ck_assert_int_lt(parse(&o, &e, "-p", "99999999999", NULL), 0);
    ck_assert_int_lt(parse(&o, &e, "-p", "12abc", NULL), 0);
    ck_assert_int_lt(parse(&o, &e, "-s", "abc", "-p", "1", NULL), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "failed to parse"));
    ck_assert_int_lt(parse(&o, &e, "-r", "x", "-p", "1", NULL), 0);
    ck_assert_int_lt(parse(&o, &e, "--abi=37x", "-p", "1", NULL), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "Unknown or unsupported ABI"));
    ck_assert_int_lt(parse(&o, &e, "--bogus", "-p", "1", NULL), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "unrecognized option"));
    ck_assert_int_lt(parse(&o, &e, "-L", "-p", "1", NULL), 0);
    ck_assert_int_lt(parse(&o, &e, "-p", NULL), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "requires an argument"));
    ck_assert_int_lt(parse(&o, &e, NULL), 0);          /* usage */
    ck_assert_str_eq(e.msg, "");
    ck_assert_int_lt(parse(&o, &e, "1", "2", NULL), 0);
    ck_assert_int_lt(parse(&o, &e, "-p", "1", "-t", "python3", NULL), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "mutually compatible"));
    ck_assert_int_lt(parse(&o, &e, "-d", "-t", "python3", NULL), 0);
    ck_assert_int_lt(parse(&o, &e, "-t", NULL), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "requires a command"));
    ck_assert_int_lt(parse(&o, &e, "-t", "/usr/bin/pyflame", NULL), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "naughty"));
    ck_assert_int_lt(parse(&o, &e, "-f", "xml", "-p", "1", NULL), 0);
    ck_assert_int_lt(parse(&o, &e, "--flamechart", "-f", "svg", "-p", "1", NULL), 0);
}
END_TEST

START_TEST(test_options_trace_and_formats)
{
    struct options o;
    struct error e;
    ck_assert_int_eq(parse(&o, &e, "-x", "-t", "python3", "-x", "app.py", NULL), 0);
    ck_assert_ptr_nonnull(o.command);
    ck_assert_str_eq(o.command[0], "python3");
    ck_assert_str_eq(o.command[1], "-x");     /* everything after -t is the command */
    ck_assert(o.seconds < 0);
    ck_assert_int_eq(parse(&o, &e, "-o", "out.svg", "-p", "1", NULL), 0);
    ck_assert_int_eq(o.format, FORMAT_SVG);
    ck_assert_int_eq(parse(&o, &e, "-o", "x.pb.gz", "-p", "1", NULL), 0);
    ck_assert_int_eq(o.format, FORMAT_PPROF);
    ck_assert_int_eq(parse(&o, &e, "-o", "x.speedscope.json", "-p", "1", NULL), 0);
    ck_assert_int_eq(o.format, FORMAT_SPEEDSCOPE);
    ck_assert_int_eq(parse(&o, &e, "-o", "x.json", "-p", "1", NULL), 0);
    ck_assert_int_eq(o.format, FORMAT_CHROME);
    ck_assert_int_eq(parse(&o, &e, "-f", "collapsed", "-o", "x.svg", "-p", "1", NULL), 0);
    ck_assert_int_eq(o.format, FORMAT_COLLAPSED);
    ck_assert_int_eq(parse(&o, &e, "-d", "-p", "1", NULL), 0);
    ck_assert_int_eq(o.format, FORMAT_DUMP);
    ck_assert(o.threads && o.seconds == 0);
    ck_assert_int_eq(parse(&o, &e, "--per-thread", "-p", "1", NULL), 0);
    ck_assert(o.threads);
    ck_assert_int_eq(parse(&o, &e, "--abi=26", "-p", "1", NULL), 0);
    ck_assert_str_eq(o.abi, "27");
    ck_assert_int_eq(parse(&o, &e, "--abi", "3.12", "-p", "1", NULL), 0);
    ck_assert_str_eq(o.abi, "312");
    ck_assert_int_eq(parse(&o, &e, "-h", "--bogus", NULL), 0);
    ck_assert_int_eq(o.action, ACTION_HELP);
}
END_TEST

/* ---- versions ------------------------------------------------------------- */

START_TEST(test_pyversion)
{
    struct pyversion v;
    ck_assert_int_eq(pyversion_from_hex(0x030c01f0, &v), 0);
    ck_assert(v.major == 3 && v.minor == 12 && v.micro == 1);
    ck_assert_int_lt(pyversion_from_hex(0x050c01f0, &v), 0);
    ck_assert_int_eq(pyversion_from_soname("libpython3.6m.so.1.0", &v), 0);
    ck_assert(v.major == 3 && v.minor == 6 && v.micro == -1);
    ck_assert_int_eq(pyversion_from_soname("libpython2.7.so.1.0", &v), 0);
    ck_assert(v.major == 2 && v.minor == 7);
    ck_assert_int_eq(pyversion_from_soname("libpython3.13t.so.1.0", &v), 0);
    ck_assert_int_eq(v.minor, 13);
    ck_assert_int_lt(pyversion_from_soname("libc.so.6", &v), 0);
    ck_assert_int_lt(pyversion_from_soname(NULL, &v), 0);
    ck_assert_int_eq(pyversion_from_string("3.8.18", &v), 0);
    ck_assert(v.micro == 18);
    ck_assert_int_eq(pyversion_from_string("3.13.0rc1", &v), 0);
    ck_assert_int_lt(pyversion_from_string("3.8", &v), 0);
    ck_assert_int_lt(pyversion_from_string("1.2.3", &v), 0);
    ck_assert_int_lt(pyversion_from_string("3.8.1 (default)", &v), 0);
    char buf[32];
    v.major = 3, v.minor = 12, v.micro = -1;
    pyversion_format(&v, buf, sizeof(buf));
    ck_assert_str_eq(buf, "3.12");
}
END_TEST

/* ---- profile and writers ---------------------------------------------------- */

static uint32_t frame(struct profile *p, const char *file, const char *name, int line)
{
    struct pf_frame f = { profile_string(p, file, strlen(file)), profile_string(p, name, strlen(name)),
                          PF_NONE, line, 1 };
    return profile_frame(p, &f);
}

/* Writes the profile with the writer to a string (malloc'ed). */
static char *render(int (*fn)(FILE *, const struct profile *, const struct emit_options *),
                    const struct profile *p, const struct emit_options *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fn(f, p, o), 0);
    fclose(f);
    return buf;
}

static struct profile *sample_profile(int events)
{
    struct profile *p = profile_new(events);
    uint32_t proc = profile_process(p, 100, "python3 app.py");
    uint32_t t1 = profile_thread(p, proc, 100, 111, "main");
    uint32_t t2 = profile_thread(p, proc, 101, 222, "worker");
    uint32_t a = frame(p, "app.py", "<module>", 10);
    uint32_t b = frame(p, "app.py", "work", 20);
    uint32_t b2 = frame(p, "app.py", "work", 21);
    uint32_t s1[] = { a, b }, s2[] = { a, b2 };
    uint32_t st1 = profile_stack(p, s1, 2), st2 = profile_stack(p, s2, 2);
    ck_assert_int_eq(profile_stack(p, s1, 2), st1);   /* interned */
    for (int i = 0; i < 3; i++)
        profile_add(p, t1, st1, SAMPLE_STACK, 1, 1000000000ULL * (uint64_t)(i + 1), (uint32_t)i);
    profile_add(p, t2, st2, SAMPLE_STACK, 0, 1000000000ULL, 0);
    profile_add(p, t1, PF_NONE, SAMPLE_IDLE, 0, 4000000000ULL, 3);
    profile_add(p, t1, PF_NONE, SAMPLE_IDLE, 0, 5000000000ULL, 4);
    profile_add(p, t1, PF_NONE, SAMPLE_FAILED, 0, 6000000000ULL, 5);
    return p;
}

START_TEST(test_collapsed)
{
    struct profile *p = sample_profile(0);
    struct emit_options o;
    memset(&o, 0, sizeof(o));
    char *s = render(emit_collapsed, p, &o);
    ck_assert_str_eq(s, "(idle) 2\n(failed) 1\n"
                        "app.py:<module>:10;app.py:work:20 3\n"
                        "app.py:<module>:10;app.py:work:21 1\n");
    free(s);
    o.exclude_idle = 1;
    o.no_line_numbers = 1;
    s = render(emit_collapsed, p, &o);
    ck_assert_str_eq(s, "(failed) 1\napp.py:<module>;app.py:work 4\n");   /* -n merges */
    free(s);
    o.exclude_idle = 0;
    o.no_line_numbers = 0;
    o.per_thread = 1;
    s = render(emit_collapsed, p, &o);
    ck_assert_ptr_nonnull(strstr(s, "thread main (100);app.py:<module>:10;app.py:work:20 3\n"));
    ck_assert_ptr_nonnull(strstr(s, "thread worker (101);app.py:<module>:10;app.py:work:21 1\n"));
    free(s);
    o.per_thread = 0;
    o.per_process = 1;
    s = render(emit_collapsed, p, &o);
    ck_assert_ptr_nonnull(strstr(s, "process 100 python3 app.py;app.py:<module>:10;app.py:work:20 3\n"));
    free(s);
    ck_assert_int_eq(profile_total(p, SAMPLE_STACK), 4);
    profile_free(p);
}
END_TEST

START_TEST(test_collapsed_empty_and_hostile)
{
    struct profile *p = profile_new(0);
    struct emit_options o;
    memset(&o, 0, sizeof(o));
    char *s = render(emit_collapsed, p, &o);
    ck_assert_str_eq(s, "");   /* no samples: empty output */
    free(s);
    uint32_t proc = profile_process(p, 1, "x");
    uint32_t t = profile_thread(p, proc, 1, 1, NULL);
    uint32_t f = frame(p, "we;ird\nfile.py", "na\tme", 3);
    uint32_t st = profile_stack(p, &f, 1);
    profile_add(p, t, st, SAMPLE_STACK, 1, 0, 0);
    s = render(emit_collapsed, p, &o);
    ck_assert_str_eq(s, "we?ird?file.py:na?me:3 1\n");
    free(s);
    profile_free(p);
}
END_TEST

START_TEST(test_flamechart_and_dump)
{
    struct profile *p = sample_profile(1);
    struct emit_options o;
    memset(&o, 0, sizeof(o));
    char *s = render(emit_flamechart, p, &o);
    ck_assert(strncmp(s, "1000000\napp.py:<module>:10;app.py:work:20;\n", 43) == 0);
    ck_assert_ptr_nonnull(strstr(s, "4000000\n(idle)\n"));
    ck_assert_ptr_nonnull(strstr(s, "6000000\n(failed)\n"));
    free(s);
    o.exclude_idle = 1;
    s = render(emit_flamechart, p, &o);
    ck_assert_ptr_null(strstr(s, "(idle)"));
    free(s);
    o.exclude_idle = 0;
    s = render(emit_dump, p, &o);
    ck_assert_str_eq(s, "111*: tid 100 (main)\napp.py:work:20\napp.py:<module>:10\n\n"
                        "222: tid 101 (worker)\napp.py:work:21\napp.py:<module>:10\n");
    free(s);
    profile_free(p);
}
END_TEST

START_TEST(test_emit_profile_atomic)
{
    char dir[] = "/tmp/pyflame-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], err[256];
    snprintf(path, sizeof(path), "%s/out.txt", dir);
    struct profile *p = sample_profile(0);
    struct emit_options o;
    memset(&o, 0, sizeof(o));
    ck_assert_int_eq(emit_profile(path, p, &o, err, sizeof(err)), 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_gt(st.st_size, 10);
    snprintf(path, sizeof(path), "%s/missing/out.txt", dir);
    ck_assert_int_lt(emit_profile(path, p, &o, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "missing/out.txt"));
    /* nothing left behind but the one file */
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "test $(ls %s | wc -l) = 1", dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    profile_free(p);
}
END_TEST

START_TEST(test_format_names)
{
    for (int f = 0; f < FORMAT_COUNT; f++)
        ck_assert_int_eq(format_parse(format_name((enum output_format)f)), f);
    ck_assert_int_eq(format_parse("nope"), -1);
    ck_assert_int_eq(format_from_path("a.txt"), -1);
    ck_assert_int_eq(format_from_path("A.SVG"), FORMAT_SVG);
}
END_TEST

/* ---- ELF ------------------------------------------------------------------- */

int test_core_marker(void);
int test_core_marker(void) { return 42; }

START_TEST(test_elf_self)
{
    struct elf_file *f = NULL;
    ck_assert_int_eq(elf_open("/proc/self/exe", &f, NULL), 0);
    uint64_t addr = 0, size = 0;
    ck_assert_int_eq(elf_symbol(f, "test_core_marker", &addr, &size), 0);
    ck_assert_int_lt(elf_symbol(f, "no_such_symbol_anywhere", &addr, &size), 0);
    /* load bias: start of the mapping at offset 0 minus the lowest PT_LOAD */
    struct proc_maps maps;
    ck_assert_int_eq(proc_maps_read(getpid(), &maps), 0);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    ck_assert_int_gt(n, 0);
    exe[n] = '\0';
    uint64_t start = 0;
    for (size_t i = 0; i < maps.n; i++)
        if (maps.v[i].offset == 0 && strcmp(maps.v[i].path, exe) == 0) {
            start = maps.v[i].start;
            break;
        }
    ck_assert_uint_ne(start, 0);
    uint64_t bias = start - elf_base_vaddr(f);
    elf_symbol(f, "test_core_marker", &addr, &size);
    ck_assert_uint_eq(addr + bias, (uint64_t)(uintptr_t)&test_core_marker);
    uint64_t saddr, ssize;
    ck_assert_int_eq(elf_section(f, ".text", &saddr, &ssize), 0);
    proc_maps_free(&maps);
    elf_close(f);
    int cls = 0;
    ck_assert_int_eq(elf_open("/etc/passwd", &f, &cls), -ENOEXEC);
    ck_assert_int_lt(elf_open("/no/such/file", &f, &cls), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_options_defaults);
    tcase_add_test(tc, test_options_values);
    tcase_add_test(tc, test_options_errors);
    tcase_add_test(tc, test_options_trace_and_formats);
    tcase_add_test(tc, test_pyversion);
    tcase_add_test(tc, test_collapsed);
    tcase_add_test(tc, test_collapsed_empty_and_hostile);
    tcase_add_test(tc, test_flamechart_and_dump);
    tcase_add_test(tc, test_emit_profile_atomic);
    tcase_add_test(tc, test_format_names);
    tcase_add_test(tc, test_elf_self);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
