/**
 * Test support for live-patching scenarios (not part of the library): start a target detached,
 * read what it prints, read and write its memory through /proc/PID/mem, find its code, and run the
 * graft CLI. Deliberately independent of src/process, so the scenarios check graft against the
 * kernel's own view (/proc) and binutils (nm, readelf), not against itself.
 *
 * Targets are started through `sh -c '… & echo $!'`: the shell exits at once, so the target is not a
 * child of this Node process — libuv's SIGCHLD handler would otherwise waitpid() it and eat the
 * ptrace stops graft relies on.
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  rmSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect } from "vitest";
import { repoRoot } from "./fixtures.js";

/** A running target process and the file its stdout and stderr go to. */
export interface LiveTarget {
  readonly pid: number;
  readonly exe: string;
  readonly out: string;
}

/**
 * Start `exe args…` detached (not our child), stdout and stderr into `dir/<name>.out`, in `dir` (a
 * -pg target writes gmon.out there). With `nice`, at that niceness: 8 spinning workers on 2 cores
 * otherwise slow every start of the graft CLI threefold.
 */
export function startTarget(
  exe: string,
  args: readonly string[],
  dir: string,
  name = "target",
  options: { nice?: number } = {},
): LiveTarget {
  const out = join(dir, `${name}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.out`);
  const argv =
    options.nice === undefined ? [exe, ...args] : ["nice", "-n", String(options.nice), exe, ...args];
  // A simple command with `&`, so $! is the target itself (nice execs it) and not a subshell.
  const script = 'out="$1"; shift; cd "$(dirname "$out")" || exit 1; "$@" >"$out" 2>&1 </dev/null & echo $!';
  const pid = Number(execFileSync("sh", ["-c", script, "sh", out, ...argv], { encoding: "utf8" }).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`could not start ${exe}`);
  return { pid, exe, out };
}

/** SIGKILL the target; a target that is already gone is fine. */
export function killTarget(target: { pid: number } | undefined): void {
  if (target === undefined) return;
  try {
    process.kill(target.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** True while /proc/PID exists and the process is neither a zombie nor dead. */
export function isAlive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "latin1"));
  } catch {
    return false;
  }
}

/** A PID that belonged to a process that has exited and been reaped. */
export function deadPid(): number {
  const r = spawnSync("true");
  if (r.pid === undefined) throw new Error("could not run true");
  return r.pid;
}

/** The target's output so far. */
export function output(target: LiveTarget): string {
  try {
    return readFileSync(target.out, "utf8");
  } catch {
    return "";
  }
}

/**
 * One status line `tick <n> <value> [<key> <number>]…`: the tick number, the value printed (what
 * main's own call of the patched function returned) and the named counters.
 */
export interface Tick {
  readonly tick: number;
  readonly value: number;
  readonly fields: Readonly<Record<string, number>>;
  /** Non-numeric words after a key (e.g. a label the target prints). */
  readonly words: Readonly<Record<string, string>>;
  readonly line: string;
}

/** Every complete status line printed so far. */
export function ticks(target: LiveTarget): Tick[] {
  const text = output(target);
  const complete = text.slice(0, text.lastIndexOf("\n") + 1);
  const out: Tick[] = [];
  for (const line of complete.split("\n")) {
    const parts = line.split(" ");
    if (parts[0] !== "tick" || parts.length < 3) continue;
    const fields: Record<string, number> = {};
    const words: Record<string, string> = {};
    for (let i = 3; i + 1 < parts.length; i += 2) {
      const v = Number(parts[i + 1]);
      if (Number.isFinite(v)) fields[parts[i]!] = v;
      else words[parts[i]!] = parts[i + 1]!;
    }
    out.push({ tick: Number(parts[1]), value: Number(parts[2]), fields, words, line });
  }
  return out;
}

/** The last complete status line, if any. */
export function lastTick(target: LiveTarget): Tick | undefined {
  return ticks(target).at(-1);
}

/** setTimeout as a promise. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `what` every 10 ms until it holds; fail naming `label` after `timeoutMs`. */
export async function waitFor(what: () => boolean, label: string, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!what()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await sleep(10);
  }
}

/**
 * Wait for a status line printed after tick `after` (if given) that satisfies `accept`. Fails fast,
 * with the last lines printed, when the target dies or the time runs out.
 */
