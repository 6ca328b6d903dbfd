/* The fix: compute() triples. */
extern long calls;
int compute(int x) {
  calls++;
  return x * 3;
}
