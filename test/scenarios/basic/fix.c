/* The fix: compute() multiplies by the target's static `scale` (3) and calls its static offset(). */
#include <stdio.h>
extern int scale;
extern long calls;
int offset(int x);
int compute(int x) {
  calls++;
  return x * scale + offset(x);
}
