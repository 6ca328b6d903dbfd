/*
 * Target of the crash-recovery scenarios: 8 worker threads call compute() in a tight loop and sort
 * every answer into old (x * 2), new (x * 3) or bad (anything else, which must never happen — not
 * even when graft dies halfway through changing the process); main prints
 * "tick <n> <compute(7)> bad <b> old <o> new <w> scale <s>" every 20 ms.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

static int scale = 3;
static long calls;
volatile long bad_answers;

/* Zero for every x used here; static, so the fix calls a static function of the target. */
static NOINLINE int offset(int x) { return x >> 20; }

/* Counting calls gives compute a side effect, so the compiler cannot hoist it out of loops as pure. */
NOINLINE int compute(int x) {
  calls++;
  return x * 2 + offset(x);
}

/* Per-thread counters, one cache line each, so counting does not serialise the workers. */
static struct {
  volatile long old_answers, new_answers;
  char pad[48];
} counts[64];

static void *worker(void *arg) {
  long k = (long)arg;
  for (;;) {
    for (int i = 1; i <= 1000; i++) { /* not 0: 0 * 2 == 0 * 3 */
      int r = compute(i);
      if (r == i * 2) counts[k].old_answers++;
      else if (r == i * 3) counts[k].new_answers++;
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
    long o = 0, w = 0;
    for (int i = 0; i < threads; i++) o += counts[i].old_answers, w += counts[i].new_answers;
    printf("tick %ld %d bad %ld old %ld new %ld scale %d\n", n, compute(7), bad_answers, o, w, scale);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
