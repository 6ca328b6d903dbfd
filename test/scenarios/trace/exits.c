/*
 * Exits the way it is told after a few traced calls: `exits N` returns N from main, `exits signal`
 * dies of SIGTERM. graft trace -- CMD must pass the command's end on as its own exit status.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) int step(int x) { return x * 3 + 1; }

int main(int argc, char **argv) {
  volatile int sum = 0;
  for (int i = 0; i < 100; i++) sum += step(i);
  if (argc > 1 && strcmp(argv[1], "signal") == 0) raise(SIGTERM);
  return argc > 1 ? atoi(argv[1]) : 0;
}
