import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GraftError } from "../core/errors.js";
import {
  buildTarget,
  isAlive,
  killTarget,
  lastTick,
  nextTick,
  output,
  signalTakingThread,
  sleep,
  startTarget,
  type Target,
  waitForOutput,
} from "./fixtures/run-target.js";
import { findMapping, readMaps } from "./maps.js";
import { PTRACE_O, seize } from "./ptrace.js";
import { type StopWindow, stopProcess } from "./stop-the-world.js";
import { stragglerCount } from "./stragglers.js";
import { findThreadStatus, listThreads } from "./threads.js";

let exe: string;
let dir: string;
const targets: Target[] = [];

async function launch(mode = "normal"): Promise<Target> {
  const t = startTarget(exe, dir, mode);
  targets.push(t);
  await waitForOutput(t, /^tick 1 /m);
  return t;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof GraftError) return error.code;
    throw error;
  }
  return undefined;
}

function summary(values: number[]): { min: number; median: number; p90: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { min: s[0] ?? Number.NaN, median: at(0.5), p90: at(0.9), max: s.at(-1) ?? Number.NaN };
}

beforeAll(() => {
  exe = buildTarget();
  dir = mkdtempSync(join(tmpdir(), "graft-stop-"));
});

afterAll(() => {
  for (const t of targets) killTarget(t);
  rmSync(dir, { recursive: true, force: true });
});

