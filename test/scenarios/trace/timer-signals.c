/*
 * Signal handlers that make traced calls at any instruction: a 20 µs interval timer whose handler
 * calls leaf(), while the main loop calls work() → leaf() for a second. A handler that lands inside
 * the runtime's own entry (between taking a shadow entry and counting it) must not take that entry
 * over. Prints `done W` (W calls of work) and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#define KEEP __attribute__((noinline))

volatile long sink;

KEEP long leaf(long x) {
  sink += x;
  return x + 1;
}
KEEP long work(long x) { return leaf(x) * 2; }

static void on_alarm(int signal) {
  (void)signal;
  sink += leaf(3);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval every = {{0, 20}, {0, 20}};
  setitimer(ITIMER_REAL, &every, NULL);
  long calls = 0;
  for (double end = now() + 1.0; now() < end;)
    for (int i = 0; i < 1000; i++, calls++) sink += work(i);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  printf("done %ld\n", calls);
  return 0;
}
