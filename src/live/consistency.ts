/**
 * How much of the process must be out of the way before a function is redirected:
 * `default` — no thread strictly inside the bytes rewritten (DESIGN.md protocol step 4);
 * `quiescent` — also no thread executing, or with a frame on its stack in, a function being
 * replaced (unwound: frame pointers, then .eh_frame CFI), retried with backoff until a deadline.
 */
export type Consistency = "default" | "quiescent";
