/*
 * Target for call-site changes. Worker threads loop over compute(i), sorting every answer into x2
 * (compute's own), x3 (compute_alt's), x4 (a patch's compute_alt) or bad (anything else, which must
 * never happen), and call log_event() once per answer, a logging call whose result nobody reads
 * (counted in logged). main prints
 *   "tick <n> <compute(7)> bad <b> x2 <n2> x3 <n3> x4 <n4> logged <l>"
 * every 20 ms; its own call of compute is apart from the workers' calls, so retargeting theirs
 * leaves the printed value alone.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

static long calls;
volatile long bad_answers;

/*
 * The factors are read from memory so that compute and compute_alt compile to the same instructions
 * but for one address, and so change the same registers: a call may be pointed from one to the other
 * even where gcc's -fipa-ra lets the caller keep values in the registers compute leaves alone.
 */
volatile int two = 2, three = 3;

static NOINLINE int offset(int x) { return x >> 20; }

/* Counting calls gives each function a side effect, so gcc neither folds nor hoists the calls. */
NOINLINE int compute(int x) {
  calls++;
  return x * two + offset(x);
}

/* An alternative implementation the workers' call can be pointed at. */
NOINLINE int compute_alt(int x) {
  calls++;
  return x * three + offset(x);
}

/* Per-thread counters, one cache line each: x2, x3, x4, logged. */
static struct {
  volatile long n[4];
  char pad[32];
} counts[64];

NOINLINE void log_event(long k) { counts[k].n[3]++; }

/* Never runs: a call site a test may damage with no thread ever executing it. */
NOINLINE void idle_path(long k) {
  log_event(k);
  log_event(k + 1);
}
void (*volatile idle_ptr)(long) = idle_path;

static void *worker(void *arg) {
  long k = (long)arg;
  for (;;) {
    for (int i = 1; i <= 1000; i++) {
      int r = compute(i);
      if (r == i * 2) counts[k].n[0]++;
      else if (r == i * 3) counts[k].n[1]++;
      else if (r == i * 4) counts[k].n[2]++;
      else bad_answers++;
      log_event(k);
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  if (threads > 64) threads = 64;
  pthread_t t[64];
  for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 0;; n++) {
    long s[4] = {0, 0, 0, 0};
    for (int i = 0; i < threads; i++)
      for (int j = 0; j < 4; j++) s[j] += counts[i].n[j];
    printf("tick %ld %d bad %ld x2 %ld x3 %ld x4 %ld logged %ld\n", n, compute(7), bad_answers, s[0], s[1], s[2], s[3]);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
