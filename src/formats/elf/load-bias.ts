import type { Elf } from "./elf.js";

const PAGE = 0x1000n;

/**
 * Load bias of a module given one of its mappings: the mapping at `mapStart` maps file offset
 * `mapOffset`, which belongs to the PT_LOAD whose page-aligned p_offset equals it. bias = runtime
 * address − link-time address; 0 for ET_EXEC, the base address for PIE and DSOs.
 */
export function loadBias(elf: Elf, mapStart: bigint, mapOffset: bigint): bigint | undefined {
  for (const p of elf.loadSegments()) {
    const pageOffset = p.p_offset & ~(PAGE - 1n);
    if (pageOffset === mapOffset) return mapStart - (p.p_vaddr & ~(PAGE - 1n));
  }
  return undefined;
}

/** Lowest link-time address of any PT_LOAD, page-aligned (where a bias of 0 would put the module). */
export function lowestLoadAddress(elf: Elf): bigint {
  let low: bigint | undefined;
  for (const p of elf.loadSegments()) {
    const a = p.p_vaddr & ~(PAGE - 1n);
    if (low === undefined || a < low) low = a;
  }
  return low ?? 0n;
}
