/*
 * C++ exceptions thrown through traced calls, in three threads: caught two frames up (outer), with a
 * destructor running on the way (middle's Guard: a cleanup landing pad and _Unwind_Resume), caught
 * and rethrown (relay: _Unwind_Resume_or_Rethrow) and caught again (top). Per work(700): outer,
 * top, relay 700 calls each, middle and leaf 1400, note 1400 (Guard) + 100 (relay's catch), and 100
 * throws on each path. The hooked functions are extern "C" so that -F can name them plainly; C++
 * exceptions pass through them all the same.
 *   ./exceptions          three threads once, then `result R0 R1 R2 noted N` and exit 0
 *   ./exceptions loop     work(700) again and again, `result R` after each, until killed
 *   ./exceptions fork     fork_a → fork_b forks; the child throws through the traced frames it
 *                         inherited and catches in main; the parent prints how the child ended
 */
#include <atomic>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

#define KEEP __attribute__((noinline))

static std::atomic<long> noted{0};

extern "C" {
KEEP void note(long x) { noted += x; }
}

struct Guard {
  long v;
  ~Guard() { note(v); }
};

extern "C" {
KEEP long leaf(long x) {
  if (x % 7 == 3) throw std::runtime_error("leaf");
  return x + 1;
}
KEEP long middle(long x) {
  Guard g{x};
  return leaf(x) * 2;
}
KEEP long outer(long x) {
  try {
    return middle(x);
  } catch (const std::runtime_error &) {
    return -1;
  }
}
KEEP long relay(long x) {
  try {
    return middle(x);
  } catch (...) {
    note(1);
    throw;
  }
}
KEEP long top(long x) {
  try {
    return relay(x);
  } catch (const std::exception &) {
    return -2;
  }
}
KEEP void fork_b(void) {
  std::fflush(stdout);
  pid_t child = fork();
  if (child == 0) throw std::runtime_error("child");
  int status = 0;
  waitpid(child, &status, 0);
  if (WIFSIGNALED(status)) std::printf("child killed by signal %d\n", WTERMSIG(status));
  else std::printf("child exit %d\n", WEXITSTATUS(status));
}
KEEP void fork_a(void) { fork_b(); }
KEEP long work(long n) {
  long s = 0;
  for (long i = 0; i < n; i++) s += outer(i) + top(i);
  return s;
}
}

int main(int argc, char **argv) {
  const long n = 700;
  if (argc > 1 && std::strcmp(argv[1], "loop") == 0) {
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;) {
      std::printf("result %ld\n", work(n));
      std::fflush(stdout);
      usleep(2000);
    }
  }
  if (argc > 1 && std::strcmp(argv[1], "fork") == 0) {
    try {
      fork_a();
    } catch (const std::exception &) {
      std::printf("caught in the child\n");
      std::fflush(stdout);
      _exit(0);
    }
    return 0;
  }
  long r1 = 0, r2 = 0;
  std::thread t1([&] { r1 = work(n); });
  std::thread t2([&] { r2 = work(n); });
  long r0 = work(n);
  t1.join();
  t2.join();
  std::printf("result %ld %ld %ld noted %ld\n", r0, r1, r2, noted.load());
  return 0;
}
