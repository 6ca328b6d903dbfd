/*
 * Fleet target: one of many copies. main calls compute() every 50 ms and checks the answer itself
 * (old x*2 or new x*3, anything else counts as bad); it prints "tick <n> <compute(7)> bad <count>".
 * Sleeping most of the time, so fifty of them cost the machine nothing (argv[1]: the interval in
 * ms, default 50; bench/fleet runs a thousand at 1000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))
static long calls;
volatile long bad;

NOINLINE int compute(int x) {
  calls++;
  return x * 2;
}

int main(int argc, char **argv) {
  long ms = argc > 1 ? atol(argv[1]) : 50;
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 0;; n++) {
    int r = compute(7);
    if (r != 14 && r != 21) bad++;
    printf("tick %ld %d bad %ld\n", n, r, bad);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