describe("stopProcess", () => {
  it("stops all 9 threads of the target, each in a tracing stop with readable registers", async () => {
    const t = await launch();
    const stopped = stopProcess(t.pid);
    try {
      const tids = stopped.threads.map((x) => x.tid);
      expect(tids).toHaveLength(9);
      expect(tids).toEqual(listThreads(t.pid));
      const maps = readMaps(t.pid);
      for (const thread of stopped.threads) {
        const status = findThreadStatus(t.pid, thread.tid);
        expect(status?.tracerPid).toBe(process.pid);
        expect(status?.state).toBe("t");
        const m = findMapping(maps, thread.regs.rip);
        expect(m?.perms.x, `rip of ${thread.tid} in an executable mapping`).toBe(true);
        expect(thread.regs.rsp).toBeGreaterThan(0n);
      }
    } finally {
      stopped.resume();
    }
    for (const tid of listThreads(t.pid)) expect(findThreadStatus(t.pid, tid)?.tracerPid).toBe(0);
    const before = await nextTick(t, lastTick(t));
    const after = await nextTick(t, before);
    for (let i = 0; i < 3; i++) expect(after.spin[i]).toBeGreaterThan(before.spin[i] ?? 0);
    killTarget(t);
  });

  it("survives 50 stop/resume cycles without killing the target, losing a signal or breaking a sleep", async () => {
    for (const mode of ["normal", "light"]) {
      const t = await launch(mode);
      const first = await nextTick(t, undefined);
      const windows: StopWindow[] = [];
      const counts: number[] = [];
      for (let i = 0; i < 50; i++) {
        const stopped = stopProcess(t.pid);
        counts.push(stopped.threads.length);
        windows.push(stopped.resume());
        await sleep(5 + (i % 7) * 3);
      }
      expect(counts.every((n) => n === 9)).toBe(true);
      expect(isAlive(t.pid)).toBe(true);
      const a = await nextTick(t, undefined);
      const b = await nextTick(t, a, 3000);
      // The signaler waits for each signal to be handled before it sends the next: a lost signal
      // would freeze `sent`.
      const c = await nextTick(t, b);
      expect(c.sent).toBeGreaterThan(a.sent);
      expect(c.sent - c.handled).toBeLessThanOrEqual(1);
      expect(c.weird).toBe(0);
      expect(c.longbad).toBe(0);
      expect(c.eintr).toBe(0);
      expect(c.long).toBeGreaterThan(first.long);
      for (let i = 0; i < 3; i++) expect(c.spin[i]).toBeGreaterThan(first.spin[i] ?? 0);
      const us = (f: (w: StopWindow) => number) => summary(windows.map((w) => Math.round(f(w) / 1000)));
      process.stderr.write(
        `[stop-the-world ${mode}, 9 threads, 50 cycles, µs] window ${JSON.stringify(us((w) => w.windowNs))} stop ${JSON.stringify(
          us((w) => w.stopNs),
        )} held ${JSON.stringify(us((w) => w.heldNs))} resume ${JSON.stringify(us((w) => w.resumeNs))} signals redelivered ${windows.reduce(
          (n, w) => n + w.signalsRedelivered,
          0,
        )}\n`,
      );
      killTarget(t);
    }
  });

  it("delivers a signal sent while the process is stopped once it resumes, with its siginfo", async () => {
    const t = await launch();
    const before = await nextTick(t, undefined);
    const stopped = stopProcess(t.pid);
    process.kill(t.pid, "SIGUSR1");
    await sleep(50);
    stopped.resume();
    await sleep(100);
    const after = await nextTick(t, await nextTick(t, undefined));
    expect(after.external).toBe(before.external + 1);
    expect(after.weird).toBe(0);
    killTarget(t);
  });

  it("keeps a signal that reached a thread before its interrupt and delivers it on resume, siginfo intact", async () => {
    const t = await launch();
    const before = await nextTick(t, undefined);
    const spin0 = signalTakingThread(t.pid);
    // Seize spin0 ahead of stopProcess and let a SIGUSR1 put it in a signal-delivery-stop; stopProcess
    // then meets that stop (not an interrupt stop) for this thread, deterministically.
    seize(spin0, PTRACE_O.PTRACE_O_TRACECLONE, t.pid);
    process.kill(t.pid, "SIGUSR1");
    await sleep(50);
    const stopped = stopProcess(t.pid);
    expect(stopped.threads).toHaveLength(9);
    const window = stopped.resume();
    expect(window.signalsRedelivered).toBe(1);
    await sleep(100);
    const after = await nextTick(t, await nextTick(t, undefined));
    expect(after.external).toBe(before.external + 1);
    expect(after.weird).toBe(0);
    expect(after.sent).toBeGreaterThan(before.sent);
    expect(after.sent - after.handled).toBeLessThanOrEqual(1);
    killTarget(t);
  });

  it("catches threads created while it stops a process that spawns threads without pause", async () => {
    const t = await launch("storm");
    for (let i = 0; i < 200; i++) {
      const stopped = stopProcess(t.pid);
      try {
        const held = new Set(stopped.threads.map((x) => x.tid));
        for (const tid of listThreads(t.pid)) {
          if (held.has(tid)) continue;
          // Only a thread that already exited (a zombie being released) may be missing.
          const state = findThreadStatus(t.pid, tid)?.state;
          expect(state === undefined || state === "Z" || state === "X", `thread ${tid} state ${state}`).toBe(
            true,
          );
        }
        for (const tid of held) expect(findThreadStatus(t.pid, tid)?.state ?? "t").toBe("t");
      } finally {
        stopped.resume();
      }
      await sleep(5);
    }
    const a = await nextTick(t, undefined);
    const b = await nextTick(t, a);
    expect(b.born).toBeGreaterThan(a.born);
    expect(isAlive(t.pid)).toBe(true);
    killTarget(t);
  });

  it("reports NO_SUCH_PROCESS for a PID that has exited", () => {
    const dead = Number(execFileSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).trim());
    expect(codeOf(() => stopProcess(dead))).toBe("NO_SUCH_PROCESS");
  });

  it("refuses to stop its own process with PERMISSION_DENIED", () => {
    expect(codeOf(() => stopProcess(process.pid))).toBe("PERMISSION_DENIED");
  });

  it("refuses with ALREADY_TRACED, naming the tracer, while strace holds the process", async () => {
    const t = await launch();
    const strace = Number(
      execFileSync("sh", ["-c", 'strace -f -p "$0" -o /dev/null >/dev/null 2>&1 & echo $!', String(t.pid)], {
        encoding: "utf8",
      }).trim(),
    );
    try {
      const traced = () =>
        listThreads(t.pid).every((tid) => findThreadStatus(t.pid, tid)?.tracerPid === strace);
      for (let i = 0; i < 200 && !traced(); i++) await sleep(20);
      let caught: unknown;
      try {
        stopProcess(t.pid).resume();
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(GraftError);
      const error = caught as GraftError;
      expect(error.code).toBe("ALREADY_TRACED");
      expect(error.message).toContain("strace");
      expect(error.hint).toContain("another tracer (gdb, strace, graft) is attached");
      // Nothing of ours stays attached.
      for (const tid of listThreads(t.pid)) expect(findThreadStatus(t.pid, tid)?.tracerPid).toBe(strace);
    } finally {
      process.kill(strace, "SIGTERM");
    }
    const untraced = () => listThreads(t.pid).every((tid) => findThreadStatus(t.pid, tid)?.tracerPid === 0);
    for (let i = 0; i < 200 && !untraced(); i++) await sleep(20);
    const stopped = stopProcess(t.pid);
    expect(stopped.threads).toHaveLength(9);
    stopped.resume();
    killTarget(t);
  });

  it("gives up with THREAD_STOP_FAILED on a thread stuck in vfork, leaving the target running", async () => {
    const t = await launch("vfork");
    writeFileSync(t.fifo, "vfork\n");
    await waitForOutput(t, /^vforking$/m);
    await sleep(100);
    let code: string | undefined;
    try {
      stopProcess(t.pid, { timeoutMs: 300 }).resume();
    } catch (error) {
      code = (error as GraftError).code;
    }
    expect(code).toBe("THREAD_STOP_FAILED");
    // It gave up at its own deadline, not because the 3 s vfork ended and the parent stopped after all.
    expect(output(t)).not.toMatch(/^vfork done$/m);
    // Every thread that could stop was let go at once; the vfork parent is detached once it wakes.
    const a = await nextTick(t, undefined);
    const b = await nextTick(t, a);
    expect(b.spin[1]).toBeGreaterThan(a.spin[1] ?? 0);
    await waitForOutput(t, /^vfork done$/m, 6000);
    for (let i = 0; i < 100 && stragglerCount() > 0; i++) await sleep(20);
    expect(stragglerCount()).toBe(0);
    for (const tid of listThreads(t.pid)) expect(findThreadStatus(t.pid, tid)?.tracerPid).toBe(0);
    const stopped = stopProcess(t.pid);
    expect(stopped.threads).toHaveLength(10);
    stopped.resume();
    killTarget(t);
  });
});
