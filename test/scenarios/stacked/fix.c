/* Patch 1: compute() returns x * 3 (the target's static `scale`). */
extern int scale;
extern long calls;
int offset(int x);
int compute(int x) {
  calls++;
  return x * scale + offset(x);
}
