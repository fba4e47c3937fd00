/*
 * target.h - turning a PID into a Python target: which ELF object holds the
 * interpreter (libpython or the executable itself), where it is loaded, which
 * CPython version it is (from the binary, never from a file name), which ABI
 * table to read it with, and the remote addresses the readers start from.
 */
#ifndef PYFLAME_TARGET_H
#define PYFLAME_TARGET_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "offsets.h"
#include "pyversion.h"

struct pytarget {
    pid_t pid;
    char elf_path[PATH_MAX];       /* the file as reached from here (/proc/PID/root/...) */
    char map_path[PATH_MAX];       /* the file as the target sees it */
    int is_libpython;              /* a shared libpython, not the executable */
    uint64_t bias;                 /* load bias: runtime address = link address + bias */
    struct pyversion version;
    char version_str[32];
    const struct abi_offsets *abi; /* the table entry used */

    /* Remote addresses (0 when absent). */
    uint64_t runtime;              /* _PyRuntime (3.7+) */
    uint64_t interp_head;          /* &interp_head (<=3.6, static: .symtab only) */
    uint64_t tstate_current;       /* &_PyThreadState_Current (<=3.6) */
    uint64_t gil_locked;           /* &gil_locked (3.6 static) */
    uint64_t gil_last_holder;      /* &gil_last_holder (3.6 static) */
    uint64_t code_type;            /* &PyCode_Type */
    uint64_t init_cleanup;         /* &_Py_InitCleanup (3.13+, .symtab only): the code of
                                      the shim frame under a specialised __init__ call */
};

/* What to check when ptrace or /proc is refused. */
#define TARGET_PERMISSION_HINT \
    "run as root or as the same user; check kernel.yama.ptrace_scope, and in containers " \
    "CAP_SYS_PTRACE: docker run --cap-add SYS_PTRACE"

/* Finds the interpreter in process pid.  forced_abi is an --abi name or NULL.
 * 0, or -errno with a one-line message in e:
 *   -ESRCH    the process does not exist (or is a kernel thread / zombie)
 *   -ENOENT   no Python interpreter in it ("Failed to locate libpython ...")
 *   -ENOTSUP  a Python that this build cannot read
 *   -EPROTONOSUPPORT  not a 64-bit x86-64 process */
int target_discover(pid_t pid, const char *forced_abi, struct pytarget *t, struct error *e);

/* The ABI table entry for a version or an --abi name, or NULL. */
const struct abi_offsets *target_abi_for_version(int major, int minor);
const struct abi_offsets *target_abi_by_name(const char *name);

/* "27 36 37 ..." : the ABIs this build reads. */
void target_abi_list(char *buf, size_t cap);

#endif
