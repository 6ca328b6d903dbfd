/**
 * Finding address space for patch code close enough to the code it patches: a `jmp rel32` or
 * `call rel32` reaches ±2 GiB from the end of the instruction (Intel SDM Vol. 2, JMP "rel32"), so
 * code mapped within that distance of a module can be entered from any byte of it with 5 bytes.
 */
import type { Mapping } from "./maps.js";

/** A page-aligned range of addresses, end exclusive. */
export interface Region {
  readonly start: bigint;
  readonly end: bigint;
}

/** Knobs of findFreeRegionNear; the defaults suit x86-64 Linux with 4-level paging. */
export interface FreeRegionOptions {
  /**
   * Largest allowed distance between any byte of the near range and any byte of the region.
   * Default 2 GiB − 64 KiB: rel32 spans 2^31 − 1 forward and 2^31 back from the next instruction,
   * minus slack for the instruction lengths.
   */
  readonly reach?: bigint;
  /** Lowest address to use; default 0x10000, vm.mmap_min_addr's usual value. */
  readonly minAddress?: bigint;
  /**
   * One past the highest user address; default 2^47 − 4096 (TASK_SIZE_MAX with 4-level paging).
   * Pass a higher limit for LA57 processes that use addresses above 2^47.
   */
  readonly maxAddress?: bigint;
  /** Page size; default 4096. */
  readonly pageSize?: bigint;
  /**
   * Room kept free above `[heap]` for brk(2) growth (glibc malloc's main arena); default 256 MiB.
   * A mapping there would make brk fail and push malloc onto its mmap fallback.
   */
  readonly heapReserve?: bigint;
  /**
   * Room kept free below `[stack]` for its growth plus the kernel's stack_guard_gap (256 pages);
   * default 128 MiB (the 8 MiB RLIMIT_STACK default with a wide margin).
   */
  readonly stackReserve?: bigint;
}

const GiB = 1n << 30n;
const MiB = 1n << 20n;

/**
 * An unmapped, page-aligned region of `size` bytes as close as possible to `near` (an address,
 * or a range such as a module's `{start, end}`), with every byte of it within `reach` of every
 * byte of `near`; undefined when no hole qualifies. Pure: it only looks at `maps`, so map the
 * result with MAP_FIXED_NOREPLACE, which fails with EEXIST if the target changed meanwhile.
 */
export function findFreeRegionNear(
  maps: readonly Mapping[],
  near: bigint | Region,
  size: bigint,
  options: FreeRegionOptions = {},
): Region | undefined {
  const page = options.pageSize ?? 0x1000n;
  const reach = options.reach ?? 2n * GiB - 0x10000n;
  const minAddress = alignUp(options.minAddress ?? 0x10000n, page);
  const maxAddress = alignDown(options.maxAddress ?? (1n << 47n) - 0x1000n, page);
  const heapReserve = options.heapReserve ?? 256n * MiB;
  const stackReserve = options.stackReserve ?? 128n * MiB;
  const want = alignUp(size, page);
  const lo = typeof near === "bigint" ? near : near.start;
  const hi = typeof near === "bigint" ? near + 1n : near.end;
  if (want <= 0n) return undefined;

  const sorted = maps
    .filter((m) => m.start < maxAddress)
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  let best: Region | undefined;
  let bestDistance = 0n;
  let holeStart = minAddress;
  let below: Mapping | undefined;
  for (let i = 0; i <= sorted.length; i++) {
    const above = sorted[i];
    let start = holeStart;
    let end = above === undefined ? maxAddress : above.start;
    if (below?.path === "[heap]") start = below.end + heapReserve;
    if (above?.path === "[stack]") end = above.start - stackReserve;
    start = alignUp(max(start, minAddress), page);
    end = alignDown(min(end, maxAddress), page);
    if (end - start >= want) {
      // The placement inside this hole nearest to `near`: its top when the hole lies below,
      // its bottom when above, and `near` itself (page-aligned) when the hole contains it.
      let at = hi <= start ? start : lo >= end ? end - want : alignDown(lo, page);
      if (at < start) at = start;
      if (at + want > end) at = end - want;
      const region = { start: at, end: at + want };
      const distance = max(region.end - lo, hi - region.start);
      if (distance <= reach && (best === undefined || distance < bestDistance)) {
        best = region;
        bestDistance = distance;
      }
    }
    if (above !== undefined && above.end > holeStart) holeStart = above.end;
    if (above !== undefined) below = above;
  }
  return best;
}

function alignUp(value: bigint, page: bigint): bigint {
  return (value + page - 1n) & ~(page - 1n);
}

function alignDown(value: bigint, page: bigint): bigint {
  return value & ~(page - 1n);
}

// Math.max/min do not take bigints.
function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
