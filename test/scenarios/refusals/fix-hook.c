/* A fix for hook(), which a build without patching flags leaves too short to redirect. */
extern long calls;
void hook(void) { calls++; }
