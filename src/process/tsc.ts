/**
 * The time-stamp counter, read in graft's own process, to turn the tracing runtime's `rdtsc` stamps
 * into CLOCK_MONOTONIC nanoseconds. On CPUs with an invariant TSC (cpuid 80000007H:EDX[8], Linux
 * flags `constant_tsc nonstop_tsc`), every core and process reads the same counter at a fixed rate
 * (Intel SDM Vol. 3 §17.17), so two (tsc, monotonic) pairs taken by graft calibrate the target's
 * stamps. Node has no rdtsc: three instructions are put in an executable page of graft's own
 * memory (mapped RW, written, then made RX) and called through koffi.
 */
import { readFileSync } from "node:fs";
import koffi from "koffi";

/** rdtsc; shl $32, %rdx; or %rdx, %rax; ret */
const RDTSC_CODE = [0x0f, 0x31, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0, 0xc3];

let reader: (() => bigint) | undefined;

function makeReader(): () => bigint {
  const lib = koffi.load("libc.so.6");
  const mmap = lib.func(
    "uint64_t mmap(uint64_t addr, uint64_t len, int prot, int flags, int fd, int64_t off)",
  );
  const mprotect = lib.func("int mprotect(uint64_t addr, uint64_t len, int prot)");
  const memcpy = lib.func("uint64_t memcpy(uint64_t dst, void *src, uint64_t n)");
  const page = BigInt(mmap(0n, 4096n, 3, 0x22, -1, 0n));
  if (page === 0xffffffffffffffffn) throw new Error("mmap for the rdtsc helper failed");
  memcpy(page, Uint8Array.from(RDTSC_CODE), BigInt(RDTSC_CODE.length));
  if (mprotect(page, 4096n, 5) !== 0) throw new Error("mprotect for the rdtsc helper failed");
  const proto = koffi.proto("uint64_t graft_rdtsc(void)");
  const fn = koffi.decode(page, proto) as () => number | bigint;
  return () => BigInt(fn());
}

/** The current TSC of this CPU. */
export function readTsc(): bigint {
  reader ??= makeReader();
  return reader();
}

/** One simultaneous reading of the TSC and CLOCK_MONOTONIC (the TSC read that brackets the clock best of 5). */
export interface TscSample {
  readonly tsc: bigint;
  readonly ns: bigint;
}

export function sampleTsc(): TscSample {
  let best: { tsc: bigint; ns: bigint; width: bigint } | undefined;
  for (let i = 0; i < 5; i++) {
    const a = readTsc();
    const ns = process.hrtime.bigint();
    const b = readTsc();
    if (best === undefined || b - a < best.width) best = { tsc: a + (b - a) / 2n, ns, width: b - a };
  }
  return { tsc: best!.tsc, ns: best!.ns };
}

/** Converts TSC stamps to monotonic nanoseconds from two samples. */
export interface TscClock {
  /** Ticks per nanosecond. */
  readonly ticksPerNs: number;
  toNs(tsc: bigint): number;
}

export function tscClock(first: TscSample, second: TscSample): TscClock {
  const ticks = Number(second.tsc - first.tsc);
  const ns = Number(second.ns - first.ns);
  const ticksPerNs = ns > 0 && ticks > 0 ? ticks / ns : 1;
  return {
    ticksPerNs,
    toNs: (tsc) => Number(first.ns) + Number(tsc - first.tsc) / ticksPerNs,
  };
}

/** Whether this machine's TSC runs at a constant rate in every state (cpuinfo flags). */
export function hasInvariantTsc(): boolean {
  try {
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "latin1"))?.[1] ?? "";
    return / constant_tsc( |$)/.test(flags) && / nonstop_tsc( |$)/.test(flags);
  } catch {
    return false;
  }
}
