/*
 * gotpatch.c — make modules that bind libpq in their own scope call us.
 *
 * A module loaded with RTLD_DEEPBIND (PHP's pgsql.so and pdo_pgsql.so)
 * resolves libpq's names in its own dependencies before the global scope,
 * so a preloaded library never sees its calls; a module linked to a second
 * libpq copy would reach the first copy's hooks. After each load we look
 * at every module that needs a libpq and point its relocation slots
 * (JUMP_SLOT and GLOB_DAT, the GOT) for the intercepted names at the hooks
 * serving the copy that module binds to — what it would call anyway, only
 * through us. Everything else it calls still goes straight to its libpq.
 *
 * Safety: the look is stateless (a slot already right is left alone), so
 * a module dlclose'd and loaded again is simply looked at again, and a
 * dlclose needs nothing from us. A slot is written with one aligned atomic
 * store (a running thread sees the old or the new target); a slot under
 * RELRO is made writable for that store and read-only again at once.
 * Writes are serialised by one lock that covers nothing else.
 */
#define _GNU_SOURCE
#include "pqshim.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#define R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB_DAT R_AARCH64_GLOB_DAT
#elif defined(__i386__)
#define R_JUMP_SLOT R_386_JMP_SLOT
#define R_GLOB_DAT R_386_GLOB_DAT
#endif

#if __ELF_NATIVE_CLASS == 64
#define R_SYM_OF(info) ELF64_R_SYM(info)
#define R_TYPE_OF(info) ELF64_R_TYPE(info)
#else
#define R_SYM_OF(info) ELF32_R_SYM(info)
#define R_TYPE_OF(info) ELF32_R_TYPE(info)
#endif

#define MAX_MODULES 64  /* modules needing libpq looked at per pass */
#define MAX_SLOTS 256   /* slots rewritten per module */
#define MAX_WRITABLE 4  /* writable PT_LOAD segments per module */

static atomic_ullong seen_adds;   /* dlpi_adds at the last complete look */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

/* What was rewritten, told at the next connect: logging reads the
 * configuration, and a PHP-FPM master loads its extensions before its
 * workers receive their PQSHIM_* settings (env[] lines of the pool). */
#define MAX_PENDING 8
static struct pending {
    char module[512];
    int slots, failed;
} pending[MAX_PENDING];
static int pending_count;  /* under write_lock */
static atomic_bool pending_any;

/* What one module's program headers say (copied out of dl_iterate_phdr,
 * which holds the loader's lock while it calls us). */
struct module {
    ElfW(Addr) base;
    const ElfW(Dyn) *dynamic;
    ElfW(Addr) relro_start, relro_end; /* the pages the loader protected */
    ElfW(Addr) rw_start[MAX_WRITABLE], rw_end[MAX_WRITABLE];
    int rw_count;
};

struct write {
    void **slot;
    void *value;
};

/* Dynamic-section pointers are relocated in place by the loader on most
 * targets and left as offsets on a few: accept both. */
static ElfW(Addr) dyn_ptr(ElfW(Addr) base, ElfW(Addr) p)
{
    return p < base ? p + base : p;
}

static void read_headers(const struct dl_phdr_info *info, struct module *m)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    memset(m, 0, sizeof *m);
    m->base = info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        ElfW(Addr) start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_DYNAMIC)
            m->dynamic = (const ElfW(Dyn) *)start;
        else if (ph->p_type == PT_GNU_RELRO) {
            /* As the loader rounds it: both ends down to a page. */
            m->relro_start = start & ~(ElfW(Addr))(page - 1);
            m->relro_end = (start + ph->p_memsz) & ~(ElfW(Addr))(page - 1);
        } else if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W) &&
                   m->rw_count < MAX_WRITABLE) {
            m->rw_start[m->rw_count] = start;
            m->rw_end[m->rw_count++] = start + ph->p_memsz;
        }
    }
}

/* Does the module name a libpq among its DT_NEEDED entries? */
static bool needs_libpq(const struct module *m)
{
    const char *strtab = NULL;
    if (!m->dynamic)
        return false;
    for (const ElfW(Dyn) *d = m->dynamic; d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_STRTAB)
            strtab = (const char *)dyn_ptr(m->base, d->d_un.d_ptr);
    if (!strtab)
        return false;
    for (const ElfW(Dyn) *d = m->dynamic; d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_NEEDED && real_is_libpq_name(strtab + d->d_un.d_val))
            return true;
    return false;
}

