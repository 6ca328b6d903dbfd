/* A second fix with the same effect and other code, so it is another patch (another id). */
extern int scale;
extern long calls;
int offset(int x);
int compute(int x) {
  calls += 1;
  return offset(x) + scale * x;
}
