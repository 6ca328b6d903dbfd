/**
 * npm run demo — fix a bug in a running multi-threaded server without restarting it, then undo the fix.
 *
 * Builds demo/server.c (a price-quote service whose bulk discount starts one item too late) with the
 * flags `graft cflags` recommends, starts it detached, shows the wrong answer, builds demo/fix.c into a
 * patch, applies it to the live process (same PID, an open connection survives), shows the right answer,
 * then reverts and stops the server. Every answer is checked, so this is also a smoke test: exit 0 when
 * every step gave what it should, 1 with a one-line reason otherwise. Build products go to a temp dir.
 *
 *   npm run demo          (npm run build && tsx demo/run.ts)
 */
import { type SpawnSyncReturns, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from "node:fs";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(repoRoot, "dist/cli/main.js");
const serverSource = join(repoRoot, "demo/server.c");
const fixSource = join(repoRoot, "demo/fix.c");

/** The server's pricing policy (its defaults): orders of BULK_MIN items or more get BULK_PCT % off. */
const BULK_MIN = 10;
const BULK_PCT = 10;
const UNIT_CENTS = 500;

/** A step's answer was not what it should be: the demo stops with this one-line reason. */
class DemoFailure extends Error {}

function fail(reason: string): never {
  throw new DemoFailure(reason);
}

// ---------------------------------------------------------------------------------------------------
// Narration and timing

const demoStart = performance.now();
const stepTimes: { n: number; ms: number }[] = [];
let current: { n: number; start: number } | undefined;

function endStep(): void {
  if (current === undefined) return;
  const ms = performance.now() - current.start;
  stepTimes.push({ n: current.n, ms });
  say(`(${seconds(ms)})`);
  current = undefined;
}

function step(n: number, title: string): void {
  endStep();
  console.log(`\n[${n}] ${title}`);
  current = { n, start: performance.now() };
}

function say(line: string): void {
  console.log(`    ${line}`);
}

function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Paths as a reader would type them: repo files relative to the repo, build products bare. */
function pretty(arg: string, workDir: string): string {
  if (arg.startsWith(`${workDir}/`)) return relative(workDir, arg);
  if (arg.startsWith(`${repoRoot}/`)) return relative(repoRoot, arg);
  return arg;
}

// ---------------------------------------------------------------------------------------------------
// Running things

function run(cmd: string, args: readonly string[], cwd: string): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 30_000 });
  if (r.error !== undefined) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") fail(`${cmd} not found (hint: install it, e.g. apt-get install ${cmd})`);
    fail(`${cmd}: ${r.error.message}`);
  }
  return r;
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n");
  return lines[lines.length - 1] ?? "";
}

/** Runs the real CLI (node dist/cli/main.js) and returns its stdout; a non-zero exit fails the demo. */
function graft(args: readonly string[], workDir: string, opts: { echo?: boolean } = {}): string {
  if (opts.echo !== false) say(`$ graft ${args.map((a) => pretty(a, workDir)).join(" ")}`);
  const r = run(process.execPath, [cli, ...args], workDir);
  if (r.signal !== null) fail(`graft ${args[0]} was killed by ${r.signal}`);
  if (r.status !== 0) fail(`graft ${args[0]} exited with ${r.status}: ${lastLine(r.stderr || r.stdout)}`);
  return r.stdout;
}

function graftJson<T>(args: readonly string[], workDir: string): T {
  const out = graft([...args, "--json"], workDir, { echo: false });
  try {
    return JSON.parse(out) as T;
  } catch {
    return fail(`graft ${args[0]} --json printed something that is not JSON: ${lastLine(out)}`);
  }
}

