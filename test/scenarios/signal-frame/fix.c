/* The fix: triple instead of double. */
extern long calls;
int compute(int x) {
  calls++;
  return x * 3;
}