export async function waitForTick(
  target: LiveTarget,
  accept: (t: Tick) => boolean = () => true,
  options: { after?: Tick | undefined; timeoutMs?: number; what?: string } = {},
): Promise<Tick> {
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  const after = options.after?.tick ?? -1;
  for (;;) {
    const found = ticks(target).find((t) => t.tick > after && accept(t));
    if (found !== undefined) return found;
    const alive = isAlive(target.pid);
    if (!alive || Date.now() > deadline) {
      const tail = output(target).split("\n").slice(-4).join(" | ");
      throw new Error(
        `target ${target.pid} ${alive ? "never printed" : "died before printing"} ${options.what ?? "the expected line"}; last output: ${tail}`,
      );
    }
    await sleep(10);
  }
}

/** Read `length` bytes at `address` of process `pid` through /proc/PID/mem. */
export function readMem(pid: number, address: bigint, length: number): Buffer {
  const fd = openSync(`/proc/${pid}/mem`, "r");
  try {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, address + BigInt(done));
      if (n <= 0)
        throw new Error(`short read of process ${pid} at 0x${(address + BigInt(done)).toString(16)}`);
      done += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Write bytes at `address` of process `pid` through /proc/PID/mem (works on read-only text, as ptrace does). */
export function writeMem(pid: number, address: bigint, bytes: Uint8Array): void {
  const fd = openSync(`/proc/${pid}/mem`, "r+");
  try {
    const n = writeSync(fd, bytes, 0, bytes.length, Number(address));
    if (n !== bytes.length) throw new Error(`short write to process ${pid} at 0x${address.toString(16)}`);
  } finally {
    closeSync(fd);
  }
}

/** One line of /proc/PID/maps. */
export interface MapLine {
  readonly start: bigint;
  readonly end: bigint;
  readonly perms: string;
  readonly offset: bigint;
  readonly path: string;
}

/** /proc/PID/maps, parsed. */
export function maps(pid: number): MapLine[] {
  return readFileSync(`/proc/${pid}/maps`, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \d+\s*(.*)$/.exec(l);
      if (m === null) throw new Error(`unparsed maps line: ${l}`);
      return {
        start: BigInt(`0x${m[1]}`),
        end: BigInt(`0x${m[2]}`),
        perms: m[3]!,
        offset: BigInt(`0x${m[4]}`),
        path: m[5]!,
      };
    });
}

/** The mappings of file `exe` in process `pid`. */
export function moduleMappings(pid: number, exe: string): MapLine[] {
  const path = realpathSync(exe);
  return maps(pid).filter((m) => m.path === path);
}

/** A copy of every executable mapping of `exe` in the process: its whole text, as the CPU sees it. */
export interface TextSnapshot {
  readonly ranges: readonly { start: bigint; bytes: Buffer }[];
}

export function textSnapshot(pid: number, exe: string): TextSnapshot {
  const ranges = moduleMappings(pid, exe)
    .filter((m) => m.perms.includes("x"))
    .map((m) => ({ start: m.start, bytes: readMem(pid, m.start, Number(m.end - m.start)) }));
  if (ranges.length === 0) throw new Error(`no executable mapping of ${exe} in process ${pid}`);
  return { ranges };
}

/**
 * Where two snapshots of the same text differ, as `0xADDR: old → new` runs (empty when identical),
 * so a failed assertion names the bytes instead of dumping kilobytes.
 */
export function textDiff(a: TextSnapshot, b: TextSnapshot): string[] {
  const out: string[] = [];
  if (a.ranges.length !== b.ranges.length)
    return [`${a.ranges.length} executable mappings, then ${b.ranges.length}`];
  for (const [i, ra] of a.ranges.entries()) {
    const rb = b.ranges[i]!;
    if (ra.start !== rb.start || ra.bytes.length !== rb.bytes.length) {
      out.push(`mapping ${i} moved or resized`);
      continue;
    }
    for (let k = 0; k < ra.bytes.length; k++) {
      if (ra.bytes[k] === rb.bytes[k]) continue;
      let e = k;
      while (e < ra.bytes.length && ra.bytes[e] !== rb.bytes[e]) e++;
      out.push(
        `0x${(ra.start + BigInt(k)).toString(16)}: ${ra.bytes.subarray(k, e).toString("hex")} → ${rb.bytes.subarray(k, e).toString("hex")}`,
      );
      k = e;
    }
  }
  return out;
}

/**
 * Address of a symbol in the file, from nm (the oracle, not graft's reader): a function by default,
 * or any of the nm symbol `types` given (e.g. "bBdD" for data).
 */
export function symbolAddress(exe: string, name: string, types = "tTwW"): bigint {
  const line = execFileSync("nm", ["--defined-only", exe], { encoding: "utf8" })
    .split("\n")
    .find((l) => l.endsWith(` ${name}`) && types.includes(l.split(" ")[1] ?? "-"));
  if (line === undefined) throw new Error(`nm finds no symbol ${name} of type [${types}] in ${exe}`);
  return BigInt(`0x${line.split(" ")[0]}`);
}