struct collect {
    unsigned long long adds;
    const void *self;
    char *names[MAX_MODULES];
    int count;
};

/* Modules to look at: every shared object that needs a libpq, but not the
 * program (it binds through the global scope, where we come first), not a
 * libpq (its calls to itself are its own business) and not ourselves. */
static int collect_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct collect *c = data;
    c->adds = info->dlpi_adds;
    const char *name = info->dlpi_name;
    if (!name || !strchr(name, '/') || real_is_libpq_name(name) ||
        (const void *)info->dlpi_addr == c->self || c->count == MAX_MODULES)
        return 0;
    struct module m;
    read_headers(info, &m);
    if (needs_libpq(&m)) {
        char *copy = strdup(name);
        if (copy)
            c->names[c->count++] = copy;
    }
    return 0;
}

struct find {
    ElfW(Addr) base;
    struct module *m;
    bool found;
};

static int find_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct find *f = data;
    if (info->dlpi_addr != f->base)
        return 0;
    read_headers(info, f->m);
    f->found = true;
    return 1;
}

/* The value a slot for `name` should hold in the module behind handle h:
 * the hook serving the libpq copy the module's own scope finds. */
static void *wanted_value(void *h, const char *name)
{
    if (!hooks_lookup(name))
        return NULL;
    void *real = real_dlsym(h, name);
    Dl_info info;
    if (!real || hooks_is_ours(real) || !dladdr(real, &info) ||
        !real_is_libpq_name(info.dli_fname))
        return NULL;
    int copy = real_copy_index(info.dli_fbase, info.dli_fname);
    return copy < 0 ? NULL : hooks_lookup_copy(name, copy);
}

static bool in_writable_segment(const struct module *m, ElfW(Addr) a)
{
    for (int i = 0; i < m->rw_count; i++)
        if (a >= m->rw_start[i] && a + sizeof(void *) <= m->rw_end[i])
            return true;
    return false;
}

/* Walk one relocation table (RELA or REL entries) and note the slots of
 * intercepted names that do not hold what they should. */
static int plan_table(void *h, const struct module *m, const ElfW(Sym) *symtab,
                      const char *strtab, ElfW(Addr) table, size_t size,
                      size_t entsize, struct write *w, int n)
{
    if (!table || !entsize)
        return n;
    for (size_t off = 0; off + entsize <= size && n < MAX_SLOTS; off += entsize) {
        /* r_offset and r_info lead both Rela and Rel. */
        const ElfW(Rel) *r = (const ElfW(Rel) *)(table + off);
        unsigned long type = R_TYPE_OF(r->r_info);
        if (type != R_JUMP_SLOT && type != R_GLOB_DAT)
            continue;
        const char *name = strtab + symtab[R_SYM_OF(r->r_info)].st_name;
        if (name[0] != 'P' || name[1] != 'Q')
            continue;
        ElfW(Addr) slot = m->base + r->r_offset;
        if (slot % sizeof(void *) != 0 || !in_writable_segment(m, slot))
            continue;
        void *value = wanted_value(h, name);
        if (value && __atomic_load_n((void **)slot, __ATOMIC_RELAXED) != value)
            w[n++] = (struct write){(void **)slot, value};
    }
    return n;
}

static int plan_module(void *h, const struct module *m, struct write *w)
{
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    ElfW(Addr) jmprel = 0, rela = 0, rel = 0;
    size_t pltrelsz = 0, relasz = 0, relaent = 0, relsz = 0, relent = 0;
    long pltrel = 0;
    for (const ElfW(Dyn) *d = m->dynamic; d && d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: symtab = (const ElfW(Sym) *)dyn_ptr(m->base, d->d_un.d_ptr); break;
        case DT_STRTAB: strtab = (const char *)dyn_ptr(m->base, d->d_un.d_ptr); break;
        case DT_JMPREL: jmprel = dyn_ptr(m->base, d->d_un.d_ptr); break;
        case DT_PLTRELSZ: pltrelsz = d->d_un.d_val; break;
        case DT_PLTREL: pltrel = (long)d->d_un.d_val; break;
        case DT_RELA: rela = dyn_ptr(m->base, d->d_un.d_ptr); break;
        case DT_RELASZ: relasz = d->d_un.d_val; break;
        case DT_RELAENT: relaent = d->d_un.d_val; break;
        case DT_REL: rel = dyn_ptr(m->base, d->d_un.d_ptr); break;
        case DT_RELSZ: relsz = d->d_un.d_val; break;
        case DT_RELENT: relent = d->d_un.d_val; break;
        default: break;
        }
    }
    if (!symtab || !strtab)
        return 0;
    size_t pltent = pltrel == DT_RELA ? sizeof(ElfW(Rela)) : sizeof(ElfW(Rel));
    int n = plan_table(h, m, symtab, strtab, jmprel, pltrelsz, pltent, w, 0);
    n = plan_table(h, m, symtab, strtab, rela, relasz, relaent, w, n);
    return plan_table(h, m, symtab, strtab, rel, relsz, relent, w, n);
}

