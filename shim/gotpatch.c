/*
 * gotpatch.c — make modules that bind libpq in their own scope call us.
 *
 * A module loaded with RTLD_DEEPBIND (PHP's pgsql.so and pdo_pgsql.so)
 * resolves libpq's names in its own dependencies before the global scope,
 * so a preloaded library never sees its calls; a module linked to a second
 * libpq copy would reach the first copy's hooks. After each load we look
 * at every module that needs a libpq and point its relocation slots
 * (JUMP_SLOT and GLOB_DAT, the GOT) for the intercepted names at the hooks
 * serving the copy that module's other calls reach — what it would call
 * anyway, only through us. Everything else it calls still goes straight to
 * its libpq.
 *
 * Safety: the look is stateless (a slot already right is left alone), so
 * a module dlclose'd and loaded again is simply looked at again, and a
 * dlclose needs nothing from us. A slot is written with one aligned atomic
 * store (a running thread sees the old or the new target); a slot under
 * RELRO is made writable for that store and read-only again at once.
 * Writes are serialised by one lock that covers nothing else.
 */
#define _GNU_SOURCE
#include "gotpatch.h"
#include "loader.h"
#include "log.h"
#include "real.h"

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

/* The lock has fork handlers of its own, registered before its first use:
 * it is used before the shim is active (a dlopen of a module), and this
 * module sits above init.c. It is a leaf (nothing else is taken under it,
 * and it is never taken under another lock), so where the handlers run
 * among init.c's does not matter. */
static pthread_once_t fork_handlers_once = PTHREAD_ONCE_INIT;

/* A child forked while another thread of its parent was inside the
 * dynamic loader (dlopen, dlclose) inherits the loader's own lock taken
 * for good, and dl_iterate_phdr would wait for it forever. The program
 * alone does not enter the loader to connect, so neither do we until one
 * of its own loader calls has come back (gotpatch_loader_proven). What
 * the parent rewrote is in the child's memory already. */
static atomic_bool loader_unproven;

static void lock_before_fork(void) { pthread_mutex_lock(&write_lock); }
static void unlock_after_fork(void) { pthread_mutex_unlock(&write_lock); }

static void child_after_fork(void)
{
    pthread_mutex_unlock(&write_lock);
    atomic_store(&loader_unproven, true);
}

static void register_fork_handlers(void)
{
    pthread_atfork(lock_before_fork, unlock_after_fork, child_after_fork);
}

void gotpatch_watch_forks(void)
{
    pthread_once(&fork_handlers_once, register_fork_handlers);
}

void gotpatch_loader_proven(void)
{
    if (atomic_load_explicit(&loader_unproven, memory_order_relaxed))
        atomic_store(&loader_unproven, false);
}

static void lock_writes(void)
{
    pthread_once(&fork_handlers_once, register_fork_handlers);
    pthread_mutex_lock(&write_lock);
}

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

/* File names (last part) that were dlopen'ed with RTLD_DEEPBIND. */
#define MAX_DEEPBIND 16
static char deepbind_names[MAX_DEEPBIND][128]; /* under write_lock */
static int deepbind_next;                      /* under write_lock */

