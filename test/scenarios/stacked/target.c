/*
 * Target for stacked patches: 8 worker threads call compute() and sort every answer into x2 (the
 * original), x3 (patch 1), x4 (patch 2) or bad (anything else, which must never happen); main prints
 * "tick <n> <compute(7)> bad <b> x2 <n2> x3 <n3> x4 <n4> flavor <flavor()> scale <s>" every 20 ms.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

static int scale = 3;
static long calls;
volatile long bad_answers;

static NOINLINE int offset(int x) { return x >> 20; }

/* Counting calls gives compute a side effect, so the compiler cannot hoist it out of loops as pure. */
NOINLINE int compute(int x) {
  calls++;
  return x * 2 + offset(x);
}

/* Another function patch 2 replaces: 0 originally. */
NOINLINE int flavor(void) {
  calls++;
  return (int)(calls >> 62);
}

/* Per-thread counters, one cache line each, so counting does not serialise the workers. */
static struct {
  volatile long n[3];
  char pad[40];
} counts[64];

static void *worker(void *arg) {
  long k = (long)arg;
  for (;;) {
    for (int i = 1; i <= 1000; i++) {
      int r = compute(i);
      if (r == i * 2) counts[k].n[0]++;
      else if (r == i * 3) counts[k].n[1]++;
      else if (r == i * 4) counts[k].n[2]++;
      else bad_answers++;
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 8;
  if (threads > 64) threads = 64;
  if (argc > 2) scale = atoi(argv[2]); /* written at run time, so the compiler keeps the variable */
  pthread_t t[64];
  for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 0;; n++) {
    long s[3] = {0, 0, 0};
    for (int i = 0; i < threads; i++)
      for (int j = 0; j < 3; j++) s[j] += counts[i].n[j];
    printf("tick %ld %d bad %ld x2 %ld x3 %ld x4 %ld flavor %d scale %d\n", n, compute(7), bad_answers, s[0], s[1], s[2],
           flavor(), scale);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
