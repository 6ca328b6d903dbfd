/*
 * Live fix for demo/server.c: an order of exactly BULK_MIN items was charged full price.
 *
 * What was wrong: quote() tested `qty > bulk_min`, but the policy is "BULK_MIN items or more".
 * The fix is the one-character change `>` -> `>=`; the rest of quote() is unchanged.
 *
 *   graft build fix.c --target ./server && graft apply $(pidof server) fix.graft
 */
#include <stddef.h>
#include <stdio.h> /* snprintf, bound to the server's libc */

/* The server's statics, bound to the running process (not copies: the counter keeps counting). */
extern long bulk_min, bulk_pct, quotes_served;

/* Replaces the server's quote(). */
int quote(char *out, size_t size, long qty, long unit_cents) {
  long n = __atomic_add_fetch(&quotes_served, 1, __ATOMIC_RELAXED);
  long pct = qty >= bulk_min ? bulk_pct : 0; /* was: qty > bulk_min */
  long subtotal = qty * unit_cents;
  long total = subtotal - subtotal * pct / 100;
  return snprintf(out, size, "OK #%ld qty=%ld unit=%ld.%02ld discount=%ld%% total=%ld.%02ld\n", n, qty,
                  unit_cents / 100, unit_cents % 100, pct, total / 100, total % 100);
}
