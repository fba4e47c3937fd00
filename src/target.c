/*
 * target.c - find the interpreter inside a process.  See target.h.
 *
 * The candidates are the ELF objects the process maps: a libpython first,
 * then the main executable (static builds such as Debian's python3.11).
 * Each is opened through /proc/PID/root so that targets in other mount
 * namespaces work, with /proc/PID/map_files as the fallback.
 */
#include "target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elffile.h"
#include "proc.h"

const struct abi_offsets *target_abi_for_version(int major, int minor)
{
    for (size_t i = 0; i < abi_offsets_count; i++)
        if (abi_offsets_table[i].major == major && abi_offsets_table[i].minor == minor)
            return &abi_offsets_table[i];
    return NULL;
}

const struct abi_offsets *target_abi_by_name(const char *name)
{
    for (size_t i = 0; i < abi_offsets_count; i++)
        if (strcmp(abi_offsets_table[i].name, name) == 0)
            return &abi_offsets_table[i];
    return NULL;
}

void target_abi_list(char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < abi_offsets_count && len + 1 < cap; i++) {
        int n = snprintf(buf + len, cap - len, "%s%s", i ? " " : "", abi_offsets_table[i].name);
        if (n < 0)
            break;
        len += (size_t)n;
    }
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Opens the mapped file `m` of process pid. */
static int open_mapped(pid_t pid, const struct proc_map *m, char *used, size_t usedcap,
                       struct elf_file **ef, int *elf_class)
{
    snprintf(used, usedcap, "/proc/%d/root%s", (int)pid, m->path);
    int rc = elf_open(used, ef, elf_class);
    if (rc == 0 || rc == -EPROTONOSUPPORT || rc == -ENOEXEC)
        return rc;
    /* Deleted or unreachable through root: the mapping itself. */
    snprintf(used, usedcap, "/proc/%d/map_files/%llx-%llx", (int)pid,
             (unsigned long long)m->start, (unsigned long long)m->end);
    return elf_open(used, ef, elf_class);
}

struct version_scan {
    int counts[4][100];   /* [major][minor] for majors 2 and 3 */
    struct pyversion best;
    int found;
};

static int scan_version_string(const char *s, size_t len, void *arg)
{
    struct version_scan *vs = arg;
    if (len > 16)
        return 0;
    struct pyversion v;
    if (pyversion_from_string(s, &v) == 0) {
        int c = ++vs->counts[v.major][v.minor];
        if (!vs->found || c > vs->counts[vs->best.major][vs->best.minor]) {
            vs->best = v;
            vs->found = 1;
        }
    }
    return 0;
}

/* Detects the version from the binary: Py_Version, _Py_DebugOffsets, SONAME, .rodata. */
static int detect_version(struct elf_file *ef, struct pyversion *v)
{
    uint64_t addr, size, hex;
    if (elf_symbol(ef, "Py_Version", &addr, &size) == 0 &&
        elf_read(ef, addr, &hex, sizeof(hex)) == 0 && pyversion_from_hex(hex & 0xffffffffULL, v) == 0)
        return 0;
    if (elf_symbol(ef, "_PyRuntime", &addr, &size) == 0 || elf_section(ef, ".PyRuntime", &addr, &size) == 0) {
        unsigned char hdr[16];
        if (elf_read(ef, addr, hdr, sizeof(hdr)) == 0 && memcmp(hdr, "xdebugpy", 8) == 0) {
            memcpy(&hex, hdr + 8, sizeof(hex));
            if (pyversion_from_hex(hex, v) == 0)
                return 0;
        }
    }
    if (pyversion_from_soname(elf_soname(ef), v) == 0)
        return 0;
    struct version_scan vs;
    memset(&vs, 0, sizeof(vs));
    elf_rodata_strings(ef, 5, scan_version_string, &vs);
    if (vs.found) {
        *v = vs.best;
        return 0;
    }
    return -ENOENT;
}

