import { closeSync, openSync, writeSync } from "node:fs";
import type { Command } from "commander";
import { GraftError } from "../../core/errors.js";
import { buildTraceReport } from "../../live/trace-report.js";
import { runTrace } from "../../live/trace-run.js";
import { attachTrace, detachLeftTrace } from "../../live/trace-session.js";
import { traceUsdt } from "../../live/usdt-trace.js";
import { reapStarted, resumeStarted, startStopped } from "../../process/start-stopped.js";
import { hasInvariantTsc, tscClock } from "../../process/tsc.js";
import { printResult, toJson } from "../output.js";
import { parsePid } from "../parse-pid.js";
import {
  chromeTraceChunks,
  renderTraceSummary,
  renderUsdtSummary,
  traceJsonLines,
  traceTextLines,
  type UsdtView,
  usdtChromeChunks,
  usdtJsonLines,
  usdtTextLines,
} from "../render-trace.js";

interface TraceCliOptions {
  filter: string[];
  notrace: string[];
  args: string[];
  usdt: string[];
  depth?: string;
  duration?: string;
  threads: boolean;
  format: string;
  output?: string;
  bufferSize: string;
  maxThreads: string;
  prefault: boolean;
  detach: boolean;
  json: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function parseSize(text: string): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(text);
  if (m === null) throw new GraftError("USAGE", `"${text}" is not a size (e.g. 4M)`);
  const unit = { "": 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  const bytes = Number(m[1]) * unit;
  if (bytes < 4096 || bytes > 1 << 30 || (bytes & (bytes - 1)) !== 0) {
    throw new GraftError("USAGE", `--buffer-size must be a power of two between 4K and 1G, not ${text}`);
  }
  return bytes;
}

function positive(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!Number.isFinite(v) || v <= 0)
    throw new GraftError("USAGE", `${what} must be a positive number, not ${text}`);
  return v;
}

/** Write chunks to a file (or stdout when `path` is undefined), batched. */
function writeChunks(path: string | undefined, chunks: Iterable<string>): void {
  const fd = path === undefined ? 1 : openSync(path, "w");
  try {
    let batch: string[] = [];
    let size = 0;
    const flush = () => {
      const buf = Buffer.from(batch.join(""));
      let done = 0;
      while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
      batch = [];
      size = 0;
    };
    for (const c of chunks) {
      batch.push(c);
      size += c.length;
      if (size > 1 << 20) flush();
    }
    flush();
  } finally {
    if (path !== undefined) closeSync(fd);
  }
}

/** --usdt: trap-based probe tracing (live/usdt-trace.ts), then the chosen rendering. */
async function traceProbes(
  pid: number,
  started: boolean,
  opts: TraceCliOptions,
  duration: number | undefined,
  shouldStop: () => boolean,
): Promise<void> {
  const originNs = process.hrtime.bigint();
  let result: Awaited<ReturnType<typeof traceUsdt>>;
  try {
    result = await traceUsdt(pid, opts.usdt, {
      ...(duration === undefined ? {} : { durationMs: duration * 1000 }),
      shouldStop,
      onArmed: (probes) => {
        process.stderr.write(
          `graft: tracing ${probes.length} USDT probe site(s) of pid ${pid}${duration === undefined ? "; Ctrl-C to stop" : ""}\n`,
        );
        if (started) resumeStarted(pid);
      },
    });
  } catch (e) {
    if (started) process.kill(pid, "SIGKILL");
    throw e;
  }
  const view: UsdtView = { pid, probes: result.probes, events: result.events, originNs };
  if (opts.json) {
    process.stdout.write(
      `${toJson({ pid, end: result.end, probes: result.probes, hits: result.events.length, events: result.events })}\n`,
    );
    return;
  }
  const trace =
    opts.format === "text"
      ? usdtTextLines(view)
      : opts.format === "json"
        ? usdtJsonLines(view)
        : opts.format === "chrome"
          ? usdtChromeChunks(view)
          : undefined;
  if (trace !== undefined) writeChunks(opts.output, trace);
  const summary = renderUsdtSummary(view);
  if (opts.output === undefined && (opts.format === "json" || opts.format === "chrome"))
    process.stderr.write(summary);
  else process.stdout.write(summary);
}

