/*
 * Stress target: N worker threads (argv[1], default 16) call compute() in a tight loop, through a
 * caller that is on the stack when compute runs, and check every answer themselves: old (x * 2) and
 * new (x * 3) are right, anything else is counted as bad. main prints
 * "tick <n> <compute(7)> bad <b> calls <c>" every 20 ms; a crash ends the process.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

static long calls;
volatile long bad;
volatile long total;

NOINLINE int compute(int x) {
  calls++;
  return x * 2;
}

static NOINLINE int check(int x) {
  int r = compute(x);
  return r == x * 2 || r == x * 3;
}

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    for (int i = 0; i < 1000; i++)
      if (!check(i)) bad++;
    total++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 16;
  pthread_t t[64];
  for (int i = 0; i < threads && i < 64; i++) pthread_create(&t[i], NULL, worker, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 0;; n++) {
    printf("tick %ld %d bad %ld calls %ld\n", n, compute(7), bad, total);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
