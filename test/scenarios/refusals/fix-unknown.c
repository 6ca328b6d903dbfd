/* A fix that calls a function neither the target nor its libraries define. */
extern long calls;
int no_such_function_anywhere(int x);
int compute(int x) {
  calls++;
  return no_such_function_anywhere(x);
}
