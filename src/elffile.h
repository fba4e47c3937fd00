/*
 * elffile.h - the few things pyflame needs from an ELF file (through libelf):
 * symbols from .dynsym and .symtab, sections by name, the SONAME, the
 * lowest PT_LOAD address (for the load bias), and file bytes by address.
 */
#ifndef PYFLAME_ELFFILE_H
#define PYFLAME_ELFFILE_H

#include <stddef.h>
#include <stdint.h>

struct elf_file;

/* Opens path.  0 or -errno (-ENOEXEC: not an ELF file; -EPROTONOSUPPORT: not
 * a 64-bit x86-64 ELF file, with the class in *elf_class when not NULL). */
int elf_open(const char *path, struct elf_file **out, int *elf_class);
void elf_close(struct elf_file *f);

/* The value (link-time address) and size of a symbol, from .dynsym or .symtab. 0 or -ENOENT. */
int elf_symbol(struct elf_file *f, const char *name, uint64_t *addr, uint64_t *size);

/* A section's link-time address and size. 0 or -ENOENT. */
int elf_section(struct elf_file *f, const char *name, uint64_t *addr, uint64_t *size);

/* DT_SONAME, or NULL. */
const char *elf_soname(struct elf_file *f);

/* The lowest PT_LOAD p_vaddr rounded down to its alignment.  The load bias of a
 * mapped ELF is (start of its mapping at file offset 0) - this value. */
uint64_t elf_base_vaddr(struct elf_file *f);

/* Reads len bytes of the file image at link-time address addr (from a section
 * with file contents). 0 or -ENOENT. */
int elf_read(struct elf_file *f, uint64_t addr, void *buf, size_t len);

/* Calls fn for every NUL-terminated printable string of at least minlen
 * bytes in .rodata (stops early when fn returns non-zero). */
void elf_rodata_strings(struct elf_file *f, size_t minlen,
                        int (*fn)(const char *s, size_t len, void *arg), void *arg);

#endif
