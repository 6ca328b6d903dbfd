/*
 * A tiny price-quote service for the graft demo: 127.0.0.1 only, a thread per connection, one line
 * per request.
 *
 *   PRICE <qty> <unit_cents>  ->  OK #<n> qty=<qty> unit=<d.cc> discount=<pct>% total=<d.cc>
 *   QUIT                      ->  closes the connection
 *
 * Pricing policy (read once at startup): orders of BULK_MIN items or more get BULK_PCT percent off.
 * Defaults 10 items and 10 %, overridable through the environment.
 *
 * The bug: quote() compares with `>` instead of `>=`, so an order of exactly BULK_MIN items pays
 * full price (PRICE 10 500 answers total=50.00 instead of 45.00).
 *
 * Build it patchable:   gcc -O2 $(graft cflags --only) -pthread -o server server.c
 * Prints "listening on PORT" once the socket accepts connections (the port is chosen by the OS).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

/* Configuration, read from the environment at startup (so the compiler cannot fold it). */
static long bulk_min = 10;
static long bulk_pct = 10;

/* Requests answered so far, by every connection thread. */
static long quotes_served;

/*
 * Prices an order and formats the answer into out. Returns the length written.
 * BUG: `qty > bulk_min` — the discount starts one item too late.
 */
NOINLINE int quote(char *out, size_t size, long qty, long unit_cents) {
  long n = __atomic_add_fetch(&quotes_served, 1, __ATOMIC_RELAXED);
  long pct = qty > bulk_min ? bulk_pct : 0;
  long subtotal = qty * unit_cents;
  long total = subtotal - subtotal * pct / 100;
  return snprintf(out, size, "OK #%ld qty=%ld unit=%ld.%02ld discount=%ld%% total=%ld.%02ld\n", n, qty,
                  unit_cents / 100, unit_cents % 100, pct, total / 100, total % 100);
}

/* Writes all of buf, retrying short writes and signals. */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

/* Answers one request line (without its newline) into out. */
static int answer(char *out, size_t size, const char *line) {
  long qty, unit;
  char extra;
  if (strcmp(line, "QUIT") == 0) return -1;
  if (sscanf(line, "PRICE %ld %ld %c", &qty, &unit, &extra) == 2) {
    if (qty < 0 || unit < 0 || qty > 1000000 || unit > 100000000)
      return snprintf(out, size, "ERR out of range\n");
    return quote(out, size, qty, unit);
  }
  return snprintf(out, size, "ERR usage: PRICE <qty> <unit_cents> | QUIT\n");
}

static void *connection(void *arg) {
  int fd = (int)(long)arg;
  char in[1024], out[256];
  size_t have = 0;
  for (;;) {
    ssize_t r = read(fd, in + have, sizeof in - 1 - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    have += (size_t)r;
    char *start = in, *nl;
    int quit = 0;
    while (!quit && (nl = memchr(start, '\n', have - (size_t)(start - in))) != NULL) {
      *nl = '\0';
      if (nl > start && nl[-1] == '\r') nl[-1] = '\0';
      int len = answer(out, sizeof out, start);
      if (len < 0 || write_all(fd, out, (size_t)len) < 0) quit = 1;
      start = nl + 1;
    }
    if (quit) break;
    have -= (size_t)(start - in);
    memmove(in, start, have);
    if (have == sizeof in - 1) break; /* a line longer than the buffer: drop the client */
  }
  close(fd);
  return NULL;
}

static long env_long(const char *name, long fallback) {
  const char *v = getenv(name);
  return v != NULL && *v != '\0' ? strtol(v, NULL, 10) : fallback;
}

int main(void) {
  bulk_min = env_long("BULK_MIN", bulk_min);
  bulk_pct = env_long("BULK_PCT", bulk_pct);
  signal(SIGPIPE, SIG_IGN);
  /* Demo only: under Yama ptrace_scope=1 a non-root graft may attach only to processes that allow it
   * (what crash handlers do). Root, or ptrace_scope=0, needs nothing. */
  if (getenv("GRAFT_DEMO_ALLOW_PTRACE") != NULL) prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);

  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(ls, 64) < 0 ||
      getsockname(ls, (struct sockaddr *)&addr, &len) < 0) {
    perror("server");
    return 1;
  }
  printf("listening on %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  for (;;) {
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      perror("accept");
      return 1;
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, connection, (void *)(long)fd) != 0) close(fd);
    pthread_attr_destroy(&attr);
  }
}
