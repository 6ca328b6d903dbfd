/* The fix: compute() multiplies by the target's static `scale` (3) and adds its static offset() (0). */
extern int scale;
extern long calls;
int offset(int x);
int compute(int x) {
  calls++;
  return x * scale + offset(x);
}
