/*
 * bench:trace — a call-heavy program: fib(N) (2·fib(N+1)−1 calls, recursion) then ITERS calls of a
 * leaf. It times only that part (wall, and the thread's CPU time: on a loaded machine the CPU time is
 * the stable measure) and prints the call count and the times, so a tracer's start-up and tear-down
 * are left out for every tool alike.
 *   ./bench [N=30] [ITERS=10000000]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__GNUC__) && !defined(__clang__)
#define KEEP __attribute__((noinline, noipa))
#else
#define KEEP __attribute__((noinline))
#endif

volatile long sink;

KEEP long leaf(long x) { return x * 3 + 1; }

KEEP long fib(long n) {
  if (n < 2) return n;
  long a = fib(n - 1);
  __asm__ volatile("" : "+r"(a));
  long b = fib(n - 2);
  __asm__ volatile("" : "+r"(b));
  return a + b;
}

static long now_ns(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 30;
  long iters = argc > 2 ? atol(argv[2]) : 10000000L;
  long f0 = 0, f1 = 1;
  for (long i = 0; i < n + 1; i++) {
    long t = f0 + f1;
    f0 = f1;
    f1 = t;
  }
  long calls = 2 * f0 - 1 + iters; /* fib(N) makes 2·fib(N+1) − 1 calls */
  long t0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
  long r = fib(n), acc = 0;
  for (long i = 0; i < iters; i++) acc += leaf(i);
  long t1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
  sink = acc;
  printf("calls %ld elapsed_ns %ld cpu_ns %ld result %ld %ld\n", calls, t1 - t0, c1 - c0, r, acc);
  return 0;
}
