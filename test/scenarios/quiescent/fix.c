/* The fix: answer() triples; answer(0) still waits on FIFO A (through the target's block_on_a). */
void block_on_a(void);
int answer(int x) {
  if (x == 0) {
    block_on_a();
    return 0;
  }
  return x * 3;
}
