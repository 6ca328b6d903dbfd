/*
 * Kernel oracle for graft's seccomp reading and cBPF interpreter: `seccomp-probe FILTER CALL PROT`
 * maps a page, installs FILTER (one or two seccomp programs), prints "ready" and waits for SIGUSR1;
 * then makes CALL (mmap or mprotect of that page) with PROT and prints "result ok" or
 * "result errno N" — or is killed by the filter and prints nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define ARCH_CHECK                                                                                   \
  LOAD(arch), BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),                          \
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

static void install(struct sock_filter *f, unsigned short len) {
  struct sock_fprog prog = {len, f};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    printf("seccomp failed: %s\n", strerror(errno));
    exit(2);
  }
}

static void exec_filter(unsigned action) {
  struct sock_filter f[] = {
      ARCH_CHECK,
      LOAD(nr),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
      LOAD(args[2]),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, action),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  install(f, sizeof f / sizeof f[0]);
}

static void wx_filter(void) {
  struct sock_filter f[] = {
      ARCH_CHECK,
      LOAD(nr),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 4),
      LOAD(args[2]),
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 4, 5),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 0, 3),
      LOAD(args[2]),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  install(f, sizeof f / sizeof f[0]);
}

/* Scratch memory, ALU, TAX/TXA and JGT: mmap with prot & 7 > 5 gets E2BIG; mprotect with
 * (prot << 1) & 8 (PROT_EXEC) gets EACCES; everything else is allowed. */
static void alu_filter(void) {
  struct sock_filter f[] = {
      ARCH_CHECK,
      LOAD(nr),
      BPF_STMT(BPF_ST, 0),
      LOAD(args[2]),
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 7),
      BPF_STMT(BPF_MISC | BPF_TAX, 0),
      BPF_STMT(BPF_LD | BPF_MEM, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
      BPF_STMT(BPF_MISC | BPF_TXA, 0),
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, 5, 0, 6),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | E2BIG),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 0, 4),
      BPF_STMT(BPF_MISC | BPF_TXA, 0),
      BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 1),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC << 1, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  install(f, sizeof f / sizeof f[0]);
}

/* The rest of the instruction set: LD IMM/LEN, DIV/SUB/ADD/RSH, AND X, JGE, JEQ X, JA, RET A. mmap:
 * 8 / prot - 1 >= 1 (prot 1) returns ERRNO(7) computed in A; mprotect: prot & (64 >> 4 = 4 = PROT_EXEC)
 * gets EACCES. */
static void misc_filter(void) {
  struct sock_filter f[] = {
      ARCH_CHECK,
      LOAD(nr),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 9),
      LOAD(args[2]),
      BPF_STMT(BPF_MISC | BPF_TAX, 0),
      BPF_STMT(BPF_LD | BPF_IMM, 8),
      BPF_STMT(BPF_ALU | BPF_DIV | BPF_X, 0),
      BPF_STMT(BPF_ALU | BPF_SUB | BPF_K, 1),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 1, 0, 2),
      BPF_STMT(BPF_ALU | BPF_ADD | BPF_K, SECCOMP_RET_ERRNO),
      BPF_STMT(BPF_RET | BPF_A, 0),
      BPF_STMT(BPF_JMP | BPF_JA, 8),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 0, 7),
      BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
      BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
      BPF_STMT(BPF_MISC | BPF_TAX, 0),
      LOAD(args[2]),
      BPF_STMT(BPF_ALU | BPF_AND | BPF_X, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_X, 0, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  install(f, sizeof f / sizeof f[0]);
}

static void on_usr1(int sig) { (void)sig; }

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  int prot = atoi(argv[3]);
  void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  signal(SIGUSR1, on_usr1);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  const char *f = argv[1];
  if (!strcmp(f, "exec-kill")) exec_filter(SECCOMP_RET_KILL_PROCESS);
  else if (!strcmp(f, "exec-errno")) exec_filter(SECCOMP_RET_ERRNO | EPERM);
  else if (!strcmp(f, "wx")) wx_filter();
  else if (!strcmp(f, "alu")) alu_filter();
  else if (!strcmp(f, "misc")) misc_filter();
  else if (!strcmp(f, "stack")) wx_filter(), alu_filter();
  printf("ready\n");
  pause();
  long r = !strcmp(argv[2], "mmap")
               ? (long)syscall(SYS_mmap, NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
               : (long)syscall(SYS_mprotect, page, 4096, prot);
  if (r == -1) printf("result errno %d\n", errno);
  else printf("result ok\n");
  return 0;
}