export function registerTrace(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("trace")
    .summary("trace function calls of a running process (or a command) through its patch sites")
    .description(
      "Hook every traceable function (sled, fentry, hotpatch or overwrite site) of a process's main executable into a runtime\n" +
        "graft generates and maps into it, record each call's entry and exit (time, thread, depth) in memory\n" +
        "shared with graft, and print a call tree with durations and a summary. Ctrl-C (or --duration, or the\n" +
        "process exiting) stops; every site then gets its original bytes back and the process runs on.\n" +
        "With `-- CMD ARGS…` the command is started stopped, hooked before it runs, then let go.",
    )
    .argument("[pid...]", "the process to trace (or give a command after --)")
    .option("-F, --filter <glob>", "hook only functions matching (repeatable)", collect, [])
    .option("-N, --notrace <glob>", "never hook functions matching (repeatable)", collect, [])
    .option(
      "--args <glob>",
      "also record the first six integer/pointer arguments of these functions",
      collect,
      [],
    )
    .option(
      "--usdt <provider:name>",
      "record hits of these USDT probes with their arguments instead (repeatable, globs)",
      collect,
      [],
    )
    .option("--depth <n>", "record calls at most this deep (1 = outermost traced calls)")
    .option("--duration <seconds>", "stop after this long")
    .option("--threads", "add a per-thread table to the summary", false)
    .option(
      "--format <format>",
      "text (call tree), json (JSON lines), chrome (trace event JSON), summary",
      "text",
    )
    .option("-o, --output <file>", "write the trace there instead of stdout")
    .option("--buffer-size <bytes>", "event buffer per thread, a power of two (e.g. 64M)", "16M")
    .option("--max-threads <n>", "threads traced at once, a power of two", "64")
    .option("--prefault", "allocate every event buffer at attach (no page faults while tracing)", false)
    .option(
      "--detach",
      "take out the hooks a graft trace left in PID when it was killed before detaching",
      false,
    )
    .option("--json", "print the summary, losses and detach result as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft trace $(pidof server)                      call tree until Ctrl-C, then a summary
  graft trace $(pidof server) -F 'handle_*' --duration 5 --format summary
  graft trace --format chrome -o t.json -- ./server --port 8080    open t.json in Perfetto
  graft trace $(pidof server) --args parse_header --depth 2
  graft trace $(pidof server) --format json -o calls.jsonl
  graft trace $(pidof postgres) --usdt 'postgresql:query__*' --duration 10
  graft trace --detach $(pidof server)             after a graft trace was killed (see graft status)

With -- CMD, graft exits with the command's exit status (128 + N when signal N ended it), once
the command has exited while traced.`,
    )
    .action((operands: string[], opts: TraceCliOptions) =>
      run(async () => {
        const dash = process.argv.indexOf("--");
        const command = dash >= 0 ? process.argv.slice(dash + 1) : [];
        const pidText = command.length > 0 ? undefined : operands[0];
        if (command.length === 0 && operands.length > 1) {
          throw new GraftError("USAGE", "give one PID, or put the command after --");
        }
        if (!["text", "json", "chrome", "summary"].includes(opts.format)) {
          throw new GraftError("USAGE", `--format must be text, json, chrome or summary, not ${opts.format}`);
        }
        if (command.length === 0 && pidText === undefined) {
          throw new GraftError("USAGE", "give a PID, or a command after --");
        }
        if (opts.detach) {
          if (command.length > 0) throw new GraftError("USAGE", "--detach takes a PID, not a command");
          const left = detachLeftTrace(parsePid(pidText!));
          printResult(left, opts.json, (r) =>
            r.targetExited
              ? `graft: the process has exited; the trace journal of graft pid ${r.by.pid} is removed\n`
              : `graft: detached the trace graft pid ${r.by.pid} left (attached ${r.by.at}, ${r.functions} function(s)): ${r.sitesRestored} hook(s) restored, ${r.returnAddressesRestored} return address(es) put back, runtime ${r.unmapped ? "unmapped" : `kept mapped (${r.keptBecause})`}\n`,
          );
          return;
        }
        const ringBytes = parseSize(opts.bufferSize);
        const depth = positive(opts.depth, "--depth");
        const maxThreads = Number(opts.maxThreads);
        if (
          !Number.isInteger(maxThreads) ||
          maxThreads < 1 ||
          maxThreads > 4096 ||
          (maxThreads & (maxThreads - 1)) !== 0
        ) {
          throw new GraftError(
            "USAGE",
            `--max-threads must be a power of two up to 4096, not ${opts.maxThreads}`,
          );
        }
        const duration = positive(opts.duration, "--duration");
        const pid = command.length > 0 ? startStopped(command) : parsePid(pidText!);
        let stop = false;
        const onSignal = () => {
          stop = true;
        };
        process.on("SIGINT", onSignal);
        process.on("SIGTERM", onSignal);
        if (opts.usdt.length > 0) {
          try {
            await traceProbes(pid, command.length > 0, opts, duration, () => stop);
          } finally {
            process.off("SIGINT", onSignal);
            process.off("SIGTERM", onSignal);
          }
          return;
        }
        try {
          let session: ReturnType<typeof attachTrace>;
          try {
            session = attachTrace(pid, {
              include: opts.filter,
              exclude: opts.notrace,
              args: opts.args,
              ringBytes,
              slots: maxThreads,
              prefault: opts.prefault,
              ...(depth === undefined ? {} : { maxDepth: Math.floor(depth) }),
            });
          } catch (e) {
            if (command.length > 0) process.kill(pid, "SIGKILL");
            throw e;
          }
          const kinds = [...new Set(session.functions.map((f) => f.kind))].join("/");
          process.stderr.write(
            `graft: tracing ${session.functions.length} function(s) of pid ${pid} (${kinds} sites)${duration === undefined ? "; Ctrl-C to stop" : ""}\n`,
          );
          for (const s of session.skipped)
            process.stderr.write(`graft: not traced: ${s.name}: ${s.reason}\n`);
          if (!hasInvariantTsc())
            process.stderr.write("graft: warning: no invariant TSC; durations may be off\n");
          if (command.length > 0) resumeStarted(pid);
          const end = await runTrace(session, {
            ...(duration === undefined ? {} : { durationMs: duration * 1000 }),
            shouldStop: () => stop,
          });
          const detached = session.detach();
          // A command graft started: its own exit status becomes graft's (as with strace or time).
          const status = command.length > 0 && end === "exited" ? reapStarted(pid) : undefined;
          const exit =
            status?.kind === "exited"
              ? { code: status.code }
              : status?.kind === "signaled"
                ? { signal: status.signal }
                : undefined;
          const clock = tscClock(session.clockStart, session.clockEnd ?? session.clockStart);
          const report = buildTraceReport({
            pid,
            functions: session.functions,
            forEachRecord: (visit) => session.forEachRecord(visit),
            ticksPerNs: clock.ticksPerNs,
            durationNs: Number((session.clockEnd?.ns ?? session.clockStart.ns) - session.clockStart.ns),
            losses: session.losses(),
            trees: opts.format !== "summary",
          });
          process.stderr.write(
            `graft: ${end === "exited" ? `process exited${exit === undefined ? "" : "code" in exit ? ` with status ${exit.code}` : ` on signal ${exit.signal}`}` : "detached"}: ${detached.sitesRestored} site(s) restored, ${detached.returnAddressesRestored} return address(es) put back, runtime ${detached.unmapped ? "unmapped" : `kept mapped (${detached.keptBecause})`}\n`,
          );
          if (opts.json) {
            process.stdout.write(
              `${toJson({
                pid,
                end,
                ...(exit === undefined ? {} : { exit }),
                functions: session.functions,
                runtime: { code: session.codeBase, data: session.dataBase },
                calls: report.calls,
                threads: report.threads.map((t) => ({ tid: t.tid, calls: t.calls })),
                summary: report.summary,
                losses: report.losses,
                unmatchedExits: report.unmatchedExits,
                detach: detached,
              })}\n`,
            );
          }
          const trace =
            opts.format === "text"
              ? traceTextLines(report)
              : opts.format === "json"
                ? traceJsonLines(report)
                : opts.format === "chrome"
                  ? chromeTraceChunks(report)
                  : undefined;
          if (trace !== undefined && !(opts.json && opts.output === undefined))
            writeChunks(opts.output, trace);
          if (!opts.json) {
            const summary = renderTraceSummary(report, opts.threads);
            // Keep stdout parseable when it carries JSON.
            if (opts.output === undefined && (opts.format === "json" || opts.format === "chrome")) {
              process.stderr.write(summary);
            } else process.stdout.write(summary);
          }
          if (exit !== undefined) process.exitCode = "code" in exit ? exit.code : 128 + exit.signal;
        } finally {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
        }
      }),
    );
}