/**
 * The load bias of `exe` in process `pid`: where its file-offset-0 mapping starts minus the virtual
 * address readelf gives the PT_LOAD at file offset 0 (0 for a non-PIE executable).
 */
export function loadBias(pid: number, exe: string): bigint {
  const first = moduleMappings(pid, exe).find((m) => m.offset === 0n);
  if (first === undefined) throw new Error(`${exe} is not mapped in process ${pid}`);
  const load = execFileSync("readelf", ["-lW", exe], { encoding: "utf8" })
    .split("\n")
    .map((l) => /^\s+LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)/.exec(l))
    .find((m) => m !== null && BigInt(`0x${m[1]}`) === 0n);
  if (load === undefined || load === null) throw new Error(`${exe} has no PT_LOAD at offset 0`);
  return first.start - BigInt(`0x${load[2]}`);
}

/** Runtime address of symbol `name` (a function unless `types` says otherwise) of `exe` in process `pid`. */
export function runtimeAddress(pid: number, exe: string, name: string, types?: string): bigint {
  return loadBias(pid, exe) + symbolAddress(exe, name, types);
}

/** The built CLI; the scenarios run it as a user would. `npm test` builds it first. */
export const graftCli = join(repoRoot, "dist/cli/main.js");

export interface CliResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run `graft args…` (node dist/cli/main.js) and collect its exit status and output. */
export function runGraft(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; prefix?: readonly string[] } = {},
): CliResult {
  if (!existsSync(graftCli)) throw new Error(`${graftCli} is missing: run npm run build first`);
  const prefix = options.prefix ?? [];
  const argv = [...prefix, process.execPath, graftCli, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: "utf8",
    env: { ...process.env, ...options.env },
    timeout: 60_000,
  });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** What the target must print once a patch is applied or reverted. */
export interface SwitchExpectation {
  /** The value main prints (its own call of the patched function). */
  readonly value: number;
  /** Other fields every tick from the switch on must show (e.g. { flavor: 2 }). */
  readonly fields?: Readonly<Record<string, number>>;
  /** The workers' counter of the answers of the code now in place: must grow. */
  readonly grows: string;
  /** The workers' counters of every other code: must stop growing. */
  readonly frozen: readonly string[];
}

/**
 * After a switch (apply or revert): wait for main to print `value`, then for a window of three ticks
 * in which the workers' `grows` counter grew and no `frozen` counter did. A worker that was inside
 * the old code when it was switched finishes that call whenever the scheduler next runs it (on a
 * loaded 2-core machine, tens of ms later), so the window may come a little after the switch; but it
 * must come, every tick from the switch on must show `value` (and `fields`), and none a bad answer.
 * Returns the last tick seen.
 */
export async function expectSwitched(
  target: LiveTarget,
  want: SwitchExpectation,
  after: Tick | undefined,
): Promise<Tick> {
  const shows = (t: Tick): boolean =>
    t.value === want.value && Object.entries(want.fields ?? {}).every(([k, v]) => t.fields[k] === v);
  const first = await waitForTick(target, shows, {
    after,
    what: `the value ${want.value} ${JSON.stringify(want.fields ?? {})}`,
  });
  const deadline = Date.now() + 10_000;
  for (let base = first; ; ) {
    const next = await waitForTick(target, (t) => t.tick >= base.tick + 3, {
      after: base,
      what: "three more ticks",
    });
    for (const t of ticks(target).filter((x) => x.tick > first.tick && x.tick <= next.tick)) {
      expect(shows(t), `after the switch: ${t.line}`).toBe(true);
      expect(t.fields.bad, t.line).toBe(0);
    }
    const grew = next.fields[want.grows]! > base.fields[want.grows]!;
    const still = want.frozen.every((k) => next.fields[k] === base.fields[k]);
    if (grew && still) return next;
    if (Date.now() > deadline)
      expect.fail(
        `workers do not give only ${want.grows} answers 10 s after the switch: ${first.line} … ${next.line}`,
      );
    base = next;
  }
}

/**
 * The setting of a scenario test file: a temp folder `dir` (prefix `prefix`) holding graft's state
 * (GRAFT_STATE_DIR=dir/state), and `started`, the targets its tests start; after the file's tests
 * every one of them is killed and the folder removed. Call once at the top of the file.
 */
export function useScenario(prefix: string): { readonly dir: string; readonly started: LiveTarget[] } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.env.GRAFT_STATE_DIR = join(dir, "state");
  const started: LiveTarget[] = [];
  afterAll(() => {
    for (const t of started) killTarget(t);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, started };
}