static int has_python_symbols(struct elf_file *ef)
{
    uint64_t a, s;
    return elf_symbol(ef, "_PyRuntime", &a, &s) == 0 ||
           elf_symbol(ef, "_PyThreadState_Current", &a, &s) == 0 ||
           elf_symbol(ef, "PyEval_EvalFrameEx", &a, &s) == 0 ||
           elf_symbol(ef, "Py_Initialize", &a, &s) == 0;
}

/* The start of the mapping of the same file at offset 0. */
static int mapping_base(const struct proc_maps *maps, const struct proc_map *m, uint64_t *start)
{
    for (size_t i = 0; i < maps->n; i++) {
        const struct proc_map *x = &maps->v[i];
        if (x->offset == 0 && x->inode == m->inode && strcmp(x->path, m->path) == 0) {
            *start = x->start;
            return 0;
        }
    }
    return -ENOENT;
}

static uint64_t sym_addr(struct elf_file *ef, const char *name, uint64_t bias)
{
    uint64_t a, s;
    return elf_symbol(ef, name, &a, &s) == 0 ? a + bias : 0;
}

/* Tries one mapped file; 1 = it is the interpreter and t is filled, 0 = not
 * Python, <0 = error (e set). */
static int try_candidate(pid_t pid, const struct proc_maps *maps, const struct proc_map *m,
                         const char *forced_abi, struct pytarget *t, struct error *e)
{
    struct elf_file *ef = NULL;
    int elf_class = 0;
    int rc = open_mapped(pid, m, t->elf_path, sizeof(t->elf_path), &ef, &elf_class);
    if (rc == -EPROTONOSUPPORT)
        return error_set(e, rc, "Target ELF file has EI_CLASS=%d, but for this architecture we "
                         "expected EI_CLASS=%d (%s): only 64-bit x86-64 targets are supported",
                         elf_class, 2, m->path);
    if (rc < 0)
        return 0;
    if (!has_python_symbols(ef)) {
        elf_close(ef);
        return 0;
    }
    snprintf(t->map_path, sizeof(t->map_path), "%s", m->path);
    uint64_t start;
    if (mapping_base(maps, m, &start) < 0) {
        elf_close(ef);
        return 0;
    }
    t->bias = start - elf_base_vaddr(ef);

    if (detect_version(ef, &t->version) < 0) {
        t->version.major = t->version.minor = 0;
        t->version.micro = -1;
    }
    if (forced_abi) {
        t->abi = target_abi_by_name(forced_abi);
        if (!t->abi) {
            elf_close(ef);
            return error_set(e, -ENOTSUP, "Target has Python ABI %s, which is not supported by "
                             "this pyflame build.", forced_abi);
        }
        if (t->version.major != t->abi->major || t->version.minor != t->abi->minor) {
            t->version.major = t->abi->major;
            t->version.minor = t->abi->minor;
            t->version.micro = -1;
        }
    } else {
        if (t->version.major == 0) {
            elf_close(ef);
            return error_set(e, -ENOTSUP, "cannot tell which Python version PID %d runs (%s); "
                             "use --abi to name it", (int)pid, m->path);
        }
        t->abi = target_abi_for_version(t->version.major, t->version.minor);
        if (!t->abi) {
            char list[128];
            target_abi_list(list, sizeof(list));
            /* What is known is kept for callers that need no table (PEP 768). */
            pyversion_format(&t->version, t->version_str, sizeof(t->version_str));
            uint64_t a, s;
            if (elf_section(ef, ".PyRuntime", &a, &s) == 0 || elf_symbol(ef, "_PyRuntime", &a, &s) == 0)
                t->runtime = a + t->bias;
            elf_close(ef);
            return error_set(e, -ENOTSUP, "Target has Python %d.%d, which is not supported by this "
                             "pyflame build (ABI list: %s)", t->version.major, t->version.minor, list);
        }
    }
    pyversion_format(&t->version, t->version_str, sizeof(t->version_str));

    t->code_type = sym_addr(ef, "PyCode_Type", t->bias);
    t->init_cleanup = sym_addr(ef, "_Py_InitCleanup", t->bias);
    if (t->abi->runtime_interp_head != ABI_NONE) {
        uint64_t a, s;
        if (elf_symbol(ef, "_PyRuntime", &a, &s) == 0 || elf_section(ef, ".PyRuntime", &a, &s) == 0)
            t->runtime = a + t->bias;
        if (!t->runtime) {
            elf_close(ef);
            return error_set(e, -ENOTSUP, "Python %s in PID %d has no _PyRuntime symbol (%s is "
                             "stripped?)", t->version_str, (int)pid, m->path);
        }
    } else {
        t->tstate_current = sym_addr(ef, "_PyThreadState_Current", t->bias);
        t->interp_head = sym_addr(ef, "interp_head", t->bias);
        t->gil_locked = sym_addr(ef, "gil_locked", t->bias);
        t->gil_last_holder = sym_addr(ef, "gil_last_holder", t->bias);
        if (!t->tstate_current) {
            elf_close(ef);
            return error_set(e, -ENOTSUP, "Python %s in PID %d has no _PyThreadState_Current "
                             "symbol (%s)", t->version_str, (int)pid, m->path);
        }
    }
    t->is_libpython = strncmp(base_name(m->path), "libpython", 9) == 0;
    elf_close(ef);
    return 1;
}

