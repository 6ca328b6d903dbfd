/**
 * `graft trace --usdt provider:name`: record every hit of USDT probes with their arguments.
 *
 * A probe site is a NOP one byte long in most sys/sdt.h versions (`nop`), in the middle of a
 * function: no room for a jump, and a `call` there would overwrite the red zone. So each hit traps:
 * int3 over the NOP's first byte, every thread seized (nothing stopped; one-byte 0xcc stores need no
 * stop, see break-at.ts), and on a SIGTRAP at a probe graft reads the registers, decodes the
 * arguments from the probe's spec (usdt-argument-value.ts), and resumes the thread after the NOP —
 * skipping a NOP is exact, so the trap stays armed and no single-step is needed. Each semaphore is
 * incremented while tracing (the counter `if (PROBE_ENABLED())` reads, as the kernel's uprobe
 * ref_ctr does) and decremented after. A hit costs a ptrace stop (microseconds), so this suits
 * probes, not hot paths.
 */
import { checkElf } from "../analysis/check.js";
import { globToRegExp } from "../analysis/glob.js";
import { getLiveArchForMachine } from "../arch/index.js";
import { GraftError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import { decodeUsdtLocation } from "../formats/elf/usdt-location.js";
import { openMemory } from "../process/memory.js";
import { processIsAlive } from "../process/process-alive.js";
import { cont, getRegs, PTRACE_O, SIG, seize, setRegs } from "../process/ptrace.js";
import { pollSignalStops } from "../process/signal-stops.js";
import { listThreads } from "../process/threads.js";
import { loadMainModule } from "./main-module.js";
import { releaseThreads } from "./release-threads.js";
import { lockTarget } from "./target-lock.js";
import { usdtArgumentValue } from "./usdt-argument-value.js";

export interface TracedProbe {
  readonly provider: string;
  readonly name: string;
  readonly address: bigint;
  readonly semaphore: bigint;
  readonly specs: readonly string[];
}

export interface UsdtEvent {
  /** CLOCK_MONOTONIC nanoseconds when graft saw the hit. */
  readonly ns: bigint;
  readonly tid: number;
  readonly probe: number;
  /** Decoded arguments; undefined where one could not be read. */
  readonly args: readonly (bigint | undefined)[];
}

export interface UsdtTraceOptions {
  readonly durationMs?: number;
  readonly shouldStop?: () => boolean;
  /** Called once every probe is armed (e.g. to let a command started stopped go). */
  readonly onArmed?: (probes: readonly TracedProbe[]) => void;
}

export interface UsdtTraceResult {
  readonly probes: readonly TracedProbe[];
  readonly events: readonly UsdtEvent[];
  readonly end: "stopped" | "duration" | "exited";
}

const INT3 = 0xcc;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Trace the probes of `pid`'s main executable matching one of `patterns` (`provider:name` globs). */
export async function traceUsdt(
  pid: number,
  patterns: readonly string[],
  options: UsdtTraceOptions = {},
): Promise<UsdtTraceResult> {
  const loaded = loadMainModule(pid);
  const arch = getLiveArchForMachine(loaded.elf.header.e_machine, loaded.module.path);
  const report = checkElf(loaded.elf, arch, { functionGlob: "\0none" });
  const res = patterns.map((p) => {
    const [provider, name] = p.includes(":") ? p.split(":", 2) : ["*", p];
    return { provider: globToRegExp(provider!), name: globToRegExp(name!) };
  });
  const chosen = report.usdt.filter((u) =>
    res.some((r) => r.provider.test(u.provider) && r.name.test(u.name)),
  );
  if (chosen.length === 0) {
    throw new GraftError("NOTHING_TO_TRACE", `no USDT probe matches ${patterns.join(", ")}`, {
      subject: `pid ${pid}`,
      hint: "graft probes PID lists them",
    });
  }
  const probes: TracedProbe[] = chosen.map((u) => ({
    provider: u.provider,
    name: u.name,
    address: u.address + loaded.bias,
    semaphore: u.semaphore === 0n ? 0n : u.semaphore + loaded.bias,
    specs: u.arguments.map((a) => `${a.signed ? "-" : ""}${a.size}@${a.location}`),
  }));
  const byAddress = new Map(probes.map((p, i) => [p.address, { probe: p, index: i, site: chosen[i]! }]));
  const symbols = new Map<string, bigint>();
  for (const s of loaded.elf.symbols())
    if (s.name !== "" && s.st_value !== 0n) symbols.set(s.name, s.st_value + loaded.bias);
  const lock = lockTarget(pid);
  const mem = openMemory(pid);
  const threads = new Set<number>();
  const armed: { address: bigint; original: number }[] = [];
  const semaphores = [...new Set(probes.map((p) => p.semaphore).filter((s) => s !== 0n))];
  const raised: bigint[] = [];
  const events: UsdtEvent[] = [];
  const read = (address: bigint, length: number): Uint8Array | undefined => {
    try {
      return mem.read(address, length);
    } catch {
      return undefined;
    }
  };
  const hit = (tid: number): boolean => {
    const regs = getRegs(tid, pid);
    const p = byAddress.get(regs.rip - 1n);
    if (p === undefined) return false;
    const after = p.probe.address + BigInt(Math.max(1, p.site.nopLength));
    events.push({
      ns: process.hrtime.bigint(),
      tid,
      probe: p.index,
      args: p.site.arguments.map((a) =>
        usdtArgumentValue(decodeUsdtLocation(a.location), a.size, a.signed, regs, after, read, (n) =>
          symbols.get(n),
        ),
      ),
    });
    setRegs(tid, { ...regs, rip: after }, pid);
    return true;
  };
  let end: UsdtTraceResult["end"] = "stopped";
  try {
    for (const tid of listThreads(pid)) {
      seize(tid, PTRACE_O.PTRACE_O_TRACECLONE, pid);
      threads.add(tid);
    }
    for (const s of semaphores) {
      const v = new DataView(mem.read(s, 2).buffer).getUint16(0, true);
      mem.write(s, Uint8Array.of((v + 1) & 0xff, ((v + 1) >> 8) & 0xff));
      raised.push(s);
    }
    for (const [i, p] of probes.entries()) {
      const original = mem.read(p.address, 1)[0]!;
      if (chosen[i]!.nopLength === 0 || original === INT3) {
        throw new GraftError(
          "TRACE_SITE_BUSY",
          `probe ${p.provider}:${p.name} at ${hex(p.address)} is not a NOP`,
          {
            subject: `pid ${pid}`,
          },
        );
      }
      mem.write(p.address, Uint8Array.of(INT3));
      armed.push({ address: p.address, original });
    }
    options.onArmed?.(probes);
    const until =
      options.durationMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.durationMs;
    for (;;) {
      if (options.shouldStop?.() === true) break;
      if (Date.now() >= until) {
        end = "duration";
        break;
      }
      if (threads.size === 0 || !processIsAlive(pid)) {
        end = "exited";
        break;
      }
      const round = pollSignalStops(pid, threads);
      for (const { tid, signal } of round.stops) {
        if (signal === SIG.SIGTRAP && hit(tid)) cont(tid, 0, pid);
        else cont(tid, signal, pid);
      }
      if (round.idle) await sleep(1);
    }
    return { probes, events, end };
  } finally {
    try {
      for (const a of armed.reverse()) mem.write(a.address, Uint8Array.of(a.original));
      for (const s of raised) {
        const v = new DataView(mem.read(s, 2).buffer).getUint16(0, true);
        if (v > 0) mem.write(s, Uint8Array.of((v - 1) & 0xff, ((v - 1) >> 8) & 0xff));
      }
    } catch {
      // The process is gone.
    } finally {
      if (processIsAlive(pid)) releaseThreads(pid, threads, (tid) => hit(tid));
      mem.close();
      lock.release();
    }
  }
}
