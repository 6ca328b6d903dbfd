/* Patch 2, built --after patch 1: compute() returns x * 4, and flavor() returns 2. */
extern int scale;
extern long calls;
int offset(int x);
int compute(int x) {
  calls++;
  return x * (scale + 1) + offset(x);
}
int flavor(void) {
  calls++;
  return 2;
}
