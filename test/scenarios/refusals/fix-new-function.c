/* A fix defining a global function the target does not have: it would replace nothing. */
int compute_twice(int x) { return 2 * x; }
