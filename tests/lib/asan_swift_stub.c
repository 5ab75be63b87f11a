/*
 * Preloaded after the ASan runtime in sanitizer test runs only.
 *
 * ASan initialises on the first malloc. In programs that link libp11-kit
 * (psql, pgbench via libpq -> gnutls), that first malloc happens inside
 * newlocale() in p11-kit's constructor, with glibc's locale lock held for
 * writing; ASan's init then looks up swift_demangle, and the failed lookup
 * makes dlerror() translate its message under the same lock, leaving it
 * corrupted: the program hangs at exit. Defining the symbol avoids the
 * failed lookup. It never demangles anything.
 */
#include <stddef.h>
#include <stdint.h>

char *swift_demangle(const char *mangled, size_t length, char *out,
                     size_t *out_size, uint32_t flags);

char *swift_demangle(const char *mangled, size_t length, char *out,
                     size_t *out_size, uint32_t flags)
{
    (void)mangled;
    (void)length;
    (void)out;
    (void)out_size;
    (void)flags;
    return NULL;
}
