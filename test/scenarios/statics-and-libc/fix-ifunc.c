/*
 * The same describe() through strlen, which glibc exports as an IFUNC (readelf --dyn-syms: IFUNC):
 * the address of the symbol is a resolver that returns the implementation for this CPU, not strlen.
 */
#include <stdio.h>
#include <string.h>

extern long calls;
extern char label[16];

void describe(char *buf, size_t size) {
  snprintf(buf, size, "%s:%zu:%ld", label, strlen(label), calls);
}
