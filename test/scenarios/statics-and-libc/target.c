/*
 * Live-patch target whose fix needs the target's statics and libc: 8 worker threads call compute()
 * and count answers that are neither old (x * 2) nor new (x * 3) in bad_answers; main prints
 * "tick <n> <compute(7)> bad <b> scale <s> desc <describe()>" every 20 ms.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

static int scale = 3;
static long calls;
/* Static data only the fix reads; main's strcpy at start keeps the compiler from folding it away. */
static char label[16];
volatile long bad_answers;

static NOINLINE int offset(int x) { return x >> 20; }

/* Counting calls gives compute a side effect, so the compiler cannot hoist it out of loops as pure. */
NOINLINE int compute(int x) {
  calls++;
  return x * 2 + offset(x);
}

/* The word main prints after "desc"; the fix makes it "<label>:<length of label>:<calls>". */
NOINLINE void describe(char *buf, size_t size) {
  if (size > 3) memcpy(buf, "old", 4);
}

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    for (int i = 1; i <= 1000; i++) {
      int r = compute(i);
      if (r != i * 2 && r != i * 3) bad_answers++;
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 8;
  if (argc > 2) scale = atoi(argv[2]); /* written at run time, so the compiler keeps the variable */
  strcpy(label, argc > 3 ? argv[3] : "graft");
  pthread_t t[64];
  for (int i = 0; i < threads && i < 64; i++) pthread_create(&t[i], NULL, worker, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 0;; n++) {
    char desc[64] = "";
    describe(desc, sizeof desc);
    printf("tick %ld %d bad %ld scale %d desc %s\n", n, compute(7), bad_answers, scale, desc);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
