/*
 * Fleet target: one of many copies. main calls compute() every 50 ms and checks the answer itself
 * (old x*2 or new x*3, anything else counts as bad); it prints "tick <n> <compute(7)> bad <count>".
 * Sleeping most of the time, so fifty of them cost the machine nothing.
 */
#include <stdio.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))
static long calls;
volatile long bad;

NOINLINE int compute(int x) {
  calls++;
  return x * 2;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 0;; n++) {
    int r = compute(7);
    if (r != 14 && r != 21) bad++;
    printf("tick %ld %d bad %ld\n", n, r, bad);
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