/* One slot, one aligned atomic store; RELRO pages writable just for it. */
static bool write_slot(const struct module *m, const struct write *w)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    ElfW(Addr) a = (ElfW(Addr))w->slot;
    ElfW(Addr) pg = a & ~(ElfW(Addr))(page - 1);
    bool protect = pg >= m->relro_start && pg < m->relro_end;
    if (protect && mprotect((void *)pg, page, PROT_READ | PROT_WRITE) != 0)
        return false;
    __atomic_store_n(w->slot, w->value, __ATOMIC_RELEASE);
    if (protect)
        (void)mprotect((void *)pg, page, PROT_READ);
    return true;
}

static void patch_module(const char *name)
{
    void *h = real_dlopen(name, RTLD_NOLOAD | RTLD_LAZY);
    if (!h)
        return; /* gone since we listed it */
    /* The handle keeps the module mapped while we work on it. */
    struct link_map *lm = NULL;
    struct module m;
    struct find f = {.m = &m};
    if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm) {
        f.base = lm->l_addr;
        dl_iterate_phdr(find_module, &f);
    }
    struct write *w = f.found ? calloc(MAX_SLOTS, sizeof *w) : NULL;
    int n = w ? plan_module(h, &m, w) : 0, done = 0;
    if (n > 0) {
        pthread_mutex_lock(&write_lock);
        for (int i = 0; i < n; i++)
            done += write_slot(&m, &w[i]);
        if (pending_count < MAX_PENDING) {
            struct pending *p = &pending[pending_count++];
            snprintf(p->module, sizeof p->module, "%s", name);
            p->slots = done;
            p->failed = n - done;
            atomic_store(&pending_any, true);
        }
        pthread_mutex_unlock(&write_lock);
    }
    free(w);
    dlclose(h);
}

void gotpatch_log_pending(void)
{
    if (!atomic_load_explicit(&pending_any, memory_order_relaxed))
        return;
    struct pending copy[MAX_PENDING];
    pthread_mutex_lock(&write_lock);
    int n = pending_count;
    memcpy(copy, pending, sizeof copy);
    pending_count = 0;
    atomic_store(&pending_any, false);
    pthread_mutex_unlock(&write_lock);
    for (int i = 0; i < n; i++) {
        const struct pending *p = &copy[i];
        if (p->failed) /* those calls still bypass the shim */
            LOG_EVENT(LOG_LVL_WARN, "module_rewired", LF_S("module", p->module),
                      LF_I("slots", p->slots), LF_I("failed", p->failed));
        else
            LOG_EVENT(LOG_LVL_DEBUG, "module_rewired", LF_S("module", p->module),
                      LF_I("slots", p->slots), LF_I("failed", 0));
    }
}

static int first_adds(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    *(unsigned long long *)data = info->dlpi_adds;
    return 1;
}

void gotpatch_refresh(void)
{
#if defined(R_JUMP_SLOT)
    unsigned long long adds = 0;
    dl_iterate_phdr(first_adds, &adds);
    if (adds == atomic_load_explicit(&seen_adds, memory_order_relaxed))
        return;
    int saved_errno = errno;
    Dl_info self;
    struct collect c = {.count = 0};
    c.self = dladdr((void *)gotpatch_refresh, &self) ? self.dli_fbase : NULL;
    dl_iterate_phdr(collect_module, &c);
    for (int i = 0; i < c.count; i++) {
        patch_module(c.names[i]);
        free(c.names[i]);
    }
    /* Loads that happened during this look are looked at next time. */
    atomic_store_explicit(&seen_adds, c.adds, memory_order_relaxed);
    if (c.count > 0)
        (void)dlerror(); /* our lookups leave nothing for the program to read */
    errno = saved_errno;
#endif
}
