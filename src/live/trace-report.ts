/**
 * From a trace session's records to what people read: a summary per function (calls, total and self
 * time) computed in one streaming pass, and — only when an output needs them — per-thread call trees
 * with durations. Pure: no I/O.
 */
import { RECORD_KIND } from "../arch/trace-layout.js";
import type { RecordVisitor, TracedFunction, TraceLosses } from "./trace-session.js";

/** One call. Times are nanoseconds since tracing began. */
export interface CallNode {
  readonly fid: number;
  readonly name: string;
  readonly tid: number;
  readonly start: number;
  /** Undefined while the call had not returned when tracing ended. */
  end: number | undefined;
  /** The frame was left without returning (longjmp), or its exit record was lost. */
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
  /** Empty unless trees were asked for. */
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

interface Frame {
  readonly fid: number;
  readonly start: number;
  child: number;
  readonly node: CallNode | undefined;
}

interface ThreadState {
  readonly tid: number;
  readonly stack: Frame[];
  readonly roots: CallNode[];
  /** Open calls per function (recursion: only the outermost adds to the total). */
  readonly open: Int32Array;
  calls: number;
}

/** Build the summary (and with `trees`, the call trees) from one session's records. */
export function buildTraceReport(input: {
  pid: number;
  functions: readonly TracedFunction[];
  forEachRecord: (visit: RecordVisitor) => number;
  ticksPerNs: number;
  durationNs: number;
  losses: TraceLosses;
  trees: boolean;
}): TraceReport {
  const n = input.functions.length;
  const calls = new Float64Array(n);
  const total = new Float64Array(n);
  const self = new Float64Array(n);
  const max = new Float64Array(n);
  const threads = new Map<number, ThreadState>();
  let unmatchedExits = 0;
  const close = (t: ThreadState, f: Frame, end: number, unwound: boolean): void => {
    const d = end - f.start;
    t.open[f.fid]!--;
    if (t.open[f.fid] === 0) total[f.fid]! += d;
    self[f.fid]! += d - f.child;
    if (d > max[f.fid]!) max[f.fid] = d;
    const parent = t.stack.at(-1);
    if (parent !== undefined) parent.child += d;
    if (f.node !== undefined) {
      f.node.end = end;
      f.node.unwound = unwound;
    }
  };
  const corrupt = input.forEachRecord((tid, ticks, kind, fid, _depth, args) => {
    let t = threads.get(tid);
    if (t === undefined) {
      t = { tid, stack: [], roots: [], open: new Int32Array(n), calls: 0 };
      threads.set(tid, t);
    }
    const ns = ticks / input.ticksPerNs;
    if (kind === RECORD_KIND.entry) {
      const node: CallNode | undefined = input.trees
        ? {
            fid,
            name: input.functions[fid]!.name,
            tid,
            start: ns,
            end: undefined,
            unwound: false,
            depth: t.stack.length,
            args,
            children: [],
          }
        : undefined;
      if (node !== undefined) (t.stack.at(-1)?.node?.children ?? t.roots).push(node);
      t.stack.push({ fid, start: ns, child: 0, node });
      t.open[fid]!++;
      calls[fid]!++;
      t.calls++;
      return;
    }
    let at = t.stack.length - 1;
    while (at >= 0 && t.stack[at]!.fid !== fid) at--;
    if (at < 0) {
      unmatchedExits++;
      return;
    }
    // Calls above the match lost their exit record: close them here too.
    while (t.stack.length > at + 1) close(t, t.stack.pop()!, ns, true);
    close(t, t.stack.pop()!, ns, kind === RECORD_KIND.unwound);
  });
  const summary: FunctionSummary[] = [];
  for (let fid = 0; fid < n; fid++) {
    if (calls[fid] === 0) continue;
    summary.push({
      name: input.functions[fid]!.name,
      calls: calls[fid]!,
      totalNs: total[fid]!,
      selfNs: self[fid]!,
      maxNs: max[fid]!,
    });
  }
  summary.sort((a, b) => b.totalNs - a.totalNs || b.calls - a.calls);
  const list = [...threads.values()].sort((a, b) => a.tid - b.tid);
  return {
    pid: input.pid,
    functions: n,
    threads: list.map((t) => ({ tid: t.tid, roots: t.roots, calls: t.calls })),
    summary,
    calls: list.reduce((s, t) => s + t.calls, 0),
    losses: { ...input.losses, corrupt: input.losses.corrupt + corrupt },
    unmatchedExits,
    durationNs: input.durationNs,
  };
}
