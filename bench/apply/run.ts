/**
 * bench:apply — how long graft's apply/revert stop a running 10-thread process, and how much private
 * memory a patch costs it, against the peers of research/peer-measurements.md §2, §3, §5 measured IN
 * THE SAME RUN, interleaved on the same target so that load drift hits every peer alike:
 *
 * - graft: applyPatch / revertPatch in this process (library from src/ through tsx; module loading
 *   and a warm-up cycle are not counted);
 * - pstop: the raw ptrace floor (bench/apply/pstop.c: seize, interrupt all, wait all, pwrite, detach
 *   all; §3 mode 0), at normal priority and under `chrt -f 1` (graft boosts its own interrupt and
 *   detach loops to SCHED_FIFO 1 when it may);
 * - gdb: `gdb -nx -batch -p PID -ex 'set {unsigned char[5]}FAR = {…}' -ex 'set {unsigned short}ENTRY = …'`
 *   (§2), writing the bytes already there — the same two sites graft rewrites, semantically a no-op.
 *
 * The common measure is a gap detector thread inside the target (bench/apply/target.c): the largest
 * gap in its clock readings that overlaps a peer's window, and the part of that gap it could not
 * run at all (gap minus its run-queue wait), against same-length idle windows between the runs.
 *
 *   npx tsx bench/apply/run.ts [--applies N] [--gdb-runs G] [--modes busy,light] [--keep]
 *   (npm run bench:apply -- --applies N)
 */
import { execFileSync, type SpawnSyncReturns, spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
} from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type ApplyResult,
  applyPatch,
  buildPatchFile,
  injectMmap,
  injectMprotect,
  injectMunmap,
  type RevertResult,
  revertPatch,
  type StopWindow,
  stopProcess,
} from "../../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../..");
const FIX = join(repoRoot, "test/scenarios/basic/fix.c");
const WORKERS = 8;
const PAGE = 4096;
const GOAL = { p50Ms: 1, p99Ms: 5, extraPages: 3 };

// ---------------------------------------------------------------------------------------------
// arguments

interface Args {
  applies: number;
  gdbRuns: number;
  modes: ("busy" | "light")[];
  keep: boolean;
  oneThreadRuns: number;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { applies: 200, gdbRuns: 20, modes: ["busy", "light"], keep: false, oneThreadRuns: 50 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === "--applies") a.applies = Number(v());
    else if (k === "--gdb-runs") a.gdbRuns = Number(v());
    else if (k === "--one-thread-runs") a.oneThreadRuns = Number(v());
    else if (k === "--modes") a.modes = v().split(",") as Args["modes"];
    else if (k === "--keep") a.keep = true;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!Number.isInteger(a.applies) || a.applies < 1) throw new Error("--applies must be a positive integer");
  if (!Number.isInteger(a.gdbRuns) || a.gdbRuns < 0) throw new Error("--gdb-runs must be an integer ≥ 0");
  for (const m of a.modes) if (m !== "busy" && m !== "light") throw new Error(`unknown mode ${m}`);
  return a;
}

// ---------------------------------------------------------------------------------------------
// targets: started detached, always killed on the way out

const live = new Set<number>();
let workDir: string | undefined;
let keepDir = false;

