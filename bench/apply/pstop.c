/*
 * bench:apply peer "raw ptrace floor" (research/peer-measurements.md §3, mode 0): one
 * stop-write-resume of every thread with nothing else — no journal, no checks, no thread-creation
 * handling, no care for threads inside the bytes written. Not a safe patcher; a lower bound.
 *
 *   pstop PID ADDR:HEXBYTES [ADDR:HEXBYTES …]
 *
 * Lists /proc/PID/task and PTRACE_SEIZEs every thread (outside the window), then t0; PTRACE_INTERRUPT
 * all; waitpid(__WALL) all; t1; pwrite each write to /proc/PID/mem in order; t2; PTRACE_DETACH all
 * (a signal-delivery stop's signal is handed back); t3. Prints "t0 t1 t2 t3 threads" in
 * CLOCK_MONOTONIC nanoseconds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_WRITES 16

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: pstop PID ADDR:HEX...\n");
    return 2;
  }
  int pid = atoi(argv[1]);
  struct {
    unsigned long long addr;
    unsigned char bytes[32];
    size_t len;
  } writes[MAX_WRITES];
  int nw = 0;
  for (int i = 2; i < argc && nw < MAX_WRITES; i++, nw++) {
    char *colon = strchr(argv[i], ':');
    if (colon == NULL) return 2;
    writes[nw].addr = strtoull(argv[i], NULL, 0);
    size_t hl = strlen(colon + 1);
    writes[nw].len = hl / 2;
    if (writes[nw].len > sizeof writes[nw].bytes) return 2;
    for (size_t k = 0; k < writes[nw].len; k++) {
      unsigned v;
      sscanf(colon + 1 + 2 * k, "%2x", &v);
      writes[nw].bytes[k] = (unsigned char)v;
    }
  }

  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", pid);
  int mem = open(path, O_RDWR);
  if (mem < 0) {
    perror(path);
    return 1;
  }
  int tids[MAX_THREADS], sig[MAX_THREADS], n = 0;
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *d = opendir(path);
  if (d == NULL) {
    perror(path);
    return 1;
  }
  for (struct dirent *e; (e = readdir(d)) != NULL && n < MAX_THREADS;)
    if (e->d_name[0] != '.') tids[n++] = atoi(e->d_name);
  closedir(d);
  for (int i = 0; i < n; i++) {
    if (ptrace(PTRACE_SEIZE, tids[i], 0, 0) != 0) {
      fprintf(stderr, "seize %d: %s\n", tids[i], strerror(errno));
      for (int k = 0; k < i; k++) ptrace(PTRACE_DETACH, tids[k], 0, 0); /* never interrupted: not stopped */
      return 1;
    }
    sig[i] = 0;
  }

  uint64_t t0 = now_ns();
  for (int i = 0; i < n; i++) ptrace(PTRACE_INTERRUPT, tids[i], 0, 0);
  for (int i = 0; i < n; i++) {
    int st;
    if (waitpid(tids[i], &st, __WALL) == tids[i] && WIFSTOPPED(st) && (st >> 16) == 0) {
      /* A signal-delivery stop (not PTRACE_EVENT_STOP): hand the signal back on detach. */
      sig[i] = WSTOPSIG(st);
    }
  }
  uint64_t t1 = now_ns();
  int failed = 0;
  for (int w = 0; w < nw; w++)
    if (pwrite(mem, writes[w].bytes, writes[w].len, (off_t)writes[w].addr) != (ssize_t)writes[w].len) failed = 1;
  uint64_t t2 = now_ns();
  for (int i = 0; i < n; i++) ptrace(PTRACE_DETACH, tids[i], 0, sig[i]);
  uint64_t t3 = now_ns();
  printf("%llu %llu %llu %llu %d\n", (unsigned long long)t0, (unsigned long long)t1, (unsigned long long)t2,
         (unsigned long long)t3, n);
  if (failed) fprintf(stderr, "pwrite failed\n");
  return failed;
}
