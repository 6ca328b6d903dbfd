/**
 * Briefly running the calling thread under SCHED_FIFO. Each PTRACE_DETACH wakes a tracee, and on
 * a busy machine a woken thread preempts a normal-priority tracer until the next tick, so resuming
 * 9 threads took 4–12 ms here with 4 busy threads on 2 vCPUs (CONFIG_HZ=250 steps) and ~45 µs
 * under SCHED_FIFO (peer-measurements.md §3 saw the same: median 4 ms vs 63 µs). Only loops
 * that never wait for a tracee run boosted: a real-time tracer that polls can starve the very
 * threads it waits for (a SCHED_FIFO sched_yield loop made stops take 15–30 ms).
 */
import { getLibc } from "./libc.js";

const SCHED_FIFO = 1;
const param = new Int32Array(1);

/**
 * Switch the calling thread to SCHED_FIFO priority 1 and return a function that restores its
 * previous policy and priority. Without CAP_SYS_NICE (or an RLIMIT_RTPRIO allowance) nothing
 * changes and the returned function does nothing; `boosted` says which happened.
 */
export function boostToRealtime(): { readonly boosted: boolean; restore(): void } {
  const libc = getLibc();
  const policy = libc.schedGetScheduler(0);
  if (policy < 0 || policy === SCHED_FIFO || libc.schedGetParam(0, param) !== 0) {
    return { boosted: false, restore() {} };
  }
  const previous = new Int32Array(param);
  if (libc.schedSetScheduler(0, SCHED_FIFO, new Int32Array([1])) !== 0)
    return { boosted: false, restore() {} };
  return {
    boosted: true,
    restore() {
      libc.schedSetScheduler(0, policy, previous);
    },
  };
}