/** Prints a command's output indented, as it came. */
function echoOutput(text: string): void {
  for (const line of text.trimEnd().split("\n")) say(`| ${line}`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------
// The server process, found and watched through /proc

/** Every PID whose executable is `exe` (what `pidof` does). */
function pidsOf(exe: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/exe`) === exe) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/** State letter and start time (clock ticks since boot) from /proc/PID/stat, or undefined once reaped. */
function procStat(pid: number): { state: string; startTime: string } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // Fields after "(comm)", which may itself hold spaces: state is field 3, starttime field 22 [proc(5)].
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { state: rest[0] ?? "?", startTime: rest[19] ?? "?" };
}

function isRunning(pid: number): boolean {
  const s = procStat(pid);
  return s !== undefined && s.state !== "Z" && s.state !== "X";
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

/** SIGTERM, then SIGKILL after 2 s. Checks the PID is still our server first (PIDs get reused). */
async function stopServer(pid: number, exe: string): Promise<string> {
  const ours = (): boolean => {
    try {
      return readlinkSync(`/proc/${pid}/exe`) === exe;
    } catch {
      return false;
    }
  };
  if (!ours() || !isRunning(pid)) return "already gone";
  process.kill(pid, "SIGTERM");
  if (await waitFor(() => !isRunning(pid), 2000)) return "stopped by SIGTERM";
  if (ours()) process.kill(pid, "SIGKILL");
  if (await waitFor(() => !isRunning(pid), 2000)) return "did not stop on SIGTERM, killed with SIGKILL";
  return "still running after SIGKILL";
}

// ---------------------------------------------------------------------------------------------------
// A line-protocol client

class Client {
  private buffered = "";
  private readonly lines: string[] = [];
  private waiter: { resolve: (line: string) => void; reject: (e: Error) => void } | undefined;
  private closedBecause: string | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffered += chunk;
      for (let nl = this.buffered.indexOf("\n"); nl >= 0; nl = this.buffered.indexOf("\n")) {
        this.lines.push(this.buffered.slice(0, nl));
        this.buffered = this.buffered.slice(nl + 1);
      }
      this.deliver();
    });
    socket.on("error", (e) => this.close(`connection error: ${e.message}`));
    socket.on("close", () => this.close("the server closed the connection"));
  }

  static connect(port: number): Promise<Client> {
    return new Promise((resolveConnect, rejectConnect) => {
      const socket = createConnection({ host: "127.0.0.1", port });
      socket.once("connect", () => resolveConnect(new Client(socket)));
      socket.once("error", (e) =>
        rejectConnect(new DemoFailure(`cannot connect to port ${port}: ${e.message}`)),
      );
    });
  }

  /** Sends one request line and waits (at most 5 s) for the answer line. */
  request(line: string): Promise<string> {
    if (this.closedBecause !== undefined) return Promise.reject(new DemoFailure(this.closedBecause));
    return new Promise((resolveAnswer, rejectAnswer) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        rejectAnswer(new DemoFailure(`no answer to "${line}" within 5 s`));
      }, 5000);
      this.waiter = {
        resolve: (answer) => {
          clearTimeout(timer);
          resolveAnswer(answer);
        },
        reject: (e) => {
          clearTimeout(timer);
          rejectAnswer(e);
        },
      };
      this.socket.write(`${line}\n`);
      this.deliver();
    });
  }

  close(reason = "closed by the demo"): void {
    if (this.closedBecause !== undefined) return;
    this.closedBecause = reason;
    this.socket.destroy();
    this.waiter?.reject(new DemoFailure(reason));
    this.waiter = undefined;
  }

  private deliver(): void {
    const line = this.lines.shift();
    if (line === undefined || this.waiter === undefined) {
      if (line !== undefined) this.lines.unshift(line);
      return;
    }
    const w = this.waiter;
    this.waiter = undefined;
    w.resolve(line);
  }
}

interface Quote {
  n: number;
  discountPct: number;
  total: string;
}

function parseQuote(answer: string): Quote {
  const m = /^OK #(\d+) qty=\d+ unit=\d+\.\d\d discount=(\d+)% total=(\d+\.\d\d)$/.exec(answer);
  if (m === null) return fail(`unexpected answer from the server: "${answer}"`);
  return { n: Number(m[1]), discountPct: Number(m[2]), total: m[3]! };
}

function money(cents: number): string {
  return `${Math.trunc(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;
}

/** What the policy says an order costs. */
function expectedTotal(qty: number, unitCents: number): string {
  const subtotal = qty * unitCents;
  return money(qty >= BULK_MIN ? subtotal - Math.trunc((subtotal * BULK_PCT) / 100) : subtotal);
}

/**
 * Asks for a price, prints request and answer, and checks the total: `want` "right" means the policy's
 * total, "buggy" means the full price the bug charges for exactly BULK_MIN items.
 */
async function ask(client: Client, qty: number, want: "right" | "buggy", note = ""): Promise<Quote> {
  const request = `PRICE ${qty} ${UNIT_CENTS}`;
  say(`> ${request}${note === "" ? "" : `   (${note})`}`);
  const answer = await client.request(request);
  const q = parseQuote(answer);
  const right = expectedTotal(qty, UNIT_CENTS);
  const isRight = q.total === right;
  let verdict: string;
  if (isRight) verdict = "right";
  else verdict = `WRONG: ${qty} items get ${BULK_PCT}% off, should be ${right}`;
  say(`< ${answer}   ${verdict}`);
  if (want === "right" && !isRight) fail(`"${request}" answered total=${q.total}, expected ${right}`);
  if (want === "buggy" && isRight) {
    fail(`"${request}" answered total=${q.total}: the original (buggy) code says ${money(qty * UNIT_CENTS)}`);
  }
  return q;
}

// ---------------------------------------------------------------------------------------------------
// The demo

interface CheckReport {
  functions: {
    name: string;
    address: string;
    size: string;
    verdict: { redirectable: boolean; best?: string };
  }[];
}
interface ApplyResult {
  patch: string;
  functions: { name: string; kind: string; address: string; replacement: string }[];
  pause: { stopNs: number; heldNs: number; resumeNs: number; windowNs: number };
}
interface StatusResult {
  patches: {
    id: string;
    source: string;
    sites: string;
    codeMapped: boolean;
    functions: { name: string; kind: string }[];
  }[];
}

function ptraceNote(): { env: Record<string, string>; note?: string } {
  const scopeFile = "/proc/sys/kernel/yama/ptrace_scope";
  const root = process.getuid?.() === 0;
  if (root || !existsSync(scopeFile)) return { env: {} };
  const scope = readFileSync(scopeFile, "utf8").trim();
  if (scope === "0") return { env: {} };
  if (scope === "1") {
    return {
      env: { GRAFT_DEMO_ALLOW_PTRACE: "1" },
      note: "Yama ptrace_scope=1 and not root: the server opts in to being traced (PR_SET_PTRACER)",
    };
  }
  return fail(`Yama ptrace_scope=${scope} forbids ptrace for non-root users (hint: run the demo as root)`);
}

async function demo(workDir: string, cleanup: Cleanup): Promise<void> {
  const serverBin = join(workDir, "server");
  const patchFile = join(workDir, "fix.graft");
  console.log("graft demo: fix a bug in a running server without restarting it");
  console.log(`(build products in ${workDir})`);

  step(1, "Build the server with the flags graft recommends");
  const flags = graft(["cflags", "--only"], workDir).trim().split(/\s+/);
  say(`  ${flags.join(" ")}`);
  const gccArgs = ["-O2", ...flags, "-pthread", "-o", serverBin, serverSource];
  say(`$ gcc ${gccArgs.map((a) => pretty(a, workDir)).join(" ")}`);
  const cc = run("gcc", gccArgs, workDir);
  if (cc.status !== 0) fail(`gcc failed: ${lastLine(cc.stderr)}`);

  step(2, "Start it in its own session, detached from this script (graft attaches with ptrace)");
  const ptrace = ptraceNote();
  if (ptrace.note !== undefined) say(ptrace.note);
  const logFile = join(workDir, "server.log");
  const log = openSync(logFile, "w");
  // setsid -f forks: the server is not a child of this Node process, just as a real service is not
  // a child of the operator's shell.
  const launcher = spawn("setsid", ["-f", serverBin], {
    cwd: workDir,
    detached: true,
    stdio: ["ignore", log, log],
    env: { ...process.env, ...ptrace.env },
  });
  closeSync(log);
  const [launchCode] = (await Promise.race([
    once(launcher, "exit"),
    once(launcher, "error").then(([e]) => fail(`cannot start setsid: ${(e as Error).message}`)),
  ])) as [number | null];
  if (launchCode !== 0) fail(`setsid -f server exited with ${launchCode}`);
  let port = 0;
  await waitFor(() => {
    const m = /listening on (\d+)/.exec(readFileSync(logFile, "utf8"));
    if (m !== null) port = Number(m[1]);
    return port !== 0;
  }, 5000);
  const pids = pidsOf(serverBin);
  if (pids.length === 1) cleanup.server = { pid: pids[0]!, exe: serverBin };
  if (port === 0)
    fail(`the server did not say "listening on PORT" within 5 s: ${lastLine(readFileSync(logFile, "utf8"))}`);
  if (pids.length !== 1) fail(`expected one server process, found ${pids.length}`);
  const pid = pids[0]!;
  const startedAt = procStat(pid)?.startTime;
  say(`server pid ${pid} (found like pidof does, via /proc/*/exe), listening on 127.0.0.1:${port}`);

  step(3, `Ask for prices. Policy: ${BULK_PCT}% off orders of ${BULK_MIN} items or more`);
  const kept = await Client.connect(port);
  cleanup.clients.push(kept);
  await ask(kept, BULK_MIN + 2, "right");
  const before = await ask(kept, BULK_MIN, "buggy");
  say(`This connection stays open through the patch.`);

  step(4, "Can the buggy function, quote(), be patched?");
  say(`$ graft check ${pretty(serverBin, workDir)} -f quote`);
  const report = graftJson<CheckReport>(["check", serverBin, "-f", "quote"], workDir);
  const fn = report.functions.find((f) => f.name === "quote");
  if (fn === undefined) fail("graft check did not find quote() in the server");
  if (!fn.verdict.redirectable) fail("graft check says quote() cannot be redirected");
  say(`quote at ${fn.address}, ${Number(fn.size)} bytes: redirectable through its ${fn.verdict.best ?? "?"}`);

  step(5, "Build the fix (demo/fix.c: `qty > bulk_min` becomes `qty >= bulk_min`)");
  echoOutput(graft(["build", fixSource, "--target", "server", "-o", "fix.graft"], workDir));

  step(6, "Apply it to the running server");
  say(`$ graft apply ${pid} ${pretty(patchFile, workDir)}`);
  cleanup.patched = true;
  const applied = graftJson<ApplyResult>(["apply", String(pid), patchFile], workDir);
  for (const f of applied.functions) {
    say(`patch ${applied.patch}: ${f.name} at ${f.address} now jumps to ${f.replacement} (${f.kind})`);
  }
  const ms = (ns: number): string => `${(ns / 1e6).toFixed(2)} ms`;
  const p = applied.pause;
  say(`every thread paused for ${ms(p.windowNs)}`);
  say(`  (stopping ${ms(p.stopNs)}, loading and redirecting ${ms(p.heldNs)}, resuming ${ms(p.resumeNs)})`);

  step(7, "The same request to the same process");
  const now = procStat(pid);
  if (!isRunning(pid) || now?.startTime !== startedAt)
    fail(`server pid ${pid} is not the process started in step 2`);
  say(`pid ${pid}, same start time as in step 2: not restarted`);
  const onKept = await ask(kept, BULK_MIN, "right", "connection from step 3");
  const fresh = await Client.connect(port);
  cleanup.clients.push(fresh);
  const onFresh = await ask(fresh, BULK_MIN, "right", "new connection");
  fresh.close();
  if (onKept.n !== before.n + 1 || onFresh.n !== onKept.n + 1) {
    fail(`request numbers ${before.n}, ${onKept.n}, ${onFresh.n} do not follow each other`);
  }
  say(
    `#${onKept.n} and #${onFresh.n} follow #${before.n}: the fix counts with the server's own static counter`,
  );

  step(8, "What is applied?");
  say(`$ graft status ${pid}`);
  const status = graftJson<StatusResult>(["status", String(pid)], workDir);
  for (const x of status.patches) {
    const fns = x.functions.map((f) => `${f.name} (${f.kind})`).join(", ");
    say(
      `patch ${x.id} from ${x.source}: ${fns}, sites ${x.sites}, code ${x.codeMapped ? "mapped" : "NOT mapped"}`,
    );
  }
  const entry = status.patches.find((x) => x.id === applied.patch);
  if (entry === undefined || entry.sites !== "applied" || !entry.codeMapped) {
    fail(`graft status does not show patch ${applied.patch} as applied`);
  }

  step(9, "Revert, and the bug is back");
  echoOutput(graft(["revert", String(pid)], workDir));
  cleanup.patched = false;
  await ask(kept, BULK_MIN, "buggy", "still the connection from step 3");
  say("wrong again, as it should be: the original code is back");
  kept.close();

  step(10, "Stop the server and clean up");
  const how = await stopServer(pid, serverBin);
  cleanup.server = undefined;
  say(`server pid ${pid}: ${how}`);
  if (how.startsWith("still running")) fail(`server pid ${pid} is still running after SIGKILL`);
  rmSync(workDir, { recursive: true, force: true });
  say(`removed ${workDir}`);
  endStep();
}

interface Cleanup {
  server: { pid: number; exe: string } | undefined;
  /** graft apply was run (it may have succeeded even if the demo failed later). */
  patched: boolean;
  clients: Client[];
}

async function main(): Promise<number> {
  if (!existsSync(cli)) {
    console.error("demo: FAILED: dist/cli/main.js is missing (hint: npm run build)");
    return 1;
  }
  const workDir = mkdtempSync(join(tmpdir(), "graft-demo-"));
  const cleanup: Cleanup = { server: undefined, patched: false, clients: [] };
  const tidy = async (): Promise<void> => {
    for (const c of cleanup.clients) c.close();
    const server = cleanup.server;
    if (server !== undefined) {
      // A patch left applied would leave its journal behind once the server is gone: revert first.
      if (cleanup.patched)
        spawnSync(process.execPath, [cli, "revert", String(server.pid), "--all"], { timeout: 30_000 });
      await stopServer(server.pid, server.exe);
    }
    rmSync(workDir, { recursive: true, force: true });
  };
  const onSignal = (): void => {
    void tidy().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await demo(workDir, cleanup);
  } catch (e) {
    const n = current?.n;
    current = undefined;
    await tidy();
    const reason =
      e instanceof DemoFailure ? e.message : `internal error: ${(e as Error).stack ?? String(e)}`;
    console.error(`\ndemo: FAILED${n === undefined ? "" : ` at step ${n}`}: ${reason}`);
    return 1;
  }
  const total = performance.now() - demoStart;
  const parts = stepTimes.map((s) => `${s.n}: ${seconds(s.ms)}`).join(", ");
  console.log(`\nDemo passed in ${seconds(total)} (steps ${parts})`);
  return 0;
}

process.exitCode = await main();
