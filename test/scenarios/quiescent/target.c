/*
 * Quiescence target: a worker thread alternates between waiting *inside* answer() (answer(0) blocks
 * in read() on FIFO A, two frames down) and waiting *outside* it (in read() on FIFO B); each byte
 * written to the FIFO it waits on moves it on. main prints "tick <n> <answer(7)> where <w>" every
 * 20 ms, w = 1 while the worker waits inside answer(), 2 outside.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
static int fd_a = -1, fd_b = -1;
volatile int where;

NOINLINE void block_on_a(void) {
  char c;
  where = 1;
  if (read(fd_a, &c, 1) < 0) where = -1;
}

NOINLINE int answer(int x) {
  if (x == 0) {
    block_on_a();
    return 0;
  }
  return x * 2;
}

static NOINLINE void wait_outside(void) {
  char c;
  where = 2;
  if (read(fd_b, &c, 1) < 0) where = -1;
}

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    answer(0);
    wait_outside();
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  /* O_RDWR: opening a FIFO this way never blocks, and reads block until the test writes a byte. */
  fd_a = open(argv[1], O_RDWR);
  fd_b = open(argv[2], O_RDWR);
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 0;; n++) {
    printf("tick %ld %d where %d\n", n, answer(7), where);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
