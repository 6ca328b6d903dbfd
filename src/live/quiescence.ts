import { hex } from "../core/hex.js";
import { STT } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import { findMapping, type Mapping } from "../process/maps.js";
import { readMemory } from "../process/memory.js";
import type { StoppedProcess } from "../process/stop-the-world.js";
import { type StackFrame, Unwinder } from "../process/unwind.js";
import type { TargetModules } from "./target-modules.js";

/** Code no thread may be in, or return into, for the change to be quiescent. */
export interface GuardedRange {
  readonly start: bigint;
  readonly end: bigint;
  /** What it is, for the refusal (`compute`, `patch code of 1a2b…`). */
  readonly name: string;
}

/** How far above the stack pointer a conservative scan looks when unwinding could not finish. */
const SCAN_LIMIT = 8n << 20n;

/**
 * With the process stopped: the threads that are executing, or have a frame on their stack in, one
 * of `ranges` — one line each, with the thread's frames symbolized — or an empty list when the
 * process is quiescent for them. A stack the unwinder could not walk to its outermost frame, or
 * walked partly by frame pointers (which skip the caller of a function that sets up no frame), is
 * also scanned word by word from the stack pointer up, so an unwinding failure can only refuse,
 * never let a change through.
 */
export function findBlockingThreads(
  stopped: StoppedProcess,
  maps: readonly Mapping[],
  modules: TargetModules,
  ranges: readonly GuardedRange[],
): string[] {
  const inRange = (a: bigint): GuardedRange | undefined => ranges.find((r) => r.start <= a && a < r.end);
  const unwinder = new Unwinder(stopped.memoryPid, maps, (m) => modules.load(m));
  const names = new Symbolizer(modules);
  const reasons: string[] = [];
  try {
    for (const t of stopped.threads) {
      const bt = unwinder.unwind(t.regs);
      const hit = bt.frames.findIndex((f, i) => inRange(i === 0 ? f.pc : f.pc - 1n) !== undefined);
      const trace = bt.frames.map((f, i) => names.name(f, i)).join(" ← ");
      if (hit >= 0) {
        const r = inRange(hit === 0 ? bt.frames[0]!.pc : bt.frames[hit]!.pc - 1n)!;
        reasons.push(
          `thread ${t.tid} ${hit === 0 ? "is executing" : `has a frame (#${hit}) in`} ${r.name}: ${trace}`,
        );
        continue;
      }
      if (bt.end === "outermost" && bt.frames.every((f) => f.method !== "frame-pointer")) continue;
      const word = scanStack(stopped.memoryPid, maps, t.regs.rsp, inRange);
      if (word !== undefined) {
        reasons.push(
          `thread ${t.tid} may return into ${word.range.name} (unwinding ended: ${bt.end}; stack word ${hex(word.value)} at ${hex(word.at)}): ${trace}`,
        );
      }
    }
  } finally {
    unwinder.close();
  }
  return reasons;
}

function scanStack(
  pid: number,
  maps: readonly Mapping[],
  sp: bigint,
  inRange: (a: bigint) => GuardedRange | undefined,
): { at: bigint; value: bigint; range: GuardedRange } | undefined {
  const stack = findMapping(maps, sp);
  if (stack === undefined) return undefined;
  const from = sp & ~7n;
  const to = stack.end - from > SCAN_LIMIT ? from + SCAN_LIMIT : stack.end;
  let bytes: Uint8Array;
  try {
    bytes = readMemory(pid, from, Number(to - from));
  } catch {
    return undefined;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let o = 0; o + 8 <= bytes.length; o += 8) {
    const value = view.getBigUint64(o, true);
    const range = inRange(value - 1n) ?? inRange(value);
    if (range !== undefined) return { at: from + BigInt(o), value, range };
  }
  return undefined;
}

/** `function+0xoff` for a frame, from the symbols of the module it is in. */
class Symbolizer {
  private readonly tables = new WeakMap<Elf, { start: bigint; end: bigint; name: string }[]>();
  constructor(private readonly modules: TargetModules) {}

  name(f: StackFrame, index: number): string {
    const module = this.modules.modules.find((m) => m.path === f.module);
    const loaded = module === undefined ? undefined : this.modules.load(module);
    const file = f.module?.split("/").pop() ?? "?";
    if (loaded === undefined || f.fileAddress === undefined) return `${hex(f.pc)} (${file})`;
    const at = index === 0 ? f.fileAddress : f.fileAddress - 1n;
    const fn = this.table(loaded.elf).find((s) => s.start <= at && at < s.end);
    return fn === undefined
      ? `${hex(f.pc)} (${file})`
      : `${fn.name}+0x${(f.fileAddress - fn.start).toString(16)} (${file})`;
  }

  private table(elf: Elf): { start: bigint; end: bigint; name: string }[] {
    let t = this.tables.get(elf);
    if (t === undefined) {
      t = [...elf.symbols(), ...elf.dynamicSymbols()]
        .filter((s) => (s.type === STT.STT_FUNC || s.type === STT.STT_GNU_IFUNC) && s.st_shndx !== 0)
        .map((s) => ({
          start: s.st_value,
          end: s.st_value + (s.st_size === 0n ? 1n : s.st_size),
          name: s.name,
        }));
      this.tables.set(elf, t);
    }
    return t;
  }
}

/** The link-time extent of the function at `address` of `elf` (its symbol's size; 1 byte when unknown). */
export function functionExtent(elf: Elf, address: bigint): bigint {
  let size = 0n;
  for (const s of [...elf.symbols(), ...elf.dynamicSymbols()]) {
    if (s.st_value === address && s.st_shndx !== 0 && s.type === STT.STT_FUNC && s.st_size > size)
      size = s.st_size;
  }
  return size === 0n ? 1n : size;
}