static const char *last_part(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

void gotpatch_note_deepbind(const char *file)
{
    if (!file)
        return;
    const char *base = last_part(file);
    lock_writes();
    bool known = false;
    for (int i = 0; i < MAX_DEEPBIND && !known; i++)
        known = strcmp(deepbind_names[i], base) == 0;
    if (!known)
        snprintf(deepbind_names[deepbind_next++ % MAX_DEEPBIND], 128, "%s", base);
    pthread_mutex_unlock(&write_lock);
}

static bool was_deepbind(const char *path)
{
    const char *base = last_part(path);
    bool found = false;
    lock_writes();
    for (int i = 0; i < MAX_DEEPBIND && !found; i++)
        found = deepbind_names[i][0] && strcmp(deepbind_names[i], base) == 0;
    pthread_mutex_unlock(&write_lock);
    return found;
}

/* Modules bound to a copy other than 0, by address range, as of the last
 * look: a call that reached an exported entry point from one of them (it
 * was not rewritten yet) belongs to that copy. */
struct range {
    ElfW(Addr) lo, hi;
    int copy;
};
static struct range ranges[MAX_MODULES]; /* under write_lock */
static int range_count;                  /* under write_lock */
static atomic_int ranges_any;

/* What one module's program headers say (copied out of dl_iterate_phdr,
 * which holds the loader's lock while it calls us). */
struct module {
    ElfW(Addr) base;
    ElfW(Addr) lo, hi;        /* what its PT_LOAD segments cover */
    int copy;                 /* the libpq copy it binds to, -1: none seen */
    bool deepbind;            /* we saw it dlopen'ed with RTLD_DEEPBIND */
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
    m->lo = (ElfW(Addr))-1;
    m->copy = -1;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        ElfW(Addr) start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_DYNAMIC)
            m->dynamic = (const ElfW(Dyn) *)start;
        else if (ph->p_type == PT_GNU_RELRO) {
            /* As the loader rounds it: both ends down to a page. */
            m->relro_start = start & ~(ElfW(Addr))(page - 1);
            m->relro_end = (start + ph->p_memsz) & ~(ElfW(Addr))(page - 1);
        } else if (ph->p_type == PT_LOAD) {
            if (start < m->lo)
                m->lo = start;
            if (start + ph->p_memsz > m->hi)
                m->hi = start + ph->p_memsz;
            if ((ph->p_flags & PF_W) && m->rw_count < MAX_WRITABLE) {
                m->rw_start[m->rw_count] = start;
                m->rw_end[m->rw_count++] = start + ph->p_memsz;
            }
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

/* A module is found by its name, as listed: the loader's own records
 * (link_map) are written under its lock, which ThreadSanitizer cannot see,
 * while what dl_iterate_phdr hands a callback is known to be settled. */
struct find {
    const char *name;
    struct module *m;
    bool found;
};

static int find_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct find *f = data;
    if (!info->dlpi_name || strcmp(info->dlpi_name, f->name) != 0)
        return 0;
    read_headers(info, f->m);
    f->found = true;
    return 1;
}

/* Which copy a module calls: the one its own lookup scope reaches first.
 * That is its dependency (L, what dlsym on its handle finds) when it was
 * loaded with RTLD_DEEPBIND or the global scope has no libpq, else the
 * global scope's (G). When they differ, the slots the loader already
 * filled say which scope the module uses; failing that, how it was
 * loaded. */
struct choice {
    const void *local_base, *global_base;
    int local, global; /* votes of resolved slots */
};

/* The entry points a module's slots are pointed at (hooks.c's), handed
 * down by whoever asks for a refresh. */
static const struct entry_points *_Atomic entry;

static const void *libpq_base(const void *fn)
{
    Dl_info info;
    if (!fn || entry->is_ours(fn) || !dladdr(fn, &info) ||
        !real_is_libpq_name(info.dli_fname))
        return NULL;
    return info.dli_fbase;
}

static void vote(struct choice *c, const char *name, const void *value)
{
    if (value == entry->lookup(name)) {
        c->global++; /* bound through the global scope, where we come first */
        return;
    }
    Dl_info info;
    if (!value || entry->is_ours(value) || !dladdr(value, &info))
        return;
    if (info.dli_fbase == c->local_base)
        c->local++;
    else if (info.dli_fbase == c->global_base)
        c->global++;
}

static bool in_writable_segment(const struct module *m, ElfW(Addr) a)
{
    for (int i = 0; i < m->rw_count; i++)
        if (a >= m->rw_start[i] && a + sizeof(void *) <= m->rw_end[i])
            return true;
    return false;
}

/* Walk one relocation table (RELA or REL entries): with c, let the slots
 * of every libpq name vote; without, note the slots of intercepted names
 * that do not hold the hook of copy m->copy. */
static int plan_table(struct choice *c, struct module *m, const ElfW(Sym) *symtab,
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
        void *now = __atomic_load_n((void **)slot, __ATOMIC_RELAXED);
        if (c) {
            vote(c, name, now);
            continue;
        }
        void *value = entry->lookup_copy(name, m->copy);
        if (value && now != value)
            w[n++] = (struct write){(void **)slot, value};
    }
    return n;
}

