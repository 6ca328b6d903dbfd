/**
 * From a trace session's records to what people read: per-thread call trees with durations, and a
 * summary per function (calls, total and self time). Pure: no I/O.
 */
import type { TscClock } from "../process/tsc.js";
import type { TracedFunction, TraceLosses, TraceRecord } from "./trace-session.js";

/** One call. Times are nanoseconds since tracing began. */
export interface CallNode {
  readonly fid: number;
  readonly name: string;
  readonly tid: number;
  readonly start: number;
  /** Undefined while the call had not returned when tracing ended. */
  end: number | undefined;
  /** The frame was left without returning (longjmp); `end` is when that was noticed. */
  unwound: boolean;
  readonly depth: number;
  readonly args: readonly bigint[] | undefined;
  readonly children: CallNode[];
}

export interface FunctionSummary {
  readonly name: string;
  readonly calls: number;
  /** Inclusive time of finished calls (a recursive call inside another is not counted twice). */
  readonly totalNs: number;
  /** Time in the function itself: inclusive time minus that of its traced callees. */
  readonly selfNs: number;
  readonly maxNs: number;
}

export interface ThreadTrace {
  readonly tid: number;
  readonly roots: readonly CallNode[];
  readonly calls: number;
}

export interface TraceReport {
  readonly pid: number;
  readonly functions: number;
  readonly threads: readonly ThreadTrace[];
  readonly summary: readonly FunctionSummary[];
  readonly calls: number;
  readonly losses: TraceLosses;
  /** Exits with no matching entry (their entry was lost), ignored. */
  readonly unmatchedExits: number;
  readonly durationNs: number;
}

/** Build call trees and the summary from the records of one session. */
export function buildTraceReport(input: {
  pid: number;
  functions: readonly TracedFunction[];
  records: readonly TraceRecord[];
  clock: TscClock;
  /** Monotonic ns when tracing began (times are relative to it). */
  originNs: number;
  durationNs: number;
  losses: TraceLosses;
}): TraceReport {
  const byTid = new Map<number, TraceRecord[]>();
  for (const r of input.records) {
    const list = byTid.get(r.tid);
    if (list === undefined) byTid.set(r.tid, [r]);
    else list.push(r);
  }
  let unmatchedExits = 0;
  const threads: ThreadTrace[] = [];
  const rows = input.functions.map((f) => ({ name: f.name, calls: 0, totalNs: 0, selfNs: 0, maxNs: 0 }));
  let calls = 0;
  for (const [tid, records] of [...byTid].sort((a, b) => a[0] - b[0])) {
    const roots: CallNode[] = [];
    const stack: CallNode[] = [];
    let threadCalls = 0;
    for (const r of records) {
      const ns = input.clock.toNs(r.tsc) - input.originNs;
      if (r.kind === "entry") {
        const node: CallNode = {
          fid: r.fid,
          name: input.functions[r.fid]!.name,
          tid,
          start: ns,
          end: undefined,
          unwound: false,
          depth: stack.length,
          args: r.args,
          children: [],
        };
        (stack.at(-1)?.children ?? roots).push(node);
        stack.push(node);
        threadCalls++;
        continue;
      }
      let at = stack.length - 1;
      while (at >= 0 && stack[at]!.fid !== r.fid) at--;
      if (at < 0) {
        unmatchedExits++;
        continue;
      }
      // Calls above the match lost their exit (ring full): close them here.
      while (stack.length > at) {
        const n = stack.pop()!;
        n.end = ns;
        n.unwound = r.kind === "unwound" || stack.length > at;
      }
    }
    calls += threadCalls;
    threads.push({ tid, roots, calls: threadCalls });
    const visit = (n: CallNode, active: Set<number>): void => {
      const row = rows[n.fid]!;
      row.calls++;
      if (n.end !== undefined) {
        const d = n.end - n.start;
        if (!active.has(n.fid)) row.totalNs += d;
        let child = 0;
        for (const c of n.children) if (c.end !== undefined) child += c.end - c.start;
        row.selfNs += d - child;
        row.maxNs = Math.max(row.maxNs, d);
      }
      const recursive = active.has(n.fid);
      if (!recursive) active.add(n.fid);
      for (const c of n.children) visit(c, active);
      if (!recursive) active.delete(n.fid);
    };
    for (const root of roots) visit(root, new Set());
  }
  return {
    pid: input.pid,
    functions: input.functions.length,
    threads,
    summary: rows.filter((r) => r.calls > 0).sort((a, b) => b.totalNs - a.totalNs || b.calls - a.calls),
    calls,
    losses: input.losses,
    unmatchedExits,
    durationNs: input.durationNs,
  };
}
