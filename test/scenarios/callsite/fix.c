/* A patch that replaces compute_alt: its answers land in x4. */
int compute_alt(int x) { return x * 4; }
