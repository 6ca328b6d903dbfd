/*
 * Calling shapes the trace stubs must pass through untouched, and the runtime limits: ten integer
 * arguments (four on the stack), varargs, a struct passed by value (on the stack) with doubles, a
 * recursion 3000 deep (deeper than the 1024-entry shadow stack: the rest runs untraced, counted) and
 * four worker threads, of which --max-threads 2 (main and one) lets one be traced (the calls of the
 * others counted as having no slot).
 * Prints `total T`, the same traced or not.
 */
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#define KEEP __attribute__((noinline))
struct big { long a[6]; };
KEEP long many(long a, long b, long c, long d, long e, long f, long g, long h, long i, long j) { return a + 2*b + 3*c + 4*d + 5*e + 6*f + 7*g + 8*h + 9*i + 10*j; }
KEEP long sum_va(int n, ...) { va_list ap; va_start(ap, n); long s = 0; for (int k = 0; k < n; k++) s += va_arg(ap, long) * (k + 1); va_end(ap); return s; }
KEEP long by_value(struct big b, long x) { long s = x; for (int k = 0; k < 6; k++) s += b.a[k] * (k + 1); return s; }
KEEP double mixed(double x, long y, double z, struct big b) { return x * y + z + b.a[5]; }
KEEP long deep(long n) { if (n == 0) return 0; long r = deep(n - 1); __asm__ volatile("" : "+r"(r)); return r + n; }
KEEP void *worker(void *arg) { long s = 0; for (int k = 0; k < 1000; k++) s += many(k,1,2,3,4,5,6,7,8,9); *(long *)arg = s; return 0; }
int main(void) {
  struct big b = {{1, 2, 3, 4, 5, 6}};
  long total = 0;
  for (int r = 0; r < 100; r++) {
    total += many(r, 2, 3, 4, 5, 6, 7, 8, 9, 10);
    total += sum_va(8, 1L, 2L, 3L, 4L, 5L, 6L, 7L, (long)r);
    total += by_value(b, r);
    total += (long)mixed(1.5, r, 2.5, b);
  }
  total += deep(3000);
  pthread_t t[4]; long out[4];
  for (int k = 0; k < 4; k++) pthread_create(&t[k], 0, worker, &out[k]);
  for (int k = 0; k < 4; k++) { pthread_join(t[k], 0); total += out[k]; }
  printf("total %ld\n", total);
  return 0;
}
