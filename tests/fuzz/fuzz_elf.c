/*
 * fuzz_elf.c - libFuzzer target for src/elffile.c: the input is written to
 * an in-memory file (memfd) which is opened with elf_open() and then asked
 * for symbols, sections, the SONAME, the base address, bytes by address and
 * the printable strings of .rodata -- everything target discovery asks of
 * the ELF files of a process it profiles.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "elffile.h"

static const char *const symbols[] = {
    "_PyRuntime", "Py_Version", "_PyThreadState_Current", "interp_head",
    "PyThreadState_Get", "Py_GetVersion", "_Py_DebugOffsets", "main", "",
};
static const char *const sections[] = {
    ".PyRuntime", ".rodata", ".dynsym", ".symtab", ".dynamic", ".data", ".bss", ".text", "",
};

static int count_strings(const char *s, size_t len, void *arg)
{
    size_t *n = arg;
    /* Touch every byte: ASan catches a string that runs past its section. */
    volatile char sink = 0;
    for (size_t i = 0; i < len; i++)
        sink ^= s[i];
    (void)sink;
    if (strlen(s) != len)
        abort();                       /* the callback promises a NUL at len */
    return ++*n >= 100000;             /* stop early sometimes */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_elf", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();

    struct elf_file *f = NULL;
    int cls = -1;
    if (elf_open(path, &f, &cls) != 0)
        return 0;

    uint64_t addr, sz;
    for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++) {
        if (elf_symbol(f, symbols[i], &addr, &sz) == 0) {
            /* Read what the symbol points at, as target discovery does. */
            uint8_t buf[64];
            size_t n = sz < sizeof(buf) ? (size_t)sz : sizeof(buf);
            (void)elf_read(f, addr, buf, n ? n : 8);
        }
        (void)elf_symbol(f, symbols[i], &addr, NULL);
    }
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
        if (elf_section(f, sections[i], &addr, &sz) == 0) {
            uint8_t buf[256];
            (void)elf_read(f, addr, buf, sz < sizeof(buf) ? (size_t)sz : sizeof(buf));
            if (sz >= 8)
                (void)elf_read(f, addr + sz - 8, buf, 8);
            (void)elf_read(f, addr + sz, buf, 1);          /* one past the end */
        }
    }
    const char *so = elf_soname(f);
    if (so)
        (void)strlen(so);
    uint64_t base = elf_base_vaddr(f);
    uint8_t buf[32];
    (void)elf_read(f, base, buf, sizeof(buf));
    /* Addresses taken from the input itself. */
    for (size_t off = 0; off + 8 <= size && off < 64; off += 8) {
        uint64_t a;
        memcpy(&a, data + off, 8);
        (void)elf_read(f, a, buf, 1 + (a & 31));
    }
    size_t nstrings = 0;
    elf_rodata_strings(f, 1, count_strings, &nstrings);
    elf_rodata_strings(f, 5, count_strings, &nstrings);
    elf_close(f);
    return 0;
}
