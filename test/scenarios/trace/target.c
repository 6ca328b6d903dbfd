/*
 * A known call graph for graft trace. Each round (one per SIGUSR1, or one at start with argument
 * `now`) runs, in this order:
 *   - 4 threads of worker(): 1000 × a(); a() calls b() and leaf(); b() calls leaf() twice
 *     → per round: worker 4, a 4000, b 4000, leaf 12000 (+1 below)
 *   - fib(15): 1973 calls, nested 15 deep (recursion)
 *   - signal_test(): raise(SIGUSR2) → on_usr2() → handler_work() → leaf() (a signal handler)
 *   - jumper(): setjmp, then deep(5) … deep(0) longjmp back (6 frames left without returning)
 *   - forker(): fork(); the child returns from forker() — through frames its parent entered while
 *     traced — and exits; the parent waits for it (1 call, seen in the parent)
 * and prints `round N result R` (R the same with or without tracing), then waits for the next.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#define KEEP __attribute__((noinline, noipa))
#else
#define KEEP __attribute__((noinline))
#endif

static volatile sig_atomic_t requested;
static volatile long sink;

KEEP long leaf(long x) { return x + 1; }
KEEP long b(long x) { return leaf(x) + leaf(x + 1); }
KEEP long a(long x) { return b(x) * 2 + leaf(x); }

KEEP void *worker(void *arg) {
  long s = 0;
  for (long i = 0; i < 1000; i++) s += a(i + (long)arg);
  return (void *)s;
}

KEEP long fib(long n) {
  if (n < 2) return n;
  long r1 = fib(n - 1);
  __asm__ volatile("" : "+r"(r1));
  long r2 = fib(n - 2);
  __asm__ volatile("" : "+r"(r2));
  return r1 + r2;
}

KEEP void handler_work(void) { sink += leaf(41); }
KEEP void on_usr2(int sig) { (void)sig; handler_work(); }
KEEP void signal_test(void) { raise(SIGUSR2); }

static jmp_buf env;
KEEP void deep(int n) {
  if (n == 0) longjmp(env, 1);
  deep(n - 1);
  sink++;
}
KEEP long jumper(void) {
  if (setjmp(env) == 0) {
    deep(5);
    return -1;
  }
  return 7;
}

KEEP long forker(void) {
  pid_t pid = fork();
  if (pid == 0) return 0;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? 1 + WEXITSTATUS(status) : -1;
}

KEEP long round_once(void) {
  pthread_t t[4];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  long total = 0;
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(t[i], &r);
    total += (long)r;
  }
  total += fib(15);
  signal_test();
  total += jumper();
  long f = forker();
  if (f == 0) _exit(0); /* the child */
  return total + f;
}

static void on_usr1(int sig) {
  (void)sig;
  requested++;
}

int main(int argc, char **argv) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  int once = argc > 1 && strcmp(argv[1], "now") == 0;
  if (once) requested = 1;
  printf("ready %d\n", (int)getpid());
  int done = 0;
  for (;;) {
    while (done < requested) {
      done++;
      printf("round %d result %ld\n", done, round_once());
    }
    if (once) return 0;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
}