function killAll(): void {
  for (const pid of live) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

function cleanup(): void {
  killAll();
  if (workDir !== undefined && !keepDir) rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
}

process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench:apply: ${sig}, killing targets\n`);
    cleanup();
    process.exit(130);
  });
}

interface Target {
  readonly pid: number;
  readonly out: string;
  readonly logAddr: number;
  readonly logCap: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const jitter = (lo: number, hi: number): Promise<void> => sleep(lo + Math.random() * (hi - lo));
const nowNs = (): number => Number(process.hrtime.bigint()); // CLOCK_MONOTONIC, as the detector

/** Start `exe args` through `sh -c '… & echo $!'`, so it is not our child (libuv would reap its stops). */
async function startTarget(exe: string, args: readonly string[], dir: string, name: string): Promise<Target> {
  const out = join(dir, `${name}.out`);
  const script = 'out="$1"; shift; cd "$(dirname "$out")" || exit 1; "$@" >"$out" 2>&1 </dev/null & echo $!';
  const pid = Number(
    execFileSync("sh", ["-c", script, "sh", out, exe, ...args], { encoding: "utf8" }).trim(),
  );
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`could not start ${exe}`);
  live.add(pid);
  const deadline = Date.now() + 5000;
  for (;;) {
    const text = existsSync(out) ? readFileSync(out, "utf8") : "";
    const m = /^log 0x([0-9a-f]+) cap (\d+)/m.exec(text);
    if (m !== null && /^tick /m.test(text)) {
      await sleep(300); // threads running, stacks touched
      return { pid, out, logAddr: Number.parseInt(m[1]!, 16), logCap: Number(m[2]) };
    }
    if (Date.now() > deadline) throw new Error(`target ${name} did not start: ${text.slice(0, 300)}`);
    await sleep(10);
  }
}

function stopTarget(t: Target): void {
  try {
    process.kill(t.pid, "SIGKILL");
  } catch {
    // already gone
  }
  live.delete(t.pid);
}

function isAlive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "latin1"));
  } catch {
    return false;
  }
}

function mustBeAlive(t: Target, after: string): void {
  if (!isAlive(t.pid)) {
    const text = existsSync(t.out) ? readFileSync(t.out, "utf8") : "";
    throw new Error(`target ${t.pid} died after ${after}; last output: ${text.slice(-300)}`);
  }
}

interface Tick {
  value: number;
  bad: number;
}

function lastTick(t: Target): Tick | undefined {
  const text = readFileSync(t.out, "utf8");
  const lines = text.slice(0, text.lastIndexOf("\n")).split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^tick \d+ (-?\d+) bad (\d+)/.exec(lines[i]!);
    if (m !== null) return { value: Number(m[1]), bad: Number(m[2]) };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// the gap detector's log, read from the target's memory through /proc/PID/mem

interface Gap {
  start: number;
  gap: number;
  rq: number;
}

interface Seen {
  gap: number;
  off: number;
}

class GapLog {
  readonly records: Gap[] = [];
  #read = 0;
  lost = 0;
  readonly #fd: number;
  constructor(readonly target: Target) {
    this.#fd = openSync(`/proc/${target.pid}/mem`, "r");
  }
  #bytes(addr: number, length: number): Buffer {
    const b = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.#fd, b, got, length - got, addr + got);
      if (n <= 0) throw new Error("short read of the gap log");
      got += n;
    }
    return b;
  }
  poll(): void {
    const count = Number(this.#bytes(this.target.logAddr, 8).readBigUInt64LE(0));
    const cap = this.target.logCap;
    if (count - this.#read > cap) {
      this.lost += count - cap - this.#read;
      this.#read = count - cap;
    }
    while (this.#read < count) {
      const slot = this.#read % cap;
      const n = Math.min(count - this.#read, cap - slot);
      const b = this.#bytes(this.target.logAddr + 24 + slot * 24, n * 24);
      for (let i = 0; i < n; i++) {
        this.records.push({
          start: Number(b.readBigUInt64LE(i * 24)),
          gap: Number(b.readBigUInt64LE(i * 24 + 8)),
          rq: Number(b.readBigUInt64LE(i * 24 + 16)),
        });
      }
      this.#read += n;
    }
  }
  /**
   * Over the gaps overlapping [a, b]: the largest one (0 when none is > 20 µs), and the largest
   * part of one that the thread could not run at all (gap minus its run-queue wait).
   */
  largest(a: number, b: number): Seen {
    let gap = 0;
    let off = 0;
    for (let i = this.records.length - 1; i >= 0; i--) {
      const r = this.records[i]!;
      if (r.start + r.gap < a - 1e9) break; // records are in time order; no gap lasts a second here
      if (r.start <= b && r.start + r.gap >= a) {
        gap = Math.max(gap, r.gap);
        off = Math.max(off, r.gap - Math.min(r.rq, r.gap));
      }
    }
    return { gap, off };
  }
  close(): void {
    closeSync(this.#fd);
  }
}

// ---------------------------------------------------------------------------------------------
// memory

type Rollup = Record<string, number>;

function smapsRollup(pid: number): Rollup {
  const out: Rollup = {};
  for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, "utf8").split("\n")) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m !== null) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Private_Dirty (kB) per mapping, keyed by "start perms name". */
function smapsPrivateDirty(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let key = "";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      const size = (Number.parseInt(head[2]!, 16) - Number.parseInt(head[1]!, 16)) / 1024;
      key = `${head[1]} ${head[3]} ${head[4]!.replace(/.*\//, "") || "[anon]"} (${size} kB)`;
      out.set(key, 0);
      continue;
    }
    const m = /^Private_Dirty:\s+(\d+) kB/.exec(line);
    if (m !== null) out.set(key, Number(m[1]));
  }
  return out;
}

function diffMappings(before: Map<string, number>, after: Map<string, number>): string[] {
  const lines: string[] = [];
  for (const [k, v] of after) {
    const was = before.get(k);
    if (was === undefined) lines.push(`+ new ${k}: Private_Dirty ${v} kB`);
    else if (was !== v) lines.push(`  ${k}: Private_Dirty ${was} → ${v} kB`);
  }
  for (const [k, v] of before) if (!after.has(k)) lines.push(`- gone ${k} (had Private_Dirty ${v} kB)`);
  return lines;
}

