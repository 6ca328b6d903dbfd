/*
 * Target of the hardening scenarios: the crash-recovery workload (workers sort compute()'s answers
 * into old x * 2, new x * 3 or bad; main prints "tick <n> <compute(7)> bad <b> old <o> new <w>"
 * every 20 ms), started in one of the modes that make graft refuse or check something:
 *   plain          nothing special
 *   seccomp-kill   a seccomp filter that kills the process on mmap(PROT_EXEC)
 *   seccomp-errno  a seccomp filter that fails mmap(PROT_EXEC) with EPERM
 *   seccomp-wx     systemd's MemoryDenyWriteExecute filter: mmap(PROT_WRITE|PROT_EXEC) and
 *                  mprotect(PROT_EXEC) fail with EPERM (graft needs neither)
 *   mdwe           prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) (prints "mdwe unsupported" and exits 3
 *                  on kernels before 6.3)
 *   vfork          a helper thread vfork()s; the child waits in pause() sharing the memory
 *   clonevm        a clone(CLONE_VM) child (not a thread) runs compute() in a loop on the same memory
 *   munmap-later   on SIGUSR1, installs a filter that kills the process on munmap (prints "filtered")
 * The first line is "mode <name> ready".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static int scale = 3;
static long calls;
volatile long bad_answers;

static NOINLINE int offset(int x) { return x >> 20; }

NOINLINE int compute(int x) {
  calls++;
  return x * 2 + offset(x);
}

static struct {
  volatile long old_answers, new_answers;
  char pad[48];
} counts[65];

static void *worker(void *arg) {
  long k = (long)arg;
  for (;;) {
    for (int i = 1; i <= 1000; i++) {
      int r = compute(i);
      if (r == i * 2) counts[k].old_answers++;
      else if (r == i * 3) counts[k].new_answers++;
      else bad_answers++;
    }
  }
  return NULL;
}

#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define ARG_LO(n) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[n]))

static void install(struct sock_filter *f, unsigned short len) {
  struct sock_fprog prog = {len, f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) {
    printf("seccomp failed: %s\n", strerror(errno));
    exit(2);
  }
}

/* Any mmap with PROT_EXEC gets `action`; everything else is allowed. */
static void seccomp_exec(unsigned action) {
  struct sock_filter f[] = {
      LOAD(arch),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      LOAD(nr),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
      ARG_LO(2),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, action),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  install(f, sizeof f / sizeof f[0]);
}

/* systemd's MemoryDenyWriteExecute=yes (seccomp-util.c): W|X mmaps and exec mprotects fail. */
static void seccomp_wx(void) {
  struct sock_filter f[] = {
      LOAD(arch),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      LOAD(nr),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 4),
      ARG_LO(2),
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 4, 5),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW), /* not reached */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 0, 3),
      ARG_LO(2),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  install(f, sizeof f / sizeof f[0]);
}

static volatile sig_atomic_t filter_munmap;
static void on_usr1(int sig) { (void)sig; filter_munmap = 1; }

static void seccomp_munmap(void) {
  struct sock_filter f[] = {
      LOAD(arch),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      LOAD(nr),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_munmap, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  install(f, sizeof f / sizeof f[0]);
}

static void *vforker(void *arg) {
  (void)arg;
  if (vfork() == 0) {
    syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL); /* dies with the test's target */
    for (;;) syscall(SYS_pause); /* shares the parent's memory until it execs, which it never does */
  }
  return NULL;
}

static char clone_stack[1 << 16] __attribute__((aligned(16)));

static int sharer(void *arg) {
  (void)arg;
  syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
  for (;;) worker((void *)64);
  return 0;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  const char *mode = argc > 2 ? argv[2] : "plain";
  if (threads > 64) threads = 64;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(mode, "seccomp-kill")) seccomp_exec(SECCOMP_RET_KILL_PROCESS);
  else if (!strcmp(mode, "seccomp-errno")) seccomp_exec(SECCOMP_RET_ERRNO | EPERM);
  else if (!strcmp(mode, "seccomp-wx")) seccomp_wx();
  else if (!strcmp(mode, "mdwe") && prctl(65 /* PR_SET_MDWE */, 1 /* REFUSE_EXEC_GAIN */, 0, 0, 0) != 0) {
    printf("mdwe unsupported: %s\n", strerror(errno));
    return 3;
  }
  pthread_t t[64];
  for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  if (!strcmp(mode, "vfork")) {
    pthread_t v;
    pthread_create(&v, NULL, vforker, NULL);
  } else if (!strcmp(mode, "clonevm")) {
    clone(sharer, clone_stack + sizeof clone_stack, CLONE_VM | SIGCHLD, NULL);
  }
  if (!strcmp(mode, "munmap-later")) signal(SIGUSR1, on_usr1);
  printf("mode %s ready\n", mode);
  for (long n = 0;; n++) {
    if (filter_munmap == 1) {
      seccomp_munmap();
      filter_munmap = 2;
      printf("filtered\n");
    }
    long o = 0, w = 0;
    for (int i = 0; i < threads; i++) o += counts[i].old_answers, w += counts[i].new_answers;
    printf("tick %ld %d bad %ld old %ld new %ld scale %d\n", n, compute(7), bad_answers, o, w, scale);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
