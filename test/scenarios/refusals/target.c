/*
 * Target of the refusal scenarios (the basic target plus hook()): 8 worker threads call compute() in
 * a tight loop and count answers that are neither old nor new in bad_answers; main prints
 * "tick <n> <compute(7)> bad <b> scale <s>" every 20 ms and calls hook().
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

/* Empty: a bare `ret`, too short for any patch site in a build without patching flags. */
NOINLINE void hook(void) {}

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    for (int i = 1; i <= 1000; i++) {
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
    hook();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
