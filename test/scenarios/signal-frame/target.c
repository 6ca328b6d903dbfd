/*
 * A thread whose stack holds an address strictly inside compute()'s 2-byte entry sled, as a signal
 * frame would when a signal interrupted the thread between the two 1-byte NOPs: sigreturn would
 * resume there. `holder` keeps that word on its stack while it sleeps. argv[1] = "hold" starts it.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static long calls;

__attribute__((noinline)) int compute(int x) {
  calls++;
  return x * 2;
}

static void *holder(void *arg) {
  (void)arg;
  volatile uintptr_t frame[4];
  frame[0] = (uintptr_t)&compute + 1; /* the second NOP of the entry sled */
  for (;;) pause();
  return (void *)frame[0];
}

int main(int argc, char **argv) {
  pthread_t t;
  if (argc > 1 && strcmp(argv[1], "hold") == 0) pthread_create(&t, NULL, holder, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 0;; n++) {
    printf("tick %ld %d\n", n, compute(7));
    usleep(20000);
  }
}
