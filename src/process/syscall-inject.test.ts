import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GraftError } from "../core/errors.js";
import {
  buildTarget,
  isAlive,
  killTarget,
  nextTick,
  signalTakingThread,
  sleep,
  startTarget,
  type Target,
  waitForOutput,
} from "./fixtures/run-target.js";
import { findFreeRegionNear } from "./free-region.js";
import { findMapping, formatPerms, readMaps } from "./maps.js";
import { readMemory, writeMemory } from "./memory.js";
import { findModule, listModules } from "./modules.js";
import { getRegs, PTRACE_O, seize } from "./ptrace.js";
import type { Registers } from "./registers.js";
import { type StoppedProcess, stopProcess } from "./stop-the-world.js";
import { injectMmap, injectMprotect, injectMunmap, PROT, syscallGadget } from "./syscall-inject.js";

const NR_READ = 0n;
const NR_NANOSLEEP = 35n;
const NR_CLOCK_NANOSLEEP = 230n;
const ERESTARTSYS = -512n;
const ERESTART_RESTARTBLOCK = -516n;

let exe: string;
let dir: string;
let target: Target;

beforeAll(async () => {
  exe = buildTarget();
  dir = mkdtempSync(join(tmpdir(), "graft-inject-"));
  target = startTarget(exe, dir, "light");
  await waitForOutput(target, /^tick 1 /m);
});

afterAll(() => {
  killTarget(target);
  rmSync(dir, { recursive: true, force: true });
});

/** Stop, run `fn`, resume — resume even when fn throws. */
function whileStopped<T>(fn: (stopped: StoppedProcess) => T): T {
  const stopped = stopProcess(target.pid);
  try {
    return fn(stopped);
  } finally {
    stopped.resume();
  }
}

function threadIn(
  stopped: StoppedProcess,
  nrs: readonly bigint[],
): { tid: number; regs: Registers } | undefined {
  return stopped.threads.find((t) => nrs.includes(t.regs.orig_rax));
}

