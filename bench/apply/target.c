/*
 * bench:apply target: test/scenarios/basic/target.c (same compute/offset/scale/calls, so the same
 * fix.c applies) plus a load mode and a gap detector thread.
 *
 *   target THREADS SCALE MODE [WATCH_PID]
 *     MODE = busy (workers spin, as in the basic scenario) | light (bursts of 20,000 calls, then sleep 1 ms)
 *     WATCH_PID: exit as soon as that process is gone (the bench, so that a bench killed with
 *     SIGKILL — tsx does that to a child that does not answer Ctrl-C within 60 ms — leaves no
 *     spinning target behind).
 *
 * Threads: main (prints a tick every 20 ms, asleep otherwise) + 1 gap detector + THREADS workers.
 *
 * The gap detector spins on clock_gettime(CLOCK_MONOTONIC) — the clock Node's process.hrtime
 * reads — and logs every gap > 20 µs between consecutive readings as {start_ns, gap_ns, rq_ns} into
 * a pre-faulted in-memory ring whose address main prints once ("log 0x… cap N"); the bench reads it
 * through /proc/PID/mem, so logging costs the detector no system call and the target no new pages.
 * rq_ns is how much of the gap the thread spent runnable but waiting for a CPU (the run_delay field
 * of /proc/thread-self/schedstat, read only after a gap): gap − rq is the time it could not run at
 * all — stopped by a tracer, or asleep — which tells a ptrace stop from ordinary preemption when
 * the CPUs are saturated.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static int scale = 3;
static long calls;
volatile long bad_answers;

/* Zero for every x the workers use; a real function so the compiler keeps it and its name. */
static NOINLINE int offset(int x) { return x >> 20; }

/* Counting calls gives compute a side effect, so the compiler cannot hoist it out of loops as pure. */
NOINLINE int compute(int x) {
  calls++;
  return x * 2 + offset(x);
}

static int light;

static void *worker(void *arg) {
  (void)arg;
  struct timespec pause = {0, 1000 * 1000};
  for (;;) {
    for (int rep = 0; rep < (light ? 20 : 1); rep++) {
      for (int i = 0; i < 1000; i++) {
        int r = compute(i);
        if (r != i * 2 && r != i * 3 && r != i * 3 + 1) bad_answers++;
      }
    }
    if (light) nanosleep(&pause, NULL);
  }
  return NULL;
}

#define GAP_NS 20000ull
#define LOG_CAP (256u * 1024u)

struct gap {
  uint64_t start_ns, gap_ns, rq_ns;
};
struct gap_log {
  volatile uint64_t count; /* records written; record k sits at g[k % cap] */
  uint64_t cap;
  uint64_t pad[1];
  struct gap g[];
};
static struct gap_log *gaps;

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* run_delay (ns spent runnable, waiting for a CPU) of the calling thread, 0 if unavailable. */
static uint64_t run_delay(int fd) {
  char buf[128];
  if (fd < 0) return 0;
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = 0;
  unsigned long long exec_ns, delay_ns;
  if (sscanf(buf, "%llu %llu", &exec_ns, &delay_ns) != 2) return 0;
  return delay_ns;
}

static void *detector(void *arg) {
  (void)arg;
  int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  uint64_t rq_prev = run_delay(fd);
  uint64_t prev = now_ns();
  for (;;) {
    uint64_t t = now_ns();
    if (t - prev > GAP_NS) {
      uint64_t rq = run_delay(fd);
      uint64_t k = gaps->count;
      gaps->g[k % LOG_CAP] = (struct gap){prev, t - prev, rq - rq_prev};
      __atomic_store_n(&gaps->count, k + 1, __ATOMIC_RELEASE);
      rq_prev = rq;
      t = now_ns(); /* the schedstat read is not a gap */
    }
    prev = t;
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 8;
  if (argc > 2) scale = atoi(argv[2]); /* written at run time, so the compiler keeps the variable */
  light = argc > 3 && strcmp(argv[3], "light") == 0;
  pid_t watch = argc > 4 ? (pid_t)atoi(argv[4]) : 0;
  size_t bytes = sizeof(struct gap_log) + LOG_CAP * sizeof(struct gap);
  gaps = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (gaps == MAP_FAILED) return 1;
  memset(gaps, 0, bytes); /* pre-fault: logging must not grow Private_Dirty during the bench */
  gaps->cap = LOG_CAP;
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("log %p cap %u mode %s\n", (void *)gaps, LOG_CAP, light ? "light" : "busy");
  pthread_t d, t[64];
  pthread_create(&d, NULL, detector, NULL);
  for (int i = 0; i < threads && i < 64; i++) pthread_create(&t[i], NULL, worker, NULL);
  for (long n = 0;; n++) {
    if (watch > 0 && kill(watch, 0) != 0 && errno == ESRCH) _exit(0);
    printf("tick %ld %d bad %ld scale %d\n", n, compute(7), bad_answers, scale);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
