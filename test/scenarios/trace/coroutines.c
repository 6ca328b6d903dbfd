/*
 * Two ucontext coroutines for graft trace, each switching to the other from inside traced calls,
 * so both stacks hold traced frames at once. Their stacks sit side by side (64 KiB each), the
 * closest two stacks usually come. main() → run() → swapcontext into body(0); each body runs
 * ROUNDS × step() → inner() → work(), and inner() switches to the other coroutine between two
 * work() calls while it is still running; every 50th step, jumper() longjmps out of three deep()
 * frames on the coroutine's own stack while the other coroutine is suspended in its traced frames.
 * Per run: run 1, body 2, step 2×ROUNDS, inner 2×ROUNDS, work 6×ROUNDS, jumper 2×ROUNDS/50,
 * deep 6×ROUNDS/50 (all unwound). Prints `coroutines result R` (the same with or without tracing).
 */
#include <setjmp.h>
#include <stdio.h>
#include <ucontext.h>

#if defined(__GNUC__) && !defined(__clang__)
#define KEEP __attribute__((noinline, noipa))
#else
#define KEEP __attribute__((noinline))
#endif

#define ROUNDS 500
#define STACK_BYTES 65536

static ucontext_t main_context, contexts[2];
static char stacks[2][STACK_BYTES] __attribute__((aligned(16)));
static volatile int done[2];
static long totals[2];
static jmp_buf jumps[2];

KEEP long work(long x) { return x * 3 + 1; }

KEEP void deep(int id, int n) {
  if (n == 0) longjmp(jumps[id], 1);
  deep(id, n - 1);
  __asm__ volatile("" ::: "memory"); /* not a tail call */
}

KEEP void jumper(int id) {
  if (setjmp(jumps[id]) == 0) deep(id, 2);
}

KEEP long inner(int id, long i) {
  long r = work(i);
  if (!done[1 - id]) swapcontext(&contexts[id], &contexts[1 - id]);
  if (i % 50 == 0) jumper(id);
  return r + work(i + 1);
}

KEEP long step(int id, long i) { return inner(id, i) + work(i + id); }

KEEP void body(int id) {
  long s = 0;
  for (long i = 0; i < ROUNDS; i++) s += step(id, i);
  totals[id] = s;
  done[id] = 1;
}

KEEP void run(void) {
  for (int id = 0; id < 2; id++) {
    getcontext(&contexts[id]);
    contexts[id].uc_stack.ss_sp = stacks[id];
    contexts[id].uc_stack.ss_size = STACK_BYTES;
    contexts[id].uc_link = &main_context;
    makecontext(&contexts[id], (void (*)(void))body, 1, id);
  }
  swapcontext(&main_context, &contexts[0]);
  /* body(0) ended first; body(1) is still suspended inside inner(): let it finish. */
  while (!done[1]) swapcontext(&main_context, &contexts[1]);
}

int main(void) {
  run();
  printf("coroutines result %ld %ld\n", totals[0], totals[1]);
  return 0;
}
