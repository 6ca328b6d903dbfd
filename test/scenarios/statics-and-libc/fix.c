/*
 * The fix: compute() multiplies by the target's static `scale` (3) and adds its static offset();
 * describe() formats the target's static `label` and call counter with libc's snprintf, as
 * "<label>:<length of label>:<calls>".
 */
#include <stdio.h>

extern int scale;
extern long calls;
extern char label[16];
int offset(int x);

int compute(int x) {
  calls++;
  return x * scale + offset(x);
}

void describe(char *buf, size_t size) {
  int n = snprintf(buf, size, "%s", label);
  if (n >= 0 && (size_t)n < size) snprintf(buf + n, size - (size_t)n, ":%d:%ld", n, calls);
}