int target_discover(pid_t pid, const char *forced_abi, struct pytarget *t, struct error *e)
{
    memset(t, 0, sizeof(*t));
    t->pid = pid;
    if (proc_is_kernel_thread(pid))
        return error_set(e, -ESRCH, "PID %d is a kernel thread, not a Python process", (int)pid);
    struct proc_maps maps;
    int rc = proc_maps_read(pid, &maps);
    if (rc == -ENOENT)
        return error_set(e, -ESRCH, "Failed to seize PID %d: No such process", (int)pid);
    if (rc == -ESRCH)
        return error_set(e, -ESRCH, "PID %d has no memory mappings (a zombie or a kernel thread)",
                         (int)pid);
    if (rc == -EACCES || rc == -EPERM)
        return error_set(e, -EPERM, "Failed to seize PID %d: Permission denied (%s)", (int)pid,
                         TARGET_PERMISSION_HINT);
    if (rc < 0)
        return error_set(e, rc, "cannot read /proc/%d/maps: %s", (int)pid, strerror(-rc));

    char exe[PATH_MAX] = "", link[64];
    snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(link, exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *del = strstr(exe, " (deleted)");
        if (del && del[10] == '\0')
            *del = '\0';
    }

    /* Pass 1: a libpython; pass 2: the executable; pass 3: other files named *python*. */
    int found = 0;
    for (int pass = 1; pass <= 3 && !found; pass++) {
        const char *seen = NULL;
        for (size_t i = 0; i < maps.n && !found; i++) {
            const struct proc_map *m = &maps.v[i];
            if (m->path[0] != '/' || m->offset != 0)
                continue;
            if (seen && strcmp(seen, m->path) == 0)
                continue;
            seen = m->path;
            int is_lib = strncmp(base_name(m->path), "libpython", 9) == 0;
            int is_exe = exe[0] && strcmp(m->path, exe) == 0;
            if ((pass == 1 && !is_lib) || (pass == 2 && !is_exe) || (pass == 3 && (is_lib || is_exe)))
                continue;
            if (pass == 3 && !strstr(base_name(m->path), "python"))
                continue;   /* e.g. a plugin that embeds the interpreter statically */
            rc = try_candidate(pid, &maps, m, forced_abi, t, e);
            if (rc < 0) {
                proc_maps_free(&maps);
                return rc;
            }
            found = rc;
        }
    }
    proc_maps_free(&maps);
    if (!found)
        return error_set(e, -ENOENT, "Failed to locate libpython in PID %d (%s): it does not look "
                         "like a Python process", (int)pid, exe[0] ? exe : "unknown executable");
    return 0;
}