interface MemStep {
  label: string;
  rollup: Rollup;
  maps: Map<string, number>;
}

const memStep = (pid: number, label: string): MemStep => ({
  label,
  rollup: smapsRollup(pid),
  maps: smapsPrivateDirty(pid),
});

/** Work dirs of earlier runs that were killed before they could clean up (their pid is gone). */
function removeStaleWorkDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = /^graft-bench-apply-(\d+)-/.exec(name);
    if (m !== null && !existsSync(`/proc/${m[1]}`))
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

function fsyncFile(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// statistics

function pct(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

const ms = (ns: number): string =>
  Number.isNaN(ns) ? "n/a" : ns === 0 ? "<0.02" : ns >= 1e8 ? (ns / 1e6).toFixed(0) : (ns / 1e6).toFixed(3);
const dist = (xs: readonly number[], ps = [50, 99, 100]): string =>
  xs.length === 0 ? "n/a" : ps.map((p) => ms(pct(xs, p))).join(" / ");

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: string[]): string => `| ${r.map((x, c) => x.padEnd(widths[c]!)).join(" | ")} |`;
  return [
    line(rows[0]!),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...rows.slice(1).map(line),
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// one event = one peer operation, plus a same-length idle window after it

type Peer = "graft apply" | "graft revert" | "pstop" | "pstop FIFO" | "gdb";

interface Event {
  peer: Peer;
  /** Where the detector's gap is looked for. */
  a: number;
  b: number;
  wallNs: number;
  /** The tool's own first-stop → last-resume window, when it reports one. */
  windowNs?: number;
  parts?: { stopNs: number; heldNs: number; resumeNs: number };
  /** Same-length idle window, looked at the same way. */
  baseA: number;
  baseB: number;
  revert?: { stops: number; maxNs: number; sumNs: number; unmapped: boolean };
}

async function idleWindow(ev: Omit<Event, "baseA" | "baseB">): Promise<Event> {
  await sleep(3);
  const baseA = nowNs();
  const len = ev.b - ev.a;
  await sleep(Math.ceil(len / 1e6) + 2);
  return { ...ev, baseA, baseB: baseA + len };
}

interface Write {
  address: bigint;
  before: string;
}

function pstop(pid: number, writes: readonly Write[], fifo: boolean): Omit<Event, "baseA" | "baseB"> {
  const exe = join(workDir!, "pstop");
  const wargs = writes.map((w) => `0x${w.address.toString(16)}:${w.before}`);
  const t0 = nowNs();
  const r = fifo
    ? spawnSync("chrt", ["-f", "1", exe, String(pid), ...wargs], { encoding: "utf8" })
    : spawnSync(exe, [String(pid), ...wargs], { encoding: "utf8" });
  const t1 = nowNs();
  if (r.status !== 0) throw new Error(`pstop failed (${r.status}): ${r.stderr}`);
  const [s0, s1, s2, s3] = r.stdout.trim().split(" ").map(Number) as [number, number, number, number];
  return {
    peer: fifo ? "pstop FIFO" : "pstop",
    a: s0,
    b: s3,
    wallNs: t1 - t0,
    windowNs: s3 - s0,
    parts: { stopNs: s1 - s0, heldNs: s2 - s1, resumeNs: s3 - s2 },
  };
}

function gdbArgs(pid: number, writes: readonly Write[]): string[] {
  const args = ["-nx", "-batch", "-p", String(pid)];
  for (const w of writes) {
    const bytes = w.before.match(/../g)!;
    const at = `0x${w.address.toString(16)}`;
    if (bytes.length === 2) args.push("-ex", `set {unsigned short}${at} = 0x${bytes[1]}${bytes[0]}`);
    else
      args.push(
        "-ex",
        `set {unsigned char[${bytes.length}]}${at} = {${bytes.map((b) => `0x${b}`).join(",")}}`,
      );
  }
  return args;
}

const gdbEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.DEBUGINFOD_URLS; // no downloads: gdb 13 fetches debug info only when this is set
  return env;
};

function gdb(pid: number, writes: readonly Write[]): Omit<Event, "baseA" | "baseB"> {
  const t0 = nowNs();
  const r: SpawnSyncReturns<string> = spawnSync("gdb", gdbArgs(pid, writes), {
    encoding: "utf8",
    env: gdbEnv(),
    timeout: 60_000,
  });
  const t1 = nowNs();
  const errors = (r.stderr ?? "")
    .split("\n")
    .filter((l) => /cannot|invalid|error|no symbol/i.test(l) && !/No such file or directory/.test(l));
  if (r.status !== 0 || errors.length > 0)
    throw new Error(`gdb failed (${r.status}): ${errors.join("; ") || r.stderr}`);
  return { peer: "gdb", a: t0, b: t1, wallNs: t1 - t0 };
}

function readBytes(pid: number, addr: bigint, n: number): string {
  const fd = openSync(`/proc/${pid}/mem`, "r");
  try {
    const b = Buffer.alloc(n);
    readSync(fd, b, 0, n, Number(addr));
    return b.toString("hex");
  } finally {
    closeSync(fd);
  }
}

/** The sites graft would rewrite in this process (far jump first, then entry), with their bytes now. */
function sitesOf(pid: number, patch: string): Write[] {
  return applyPatch(pid, patch, { dryRun: true }).writes.map((w) => ({
    address: w.address,
    before: w.before,
  }));
}

function checkSitesUnchanged(pid: number, writes: readonly Write[], after: string): void {
  for (const w of writes) {
    const have = readBytes(pid, w.address, w.before.length / 2);
    if (have !== w.before)
      throw new Error(`after ${after}: ${w.address.toString(16)} holds ${have}, not ${w.before}`);
  }
}

// ---------------------------------------------------------------------------------------------
// one load mode

interface ModeResult {
  mode: string;
  events: Event[];
  log: GapLog;
  graftMem: MemStep[];
  gdbMem: MemStep[];
  pstopMem: MemStep[];
  patchSize: number;
  oneThread: StopWindow[];
  warmup: { apply: ApplyResult; applyWallNs: number; revert: RevertResult; revertWallNs: number };
  bad: number;
  threads: number;
  effectSeen: boolean;
}

async function runMode(mode: "busy" | "light", exe: string, patch: string, args: Args): Promise<ModeResult> {
  const dir = workDir!;
  const log = (s: string): boolean => process.stderr.write(s);
  log(`\n[${mode}] starting target (${WORKERS} workers + detector + main)...\n`);
  const t = await startTarget(exe, [String(WORKERS), "3", mode, String(process.pid)], dir, `target-${mode}`);
  const threads = readFileSync(`/proc/${t.pid}/status`, "utf8").match(/^Threads:\s+(\d+)/m)?.[1];
  const gaps = new GapLog(t);
  const dry = applyPatch(t.pid, patch, { dryRun: true });
  const writes = sitesOf(t.pid, patch);
  const patchSize = Number(dry.mapping.size);

  // Warm-up cycle (not counted), which is also the memory measurement on a fresh process.
  const graftMem: MemStep[] = [memStep(t.pid, "before apply")];
  let w0 = nowNs();
  const apply = applyPatch(t.pid, patch);
  const applyWallNs = nowNs() - w0;
  graftMem.push(memStep(t.pid, "after apply"));
  let effectSeen = false;
  for (const end = Date.now() + 1000; Date.now() < end && !effectSeen; await sleep(10))
    effectSeen = lastTick(t)?.value === 21;
  w0 = nowNs();
  const revert = revertPatch(t.pid);
  const revertWallNs = nowNs() - w0;
  graftMem.push(memStep(t.pid, "after revert"));
  mustBeAlive(t, "warm-up");

  const events: Event[] = [];
  const every =
    args.gdbRuns === 0 ? Number.POSITIVE_INFINITY : Math.max(1, Math.floor(args.applies / args.gdbRuns));
  let gdbDone = 0;
  const started = Date.now();
  for (let i = 0; i < args.applies; i++) {
    await jitter(10, 20);
    let s = nowNs();
    const r = applyPatch(t.pid, patch);
    let e = nowNs();
    mustBeAlive(t, `apply ${i}`);
    const p = r.pause!;
    events.push(
      await idleWindow({
        peer: "graft apply",
        a: s,
        b: e,
        wallNs: e - s,
        windowNs: p.windowNs,
        parts: { stopNs: p.stopNs, heldNs: p.heldNs, resumeNs: p.resumeNs },
      }),
    );
    await jitter(10, 20);
    s = nowNs();
    const rv = revertPatch(t.pid);
    e = nowNs();
    mustBeAlive(t, `revert ${i}`);
    events.push(
      await idleWindow({
        peer: "graft revert",
        a: s,
        b: e,
        wallNs: e - s,
        windowNs: Math.max(...rv.pauses.map((x) => x.windowNs)),
        revert: {
          stops: rv.pauses.length,
          maxNs: Math.max(...rv.pauses.map((x) => x.windowNs)),
          sumNs: rv.pauses.reduce((acc, x) => acc + x.windowNs, 0),
          unmapped: rv.reverted.every((x) => x.unmapped),
        },
      }),
    );
    for (const fifo of [false, true]) {
      await jitter(10, 20);
      events.push(await idleWindow(pstop(t.pid, writes, fifo)));
      mustBeAlive(t, "pstop");
    }
    if ((i + 1) % every === 0 && gdbDone < args.gdbRuns) {
      await jitter(10, 20);
      events.push(await idleWindow(gdb(t.pid, writes)));
      mustBeAlive(t, "gdb");
      checkSitesUnchanged(t.pid, writes, "gdb");
      gdbDone++;
    }
    gaps.poll();
    if ((i + 1) % 20 === 0)
      log(
        `[${mode}] ${i + 1}/${args.applies} cycles, ${gdbDone} gdb runs, ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
      );
  }
  while (gdbDone < args.gdbRuns) {
    await jitter(10, 20);
    events.push(await idleWindow(gdb(t.pid, writes)));
    mustBeAlive(t, "gdb");
    gdbDone++;
  }
  graftMem.push(memStep(t.pid, `after ${args.applies} more cycles (and the pstop/gdb runs)`));

  // The mapping phase of an apply stops one quiet thread (main, asleep) for mmap + mprotect; the
  // library does not report that window, so it is replayed here with the same exported primitives.
  const oneThread: StopWindow[] = [];
  for (let i = 0; i < args.oneThreadRuns; i++) {
    await jitter(5, 10);
    const st = stopProcess(t.pid, { only: [t.pid] });
    let base: bigint;
    try {
      base = injectMmap(st, { length: BigInt(patchSize), prot: 5 });
      injectMprotect(st, base + BigInt(PAGE), BigInt(patchSize - PAGE), 3);
    } finally {
      oneThread.push(st.resume());
    }
    const st2 = stopProcess(t.pid, { only: [t.pid] });
    try {
      injectMunmap(st2, base, BigInt(patchSize));
    } finally {
      st2.resume();
    }
  }
  mustBeAlive(t, "one-thread stops");

  await sleep(60); // a fresh tick
  gaps.poll();
  const bad = lastTick(t)?.bad ?? -1;
  stopTarget(t);

  // Memory of the peers, each on a fresh process (the graft cycles above already COW'd the text page).
  const fresh = async (name: string, op: (pid: number, writes: Write[]) => void): Promise<MemStep[]> => {
    const f = await startTarget(
      exe,
      [String(WORKERS), "3", mode, String(process.pid)],
      dir,
      `${name}-${mode}`,
    );
    try {
      const here = sitesOf(f.pid, patch); // a PIE: the addresses differ per process
      const steps = [memStep(f.pid, "before")];
      op(f.pid, here);
      steps.push(memStep(f.pid, "after"));
      mustBeAlive(f, name);
      return steps;
    } finally {
      stopTarget(f);
    }
  };
  const gdbMem = await fresh("gdb-mem", (pid, w) => void gdb(pid, w));
  const pstopMem = await fresh("pstop-mem", (pid, w) => void pstop(pid, w, false));
  return {
    mode,
    events,
    log: gaps,
    graftMem,
    gdbMem,
    pstopMem,
    patchSize,
    oneThread,
    warmup: { apply, applyWallNs, revert, revertWallNs },
    bad,
    threads: Number(threads),
    effectSeen,
  };
}

// ---------------------------------------------------------------------------------------------
// report

function cpuBusy(sampleMs: number): number {
  const read = (): number[] =>
    readFileSync("/proc/stat", "utf8").split("\n")[0]!.split(/\s+/).slice(1).map(Number);
  const a = read();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, sampleMs);
  const b = read();
  const d = b.map((x, i) => x - a[i]!);
  const total = d.reduce((x, y) => x + y, 0);
  const idle = d[3]! + d[4]!;
  return total === 0 ? 0 : 1 - idle / total;
}

function memDelta(
  a: MemStep,
  b: MemStep,
): { kB: number; pages: number; rss: number; anon: number; pssAnon: number } {
  const d = (k: string): number => (b.rollup[k] ?? 0) - (a.rollup[k] ?? 0);
  return {
    kB: d("Private_Dirty"),
    pages: d("Private_Dirty") / 4,
    rss: d("Rss"),
    anon: d("Anonymous"),
    pssAnon: d("Pss_Anon"),
  };
}

function report(r: ModeResult, args: Args): void {
  const peers: Peer[] = ["graft apply", "graft revert", "pstop", "pstop FIFO", "gdb"];
  const by = (p: Peer): Event[] => r.events.filter((e) => e.peer === p);
  const gapOf = (e: Event): Seen => r.log.largest(e.a, e.b);
  const baseOf = (e: Event): Seen => r.log.largest(e.baseA, e.baseB);
  const patchPages = Math.ceil(r.patchSize / PAGE);
  const goalPages = GOAL.extraPages + patchPages;

  console.log(
    `\n## mode: ${r.mode} — ${r.threads} threads (${WORKERS} workers ${r.mode === "busy" ? "spinning" : "20,000 calls then 1 ms sleep"}, gap detector spinning, main asleep)`,
  );
  console.log(
    `detector records: ${r.log.records.length}${r.log.lost > 0 ? ` (${r.log.lost} LOST: ring overrun)` : ""}; patch mapping ${r.patchSize} B = ${patchPages} pages; effect of the patch seen in main's ticks: ${r.effectSeen ? "yes (compute(7) = 21)" : "NO"}; bad answers at the end: ${r.bad}${r.bad === 0 ? "" : "  <-- FAIL"}`,
  );

  const memOf = (steps: MemStep[], i: number): string => {
    const d = memDelta(steps[0]!, steps[i]!);
    return `${d.pages >= 0 ? "+" : ""}${d.pages} pages (${d.kB} kB)`;
  };
  const rows: string[][] = [
    [
      "peer",
      "runs",
      "tool window p50 / p99 / max (ms)",
      "detector gap p50 / p99 / max (ms)",
      "gap minus run-queue wait p50 / p99 / max",
      "idle-window gap p50 / p99 / max",
      "wall p50 / p99 (ms)",
      "Private_Dirty delta",
    ],
  ];
  for (const p of peers) {
    const ev = by(p);
    if (ev.length === 0) continue;
    const g = ev.map(gapOf);
    const b = ev.map(baseOf);
    const mem =
      p === "graft apply"
        ? `${memOf(r.graftMem, 1)} after 1st apply`
        : p === "graft revert"
          ? `${memOf(r.graftMem, 2)} after 1st revert`
          : p === "gdb"
            ? memOf(r.gdbMem, 1)
            : p === "pstop"
              ? memOf(r.pstopMem, 1)
              : "";
    rows.push([
      p,
      String(ev.length),
      ev[0]!.windowNs === undefined ? "n/a (none reported)" : dist(ev.map((e) => e.windowNs!)),
      dist(g.map((x) => x.gap)),
      dist(g.map((x) => x.off)),
      dist(b.map((x) => x.gap)),
      dist(
        ev.map((e) => e.wallNs),
        [50, 99],
      ),
      mem,
    ]);
  }
  console.log(`\n${table(rows)}`);

  const ap = by("graft apply");
  const rv = by("graft revert");
  const gd = by("gdb");
  const detail: string[][] = [["graft, per call", "p50", "p90", "p99", "max"]];
  const add = (name: string, xs: number[]): void => {
    detail.push([name, ...[50, 90, 99, 100].map((p) => ms(pct(xs, p)))]);
  };
  add(
    "apply pause window (first INTERRUPT → last DETACH)",
    ap.map((e) => e.windowNs!),
  );
  add(
    "  stop (INTERRUPT → all stopped)",
    ap.map((e) => e.parts!.stopNs),
  );
  add(
    "  held (step-out, writes, read-back)",
    ap.map((e) => e.parts!.heldNs),
  );
  add(
    "  resume (DETACH all)",
    ap.map((e) => e.parts!.resumeNs),
  );
  add(
    "apply wall (whole applyPatch call)",
    ap.map((e) => e.wallNs),
  );
  add(
    "apply wall outside the pause",
    ap.map((e) => e.wallNs - e.windowNs!),
  );
  add(
    "apply, one-thread stop for mmap+mprotect (replayed)",
    r.oneThread.map((w) => w.windowNs),
  );
  add(
    "revert pause, longest stop of the call",
    rv.map((e) => e.revert!.maxNs),
  );
  add(
    "revert pause, all stops of the call summed",
    rv.map((e) => e.revert!.sumNs),
  );
  add(
    "revert wall",
    rv.map((e) => e.wallNs),
  );
  add(
    "pstop window (normal prio)",
    by("pstop").map((e) => e.windowNs!),
  );
  add(
    "  pstop stop (INTERRUPT → all stopped)",
    by("pstop").map((e) => e.parts!.stopNs),
  );
  add(
    "  pstop resume (DETACH all)",
    by("pstop").map((e) => e.parts!.resumeNs),
  );
  add(
    "pstop FIFO window",
    by("pstop FIFO").map((e) => e.windowNs!),
  );
  add(
    "  pstop FIFO stop (INTERRUPT → all stopped)",
    by("pstop FIFO").map((e) => e.parts!.stopNs),
  );
  add(
    "  pstop FIFO resume (DETACH all)",
    by("pstop FIFO").map((e) => e.parts!.resumeNs),
  );
  console.log(`\n${table(detail)}`);
  const stops = rv.map((e) => e.revert!.stops);
  const retired = rv.filter((e) => !e.revert!.unmapped).length;
  const realtime = r.warmup.apply.pause?.realtime;
  console.log(
    `revert stops per call: min ${Math.min(...stops)}, max ${Math.max(...stops)} (restore + unmap check${retired > 0 ? `; ${retired} reverts left the mapping retired` : ""}); graft ran its loops under SCHED_FIFO: ${realtime}`,
  );
  console.log(
    `warm-up cycle (not in the table): apply wall ${ms(r.warmup.applyWallNs)} ms, pause ${ms(r.warmup.apply.pause!.windowNs)} ms; revert wall ${ms(r.warmup.revertWallNs)} ms, pauses ${r.warmup.revert.pauses.map((p) => ms(p.windowNs)).join(", ")} ms`,
  );

  // Memory detail
  console.log(
    `\nprivate memory (smaps_rollup, kB; goal ≤ ${GOAL.extraPages} pages + patch ${patchPages} = ${goalPages} pages):`,
  );
  const memRows: string[][] = [
    ["process / step", "Private_Dirty", "Δ pages", "Rss Δ", "Anonymous Δ", "Pss_Anon Δ", "goal"],
  ];
  const addMem = (name: string, steps: MemStep[]): void => {
    steps.forEach((s, i) => {
      const d = memDelta(steps[0]!, s);
      memRows.push([
        `${name}: ${s.label}`,
        String(s.rollup.Private_Dirty),
        i === 0 ? "" : String(d.pages),
        i === 0 ? "" : String(d.rss),
        i === 0 ? "" : String(d.anon),
        i === 0 ? "" : String(d.pssAnon),
        i === 0 ? "" : d.pages <= goalPages ? "ok" : "OVER",
      ]);
    });
  };
  addMem("graft", r.graftMem);
  addMem("gdb (fresh)", r.gdbMem);
  addMem("pstop (fresh)", r.pstopMem);
  console.log(table(memRows));
  const explain = (name: string, a: MemStep, b: MemStep): void => {
    const lines = diffMappings(a.maps, b.maps);
    console.log(`  ${name}: ${lines.length === 0 ? "no mapping changed" : ""}`);
    for (const l of lines) console.log(`    ${l}`);
  };
  console.log("per-mapping Private_Dirty changes:");
  explain("graft apply", r.graftMem[0]!, r.graftMem[1]!);
  explain("graft revert (vs before apply)", r.graftMem[0]!, r.graftMem[2]!);
  explain(`graft + ${args.applies} cycles + pstop/gdb runs (vs before)`, r.graftMem[0]!, r.graftMem[3]!);
  explain("gdb", r.gdbMem[0]!, r.gdbMem[1]!);
  explain("pstop", r.pstopMem[0]!, r.pstopMem[1]!);

  // Verdicts and ratios
  const win = ap.map((e) => e.windowNs!);
  const gapAp = ap.map((e) => gapOf(e).gap);
  const gapGdb = gd.map((e) => gapOf(e).gap);
  const offAp = ap.map((e) => gapOf(e).off);
  const offGdb = gd.map((e) => gapOf(e).off);
  const verdict = (x: number, goalMs: number): string =>
    `${ms(x)} ms ${x <= goalMs * 1e6 ? "≤" : ">"} ${goalMs} ms ${x <= goalMs * 1e6 ? "ok" : "MISSED"}`;
  console.log(`\ngoals (graft apply):`);
  console.log(
    `  pause p50 (tool window): ${verdict(pct(win, 50), GOAL.p50Ms)}; p99: ${verdict(pct(win, 99), GOAL.p99Ms)}`,
  );
  console.log(
    `  pause p50 (detector gap): ${verdict(pct(gapAp, 50), GOAL.p50Ms)}; p99: ${verdict(pct(gapAp, 99), GOAL.p99Ms)}  (idle-window gap p50 ${ms(
      pct(
        ap.map((e) => baseOf(e).gap),
        50,
      ),
    )}, p99 ${ms(
      pct(
        ap.map((e) => baseOf(e).gap),
        99,
      ),
    )}: the scheduler's share)`,
  );
  console.log(
    `  pause p50 (detector gap minus run-queue wait): ${verdict(pct(offAp, 50), GOAL.p50Ms)}; p99: ${verdict(pct(offAp, 99), GOAL.p99Ms)}`,
  );
  const memApply = memDelta(r.graftMem[0]!, r.graftMem[1]!).pages;
  console.log(
    `  memory after apply: ${memApply} pages vs ≤ ${goalPages} → ${memApply <= goalPages ? "ok" : "OVER"}`,
  );
  if (gd.length > 0) {
    const ratio = (a: number[], b: number[], p: number): string =>
      (pct(a, p) / Math.max(pct(b, p), 1)).toFixed(0);
    console.log(
      `ratios gdb/graft apply: detector gap p50 ${ratio(gapGdb, gapAp, 50)}×, p99 ${ratio(gapGdb, gapAp, 99)}×; gap minus run-queue wait p50 ${ratio(offGdb, offAp, 50)}×, p99 ${ratio(offGdb, offAp, 99)}×; gdb wall / graft tool window p50 ${ratio(
        gd.map((e) => e.wallNs),
        win,
        50,
      )}×`,
    );
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  keepDir = args.keep;
  for (const tool of ["gcc", "gdb", "chrt"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`${tool} not found`);
  }
  const load0 = loadavg();
  const busy0 = cpuBusy(1000);
  removeStaleWorkDirs();
  workDir = mkdtempSync(join(tmpdir(), `graft-bench-apply-${process.pid}-`));
  process.env.GRAFT_STATE_DIR = join(workDir, "state");
  const exe = join(workDir, "target");
  execFileSync("gcc", [
    "-O2",
    "-fpatchable-function-entry=16,14",
    "-pthread",
    "-o",
    exe,
    join(here, "target.c"),
  ]);
  // A just-written file's page-cache pages are dirty, and smaps counts a dirty file page mapped by
  // one process as Private_Dirty: the text page a write COWs would be dirty before and after,
  // hiding its cost. Writing the binary back first makes the COW show.
  fsyncFile(exe);
  execFileSync("gcc", ["-O2", "-o", join(workDir, "pstop"), join(here, "pstop.c")]);
  const patch = join(workDir, "fix.graft");
  const built = buildPatchFile({ fix: FIX, target: exe, output: patch });
  process.stderr.write(
    `built ${exe} and ${patch} (${built.codeBytes} B of code); state dir ${process.env.GRAFT_STATE_DIR}\n`,
  );

  const results: ModeResult[] = [];
  for (const mode of args.modes) results.push(await runMode(mode, exe, patch, args));
  const load1 = loadavg();

  console.log(
    `# bench:apply — ${args.applies} apply/revert cycles per mode, ${args.gdbRuns} gdb runs, interleaved`,
  );
  console.log(
    `machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), kernel ${readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()}; load average at start ${load0.map((x) => x.toFixed(2)).join(" ")} (CPU busy ${(busy0 * 100).toFixed(0)} % over 1 s before any target started), at end ${load1.map((x) => x.toFixed(2)).join(" ")}`,
  );
  console.log(
    `NOTE: the busy target alone keeps ~10 threads runnable (load average +~10 while it runs), so the end figure includes the bench itself.${busy0 > 0.25 || load0[0]! > 0.5 * cpus().length ? " The machine was already busy with other work when the bench started." : ""} Absolute µs/ms figures are this box's at that moment; the peers ran interleaved on the same target, so the comparisons within the run are the more useful numbers.`,
  );
  console.log(
    "tool window: graft's StopWindow.windowNs (first PTRACE_INTERRUPT → last PTRACE_DETACH), pstop's own t0→t3; gdb reports none. detector gap: the largest gap (> 20 µs) in the target's detector thread overlapping the call; 'minus run-queue wait' subtracts the time that thread was runnable but waiting for a CPU (schedstat run_delay), leaving the time it could not run at all. idle-window: the same measure over an equally long window with nothing running, right after. The window searched is the whole call for graft and gdb (graft's one-thread mapping phase stops only main, not the detector) but only t0→t3 for pstop, so raw gaps of graft and gdb collect more ordinary preemption; judge raw gaps against their idle-window column, and prefer 'minus run-queue wait'. ms; <0.02 = no gap above 20 µs.",
  );
  for (const r of results) report(r, args);
  const bad = results.filter((r) => r.bad !== 0);
  if (bad.length > 0) {
    console.log(`\nFAIL: bad answers in ${bad.map((r) => r.mode).join(", ")}`);
    process.exitCode = 1;
  }
  for (const r of results) r.log.close();
  if (keepDir) console.log(`\nkept ${workDir}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:apply: ${(e as Error).stack ?? e}\n`);
  cleanup();
  process.exitCode = 1;
});