describe("injectSyscall", () => {
  it("finds its syscall instruction in the vDSO", () => {
    whileStopped((stopped) => {
      const gadget = syscallGadget(stopped);
      const vdso = findMapping(readMaps(target.pid), gadget);
      expect(vdso?.path).toBe("[vdso]");
      expect(readMemory(target.pid, gadget, 2)).toEqual(new Uint8Array([0x0f, 0x05]));
    });
  });

  it("finds it at the same vDSO offset in a second process (the same kernel image, looked up there first)", async () => {
    const other = startTarget(exe, dir, "light");
    try {
      await waitForOutput(other, /^tick 1 /m);
      const offsetIn = (pid: number): bigint => {
        const stopped = stopProcess(pid);
        try {
          const gadget = syscallGadget(stopped);
          expect(readMemory(pid, gadget, 2)).toEqual(new Uint8Array([0x0f, 0x05]));
          const vdso = findMapping(readMaps(pid), gadget);
          expect(vdso?.path).toBe("[vdso]");
          return gadget - vdso!.start;
        } finally {
          stopped.resume();
        }
      };
      expect(offsetIn(other.pid)).toBe(offsetIn(target.pid));
    } finally {
      killTarget(other);
    }
  });

  it("maps memory with the requested permissions, and munmap removes it, restoring every register", () => {
    whileStopped((stopped) => {
      const before = stopped.threads.map((t) => t.regs);
      const addr = injectMmap(stopped, { length: 0x3000n, prot: PROT.PROT_READ | PROT.PROT_WRITE });
      // The kernel may merge the new mapping with a neighbour of the same kind.
      const mapping = findMapping(readMaps(target.pid), addr);
      expect(mapping?.start).toBeLessThanOrEqual(addr);
      expect(mapping?.end).toBeGreaterThanOrEqual(addr + 0x3000n);
      expect(formatPerms(mapping?.perms ?? { r: false, w: false, x: false, p: false })).toBe("rw-p");
      writeMemory(target.pid, addr + 0x1000n, new Uint8Array([1, 2, 3]));
      expect(readMemory(target.pid, addr + 0x1000n, 3)).toEqual(new Uint8Array([1, 2, 3]));
      injectMunmap(stopped, addr, 0x3000n);
      expect(findMapping(readMaps(target.pid), addr)).toBeUndefined();
      const after = stopped.threads.map((t) => getRegs(t.tid, target.pid));
      expect(after).toEqual(before);
    });
  });

  it("maps patch space exactly where findFreeRegionNear says, within rel32 reach of the executable", () => {
    whileStopped((stopped) => {
      const maps = readMaps(target.pid);
      const module = findModule(listModules(maps), exe);
      expect(module).toBeDefined();
      if (module === undefined) return;
      const region = findFreeRegionNear(maps, module, 0x2000n);
      expect(region).toBeDefined();
      if (region === undefined) return;
      const addr = injectMmap(stopped, { length: 0x2000n, addr: region.start });
      expect(addr).toBe(region.start);
      const mapping = findMapping(readMaps(target.pid), addr);
      expect(mapping?.perms).toMatchObject({ r: true, w: false, x: true });
      // Code goes in through /proc/PID/mem even though the mapping is not writable.
      writeMemory(target.pid, addr, new Uint8Array([0xc3]));
      expect(readMemory(target.pid, addr, 1)).toEqual(new Uint8Array([0xc3]));
      injectMunmap(stopped, addr, 0x2000n);
    });
  });

  it("reports a failing call as SYSCALL_INJECTION_FAILED with its errno and restores the thread", () => {
    whileStopped((stopped) => {
      const before = getRegs(target.pid, target.pid);
      let error: GraftError | undefined;
      try {
        injectMprotect(stopped, 0x1000n, 0x1000n, PROT.PROT_READ);
      } catch (e) {
        error = e as GraftError;
      }
      expect(error?.code).toBe("SYSCALL_INJECTION_FAILED");
      expect(error?.message).toContain("ENOMEM");
      expect(getRegs(target.pid, target.pid)).toEqual(before);
    });
    expect(isAlive(target.pid)).toBe(true);
  });

  it("lets a thread blocked in read() on a pipe restart it and receive data after an injection", async () => {
    for (let round = 0; round < 3; round++) {
      whileStopped((stopped) => {
        const reader = threadIn(stopped, [NR_READ]);
        expect(reader, "a thread inside read()").toBeDefined();
        if (reader === undefined) return;
        expect(BigInt.asIntN(64, reader.regs.rax)).toBe(ERESTARTSYS);
        const addr = injectMmap(stopped, { length: 0x1000n, prot: PROT.PROT_READ }, { tid: reader.tid });
        injectMunmap(stopped, addr, 0x1000n, { tid: reader.tid });
        expect(getRegs(reader.tid, target.pid)).toEqual(reader.regs);
      });
      writeFileSync(target.fifo, `after-inject-${round}\n`);
      await waitForOutput(target, new RegExp(`^read: after-inject-${round}$`, "m"));
    }
    const tick = await nextTick(target, undefined);
    expect(tick.eintr).toBe(0);
  });

  it("lets threads in nanosleep restart the sleep with its remaining time after an injection", async () => {
    const start = await nextTick(target, undefined);
    let restartBlocks = 0;
    for (let round = 0; round < 5; round++) {
      whileStopped((stopped) => {
        for (const t of stopped.threads.filter((x) =>
          [NR_NANOSLEEP, NR_CLOCK_NANOSLEEP].includes(x.regs.orig_rax),
        )) {
          if (BigInt.asIntN(64, t.regs.rax) === ERESTART_RESTARTBLOCK) restartBlocks++;
          const addr = injectMmap(stopped, { length: 0x1000n }, { tid: t.tid });
          injectMunmap(stopped, addr, 0x1000n, { tid: t.tid });
        }
      });
      await sleep(70);
    }
    await sleep(700);
    const end = await nextTick(target, undefined);
    expect(restartBlocks).toBeGreaterThan(0);
    // The 300 ms sleeper counts any wake-up that came early or with EINTR.
    expect(end.long).toBeGreaterThan(start.long);
    expect(end.longbad).toBe(0);
  });

  it("injects into a thread held in a signal-delivery-stop and still delivers that signal afterwards", async () => {
    const before = await nextTick(target, undefined);
    const spin0 = signalTakingThread(target.pid);
    seize(spin0, PTRACE_O.PTRACE_O_TRACECLONE, target.pid);
    process.kill(target.pid, "SIGUSR1");
    await sleep(50);
    const stopped = stopProcess(target.pid);
    let redelivered = 0;
    try {
      const held = stopped.threads.find((t) => t.tid === spin0);
      expect(held).toBeDefined();
      const regs = held?.regs;
      const addr = injectMmap(stopped, { length: 0x1000n }, { tid: spin0 });
      injectMunmap(stopped, addr, 0x1000n, { tid: spin0 });
      expect(getRegs(spin0, target.pid)).toEqual(regs);
    } finally {
      redelivered = stopped.resume().signalsRedelivered;
    }
    expect(redelivered).toBe(1);
    await sleep(100);
    const after = await nextTick(target, await nextTick(target, undefined));
    expect(after.external).toBe(before.external + 1);
    expect(after.weird).toBe(0);
    expect(after.sent).toBeGreaterThan(before.sent);
    expect(after.sent - after.handled).toBeLessThanOrEqual(1);
  });

  it("stops and injects into a process whose main thread ended with pthread_exit", async () => {
    const orphan = startTarget(exe, dir, "exit-main");
    try {
      await waitForOutput(orphan, /^tick 1 /m);
      const stopped = stopProcess(orphan.pid);
      try {
        expect(stopped.threads).toHaveLength(9);
        expect(stopped.threads.some((t) => t.tid === orphan.pid)).toBe(false);
        expect(stopped.memoryPid).not.toBe(orphan.pid);
        const addr = injectMmap(stopped, { length: 0x1000n, prot: PROT.PROT_READ | PROT.PROT_WRITE });
        writeMemory(stopped.memoryPid, addr, new Uint8Array([7, 7]));
        expect(readMemory(stopped.memoryPid, addr, 2)).toEqual(new Uint8Array([7, 7]));
        injectMunmap(stopped, addr, 0x1000n);
      } finally {
        stopped.resume();
      }
      const a = await nextTick(orphan, undefined);
      expect((await nextTick(orphan, a)).tick).toBeGreaterThan(a.tick);
    } finally {
      killTarget(orphan);
    }
  });

  it("survives 30 rounds of injections into every thread with the target healthy afterwards", async () => {
    const first = await nextTick(target, undefined);
    let redelivered = 0;
    for (let round = 0; round < 30; round++) {
      const stopped = stopProcess(target.pid);
      try {
        for (const t of stopped.threads) {
          const addr = injectMmap(stopped, { length: 0x1000n }, { tid: t.tid });
          injectMunmap(stopped, addr, 0x1000n, { tid: t.tid });
        }
      } finally {
        redelivered += stopped.resume().signalsRedelivered;
      }
      await sleep(3 + (round % 5) * 4);
    }
    const a = await nextTick(target, undefined);
    const b = await nextTick(target, await nextTick(target, a));
    process.stderr.write(`[syscall-inject] ${JSON.stringify(b)}\n`);
    expect(isAlive(target.pid)).toBe(true);
    expect(b.sent).toBeGreaterThan(a.sent);
    expect(b.sent - b.handled).toBeLessThanOrEqual(1);
    expect(b.weird).toBe(0);
    expect(b.eintr).toBe(0);
    expect(b.longbad).toBe(0);
    for (let i = 0; i < 3; i++) expect(b.spin[i]).toBeGreaterThan(first.spin[i] ?? 0);
    process.stderr.write(
      `[syscall-inject] 30 rounds × 9 threads; signals held and redelivered: ${redelivered}\n`,
    );
  });
});