static int plan_module(void *h, struct module *m, struct write *w)
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
    /* real_dlsym's caller is this library: RTLD_NEXT is the global scope
     * without us. */
    const void *lfn = real_dlsym(h, "PQconnectdb");
    const void *gfn = real_dlsym(RTLD_NEXT, "PQconnectdb");
    struct choice c = {libpq_base(lfn), libpq_base(gfn), 0, 0};
    const void *chosen_fn = c.local_base ? lfn : gfn;
    if (c.local_base && c.global_base && c.local_base != c.global_base) {
        for (int pass = 0; pass < 3; pass++)
            plan_table(&c, m, symtab, strtab, pass == 0 ? jmprel : pass == 1 ? rela : rel,
                       pass == 0 ? pltrelsz : pass == 1 ? relasz : relsz,
                       pass == 0 ? pltent : pass == 1 ? relaent : relent, w, 0);
        bool local = c.local != c.global ? c.local > c.global : m->deepbind;
        chosen_fn = local ? lfn : gfn;
    }
    Dl_info info;
    if (!chosen_fn || !dladdr(chosen_fn, &info))
        return 0;
    m->copy = real_copy_index(info.dli_fbase, info.dli_fname);
    if (m->copy < 0)
        return 0;
    int n = plan_table(NULL, m, symtab, strtab, jmprel, pltrelsz, pltent, w, 0);
    n = plan_table(NULL, m, symtab, strtab, rela, relasz, relaent, w, n);
    return plan_table(NULL, m, symtab, strtab, rel, relsz, relent, w, n);
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

/* Rewrite one module; note its range in *r when it binds to a copy > 0. */
static bool patch_module(const char *name, struct range *r)
{
    bool ranged = false;
    void *h = real_dlopen(name, RTLD_NOLOAD | RTLD_LAZY);
    if (!h)
        return false; /* gone since we listed it */
    /* The handle keeps the module mapped while we work on it. */
    struct module m;
    struct find f = {.name = name, .m = &m};
    dl_iterate_phdr(find_module, &f);
    m.deepbind = was_deepbind(name);
    struct write *w = f.found ? calloc(MAX_SLOTS, sizeof *w) : NULL;
    int n = w ? plan_module(h, &m, w) : 0, done = 0;
    if (f.found && m.copy > 0 && m.lo < m.hi) {
        *r = (struct range){m.lo, m.hi, m.copy};
        ranged = true;
    }
    if (n > 0) {
        lock_writes();
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
    return ranged;
}

void gotpatch_log_pending(void)
{
    if (!atomic_load_explicit(&pending_any, memory_order_relaxed))
        return;
    struct pending copy[MAX_PENDING];
    lock_writes();
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

void gotpatch_refresh(const struct entry_points *ep)
{
    (void)ep;
#if defined(R_JUMP_SLOT)
    entry = ep; /* every caller hands the same table */
    gotpatch_watch_forks();
    if (atomic_load(&loader_unproven))
        return;
    unsigned long long adds = 0;
    dl_iterate_phdr(first_adds, &adds);
    if (adds == atomic_load_explicit(&seen_adds, memory_order_relaxed))
        return;
    int saved_errno = errno;
    Dl_info self;
    struct collect c = {.count = 0};
    c.self = dladdr((void *)gotpatch_refresh, &self) ? self.dli_fbase : NULL;
    dl_iterate_phdr(collect_module, &c);
    struct range found[MAX_MODULES];
    int nfound = 0;
    for (int i = 0; i < c.count; i++) {
        nfound += patch_module(c.names[i], &found[nfound]);
        free(c.names[i]);
    }
    lock_writes();
    memcpy(ranges, found, (size_t)nfound * sizeof found[0]);
    range_count = nfound;
    atomic_store(&ranges_any, nfound > 0);
    pthread_mutex_unlock(&write_lock);
    /* Loads that happened during this look are looked at next time. */
    atomic_store_explicit(&seen_adds, c.adds, memory_order_relaxed);
    if (c.count > 0)
        (void)dlerror(); /* our lookups leave nothing for the program to read */
    errno = saved_errno;
#endif
}

int gotpatch_copy_of_caller(const void *addr)
{
    if (!atomic_load_explicit(&ranges_any, memory_order_relaxed))
        return 0;
    int copy = 0;
    ElfW(Addr) a = (ElfW(Addr))addr;
    lock_writes();
    for (int i = 0; i < range_count; i++)
        if (a >= ranges[i].lo && a < ranges[i].hi)
            copy = ranges[i].copy;
    pthread_mutex_unlock(&write_lock);
    return copy;
}
