/* elffile.c - ELF lookups through libelf.  See elffile.h. */
#include "elffile.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct elf_file {
    int fd;
    Elf *elf;
    size_t shstrndx;
    uint64_t base_vaddr;
    char *soname;
};

int elf_open(const char *path, struct elf_file **out, int *elf_class)
{
    if (elf_version(EV_CURRENT) == EV_NONE)
        return -ENOSYS;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!e || elf_kind(e) != ELF_K_ELF) {
        if (e)
            elf_end(e);
        close(fd);
        return -ENOEXEC;
    }
    GElf_Ehdr eh;
    if (!gelf_getehdr(e, &eh)) {
        elf_end(e);
        close(fd);
        return -ENOEXEC;
    }
    if (elf_class)
        *elf_class = eh.e_ident[EI_CLASS];
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64) {
        elf_end(e);
        close(fd);
        return -EPROTONOSUPPORT;
    }
    struct elf_file *f = calloc(1, sizeof(*f));
    if (!f) {
        elf_end(e);
        close(fd);
        return -ENOMEM;
    }
    f->fd = fd;
    f->elf = e;
    if (elf_getshdrstrndx(e, &f->shstrndx) != 0)
        f->shstrndx = 0;

    size_t nph = 0;
    uint64_t lowest = UINT64_MAX;
    if (elf_getphdrnum(e, &nph) == 0) {
        for (size_t i = 0; i < nph; i++) {
            GElf_Phdr ph;
            if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
                continue;
            uint64_t align = ph.p_align > 1 ? ph.p_align : 1;
            uint64_t v = ph.p_vaddr & ~(align - 1);
            if (v < lowest)
                lowest = v;
        }
    }
    f->base_vaddr = lowest == UINT64_MAX ? 0 : lowest;

    /* DT_SONAME */
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(e, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        if (!d || !sh.sh_entsize)
            break;
        size_t cnt = sh.sh_size / sh.sh_entsize;
        for (size_t i = 0; i < cnt; i++) {
            GElf_Dyn dyn;
            if (!gelf_getdyn(d, (int)i, &dyn))
                break;
            if (dyn.d_tag == DT_SONAME) {
                const char *s = elf_strptr(e, sh.sh_link, dyn.d_un.d_val);
                if (s)
                    f->soname = strdup(s);
                break;
            }
        }
        break;
    }
    *out = f;
    return 0;
}

void elf_close(struct elf_file *f)
{
    if (!f)
        return;
    elf_end(f->elf);
    close(f->fd);
    free(f->soname);
    free(f);
}

static int symbol_in(struct elf_file *f, GElf_Word type, const char *name, uint64_t *addr,
                     uint64_t *size)
{
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(f->elf, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != type || !sh.sh_entsize)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        if (!d)
            continue;
        size_t cnt = sh.sh_size / sh.sh_entsize;
        for (size_t i = 0; i < cnt; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(d, (int)i, &sym))
                break;
            if (sym.st_shndx == SHN_UNDEF || sym.st_value == 0)
                continue;
            const char *s = elf_strptr(f->elf, sh.sh_link, sym.st_name);
            if (s && strcmp(s, name) == 0) {
                *addr = sym.st_value;
                if (size)
                    *size = sym.st_size;
                return 0;
            }
        }
    }
    return -ENOENT;
}

int elf_symbol(struct elf_file *f, const char *name, uint64_t *addr, uint64_t *size)
{
    if (symbol_in(f, SHT_DYNSYM, name, addr, size) == 0)
        return 0;
    return symbol_in(f, SHT_SYMTAB, name, addr, size);
}

static Elf_Scn *find_section(struct elf_file *f, const char *name, GElf_Shdr *out)
{
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(f->elf, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh))
            continue;
        const char *s = elf_strptr(f->elf, f->shstrndx, sh.sh_name);
        if (s && strcmp(s, name) == 0) {
            *out = sh;
            return scn;
        }
    }
    return NULL;
}

int elf_section(struct elf_file *f, const char *name, uint64_t *addr, uint64_t *size)
{
    GElf_Shdr sh;
    if (!find_section(f, name, &sh))
        return -ENOENT;
    *addr = sh.sh_addr;
    *size = sh.sh_size;
    return 0;
}

const char *elf_soname(struct elf_file *f) { return f->soname; }

uint64_t elf_base_vaddr(struct elf_file *f) { return f->base_vaddr; }

int elf_read(struct elf_file *f, uint64_t addr, void *buf, size_t len)
{
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(f->elf, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS || !(sh.sh_flags & SHF_ALLOC))
            continue;
        if (addr < sh.sh_addr || addr - sh.sh_addr > sh.sh_size || len > sh.sh_size - (addr - sh.sh_addr))
            continue;
        Elf_Data *d = elf_rawdata(scn, NULL);
        if (!d || !d->d_buf || d->d_size < sh.sh_size)
            return -ENOENT;
        memcpy(buf, (const char *)d->d_buf + (addr - sh.sh_addr), len);
        return 0;
    }
    return -ENOENT;
}

void elf_rodata_strings(struct elf_file *f, size_t minlen,
                        int (*fn)(const char *s, size_t len, void *arg), void *arg)
{
    GElf_Shdr sh;
    Elf_Scn *scn = find_section(f, ".rodata", &sh);
    if (!scn || sh.sh_type == SHT_NOBITS)
        return;
    Elf_Data *d = elf_rawdata(scn, NULL);
    if (!d || !d->d_buf)
        return;
    const char *p = d->d_buf;
    size_t n = d->d_size, start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\0') {
            if (i - start >= minlen && fn(p + start, i - start, arg))
                return;
            start = i + 1;
        } else if (c < 0x20 || c >= 0x7f) {
            start = i + 1;
        }
    }
}
