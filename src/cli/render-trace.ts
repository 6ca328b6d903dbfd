import type { CallNode, TraceReport } from "../live/trace-report.js";

/** A duration the way uftrace prints one: `1.234 us`, `12.345 ms`, `1.234  s`. */
export function formatDuration(ns: number): string {
  if (ns < 1e3) return `${ns.toFixed(3)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(3)} us`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(3)} ms`;
  return `${(ns / 1e9).toFixed(3)}  s`;
}

function argText(args: readonly bigint[] | undefined): string {
  if (args === undefined) return "";
  return args.map((a) => (a < 0x10000n ? a.toString() : `0x${a.toString(16)}`)).join(", ");
}

/** Visit every call of a tree in order, without recursion (traces can be deep). */
function* walk(roots: readonly CallNode[]): Generator<CallNode> {
  const stack: CallNode[] = [...roots].reverse();
  while (stack.length > 0) {
    const n = stack.pop()!;
    yield n;
    for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]!);
  }
}

/**
 * The call tree as text, like `uftrace replay`: one line per leaf call with its duration, `{` … `}`
 * around calls with callees, threads interleaved in time order, each line tagged with its thread.
 */
export function* traceTextLines(report: TraceReport): Generator<string> {
  yield "# DURATION     TID     FUNCTION\n";
  const lines: { at: number; seq: number; text: string }[] = [];
  let seq = 0;
  for (const t of report.threads) {
    const tag = `[${String(t.tid).padStart(6)}]`;
    for (const n of walk(t.roots)) {
      const indent = "  ".repeat(n.depth);
      const dur = n.end === undefined ? "" : formatDuration(n.end - n.start);
      const call = `${n.name}(${argText(n.args)})`;
      if (n.children.length === 0) {
        const note =
          n.end === undefined ? " /* not returned */" : n.unwound ? " /* left by longjmp or throw */" : "";
        lines.push({
          at: n.start,
          seq: seq++,
          text: `${dur.padStart(10)} ${tag} | ${indent}${call};${note}\n`,
        });
      } else {
        lines.push({ at: n.start, seq: seq++, text: `${"".padStart(10)} ${tag} | ${indent}${call} {\n` });
        const close =
          n.end === undefined
            ? `${"".padStart(10)} ${tag} | ${indent}} /* ${n.name}: not returned */\n`
            : `${dur.padStart(10)} ${tag} | ${indent}} /* ${n.name}${n.unwound ? ": left by longjmp or throw" : ""} */\n`;
        lines.push({ at: n.end ?? Number.POSITIVE_INFINITY, seq: seq++, text: close });
      }
    }
  }
  lines.sort((a, b) => a.at - b.at || a.seq - b.seq);
  for (const l of lines) yield l.text;
}

/**
 * One JSON object per event (JSON lines), each thread's events in the order they happened (entry,
 * the callees' events, exit), threads one after the other.
 */
export function* traceJsonLines(report: TraceReport): Generator<string> {
  for (const t of report.threads) {
    const stack: { node: CallNode; next: number }[] = [];
    const enter = (n: CallNode): string => {
      const entry: Record<string, unknown> = {
        type: "entry",
        ts_ns: Math.round(n.start),
        tid: t.tid,
        function: n.name,
        depth: n.depth,
      };
      if (n.args !== undefined) entry.args = n.args.map((a) => `0x${a.toString(16)}`);
      return `${JSON.stringify(entry)}\n`;
    };
    for (const root of t.roots) {
      yield enter(root);
      stack.push({ node: root, next: 0 });
      while (stack.length > 0) {
        const top = stack.at(-1)!;
        const child = top.node.children[top.next++];
        if (child !== undefined) {
          yield enter(child);
          stack.push({ node: child, next: 0 });
          continue;
        }
        stack.pop();
        const n = top.node;
        if (n.end === undefined) continue;
        yield `${JSON.stringify({
          type: n.unwound ? "unwound" : "exit",
          ts_ns: Math.round(n.end),
          tid: t.tid,
          function: n.name,
          depth: n.depth,
          duration_ns: Math.round(n.end - n.start),
        })}\n`;
      }
    }
  }
}

/**
 * Chrome trace event format (`{"traceEvents":[…]}`, opens in Perfetto and about:tracing): one
 * complete event (`ph: "X"`, `ts`/`dur` in µs) per finished call, `ph: "B"` for calls still running.
 */
export function* chromeTraceChunks(report: TraceReport): Generator<string> {
  yield `{"displayTimeUnit":"ns","otherData":${JSON.stringify({ pid: report.pid, losses: report.losses })},"traceEvents":[\n`;
  let first = true;
  for (const t of report.threads) {
    const meta = {
      name: "thread_name",
      ph: "M",
      pid: report.pid,
      tid: t.tid,
      args: { name: `thread ${t.tid}` },
    };
    yield `${first ? "" : ",\n"}${JSON.stringify(meta)}`;
    first = false;
    for (const n of walk(t.roots)) {
      const event: Record<string, unknown> = {
        name: n.name,
        cat: "function",
        ph: n.end === undefined ? "B" : "X",
        ts: Number((n.start / 1e3).toFixed(3)),
        pid: report.pid,
        tid: t.tid,
      };
      if (n.end !== undefined) event.dur = Number(((n.end - n.start) / 1e3).toFixed(3));
      if (n.args !== undefined || n.unwound) {
        event.args = {
          ...(n.args === undefined ? {} : { args: n.args.map((a) => `0x${a.toString(16)}`) }),
          ...(n.unwound ? { unwound: true } : {}),
        };
      }
      yield `,\n${JSON.stringify(event)}`;
    }
  }
  yield "\n]}\n";
}

/** The summary table: calls, total and self time per function; per thread with `threads`. */
export function renderTraceSummary(report: TraceReport, threads: boolean): string {
  let out = `\n# SUMMARY: ${report.calls} calls in ${report.threads.length} thread(s), ${report.functions} function(s) hooked, ${formatDuration(report.durationNs)} traced\n`;
  out += `${"CALLS".padStart(10)}  ${"TOTAL".padStart(12)}  ${"SELF".padStart(12)}  ${"AVG".padStart(12)}  FUNCTION\n`;
  for (const r of report.summary) {
    out += `${String(r.calls).padStart(10)}  ${formatDuration(r.totalNs).padStart(12)}  ${formatDuration(r.selfNs).padStart(12)}  ${formatDuration(r.calls === 0 ? 0 : r.totalNs / r.calls).padStart(12)}  ${r.name}\n`;
  }
  if (threads) {
    out += `\n${"TID".padStart(10)}  ${"CALLS".padStart(10)}\n`;
    for (const t of report.threads) out += `${String(t.tid).padStart(10)}  ${String(t.calls).padStart(10)}\n`;
  }
  const l = report.losses;
  const lost = l.ringFull + l.shadowFull + l.noSlot + l.corrupt;
  out +=
    lost === 0
      ? `# no events lost${l.unwound > 0 ? `; ${l.unwound} frame(s) left by longjmp or throw` : ""}\n`
      : `# LOST: ${l.ringFull} record(s) to full buffers (try --buffer-size), ${l.shadowFull} call(s) too deep, ${l.noSlot} call(s) with no thread slot, ${l.corrupt} corrupt\n`;
  return out;
}

/** USDT hits as text, JSON lines or Chrome instant events, and a count per probe. */
export interface UsdtView {
  readonly pid: number;
  readonly probes: readonly { provider: string; name: string; specs: readonly string[] }[];
  readonly events: readonly {
    ns: bigint;
    tid: number;
    probe: number;
    args: readonly (bigint | undefined)[];
  }[];
  readonly originNs: bigint;
}

const usdtArg = (a: bigint | undefined): string => (a === undefined ? "?" : a.toString());

export function* usdtTextLines(v: UsdtView): Generator<string> {
  yield "#     TIME     TID     PROBE\n";
  for (const e of v.events) {
    const p = v.probes[e.probe]!;
    yield `${formatDuration(Number(e.ns - v.originNs)).padStart(10)} [${String(e.tid).padStart(6)}] | ${p.provider}:${p.name}(${e.args.map(usdtArg).join(", ")})\n`;
  }
}

export function* usdtJsonLines(v: UsdtView): Generator<string> {
  for (const e of v.events) {
    const p = v.probes[e.probe]!;
    yield `${JSON.stringify({
      type: "usdt",
      ts_ns: Number(e.ns - v.originNs),
      tid: e.tid,
      provider: p.provider,
      name: p.name,
      args: e.args.map((a) => (a === undefined ? null : a.toString())),
    })}\n`;
  }
}

export function* usdtChromeChunks(v: UsdtView): Generator<string> {
  yield '{"displayTimeUnit":"ns","traceEvents":[\n';
  let first = true;
  for (const e of v.events) {
    const p = v.probes[e.probe]!;
    const event = {
      name: `${p.provider}:${p.name}`,
      cat: "usdt",
      ph: "i",
      s: "t",
      ts: Number(e.ns - v.originNs) / 1e3,
      pid: v.pid,
      tid: e.tid,
      args: Object.fromEntries(e.args.map((a, i) => [`arg${i + 1}`, usdtArg(a)])),
    };
    yield `${first ? "" : ",\n"}${JSON.stringify(event)}`;
    first = false;
  }
  yield "\n]}\n";
}

export function renderUsdtSummary(v: UsdtView): string {
  let out = `\n# SUMMARY: ${v.events.length} probe hit(s)\n${"HITS".padStart(10)}  PROBE\n`;
  v.probes.forEach((p, i) => {
    const hits = v.events.filter((e) => e.probe === i).length;
    out += `${String(hits).padStart(10)}  ${p.provider}:${p.name}  (${p.specs.join(" ")})\n`;
  });
  return out;
}
