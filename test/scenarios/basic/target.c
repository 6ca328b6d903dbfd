/*
 * Live-patch target: 8 worker threads call compute() in a tight loop and check every answer is
 * either the old or the new one; main prints "tick <n> <compute(7)>" every 20 ms.
 * compute() has a bug: it returns x * 2 instead of x * 3.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static int scale = 3;
static long calls;
volatile long bad_answers;

/* Zero for every x the workers use; a real function so the compiler keeps it and its name. */
static NOINLINE int offset(int x) { return x >> 20; }

/* Counting calls gives compute a side effect, so the compiler cannot hoist it out of loops as pure. */
NOINLINE int compute(int x) {
  calls++;
  return x * 2 + offset(x);
}

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    for (int i = 0; i < 1000; i++) {
      int r = compute(i);
      if (r != i * 2 && r != i * 3 && r != i * 3 + 1) bad_answers++;
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 8;
  if (argc > 2) scale = atoi(argv[2]); /* written at run time, so the compiler keeps the variable */
  pthread_t t[64];
  for (int i = 0; i < threads && i < 64; i++) pthread_create(&t[i], NULL, worker, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 0;; n++) {
    printf("tick %ld %d bad %ld scale %d\n", n, compute(7), bad_answers, scale);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
