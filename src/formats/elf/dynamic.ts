import type { ByteReader } from "./byte-reader.js";

/** One entry of the dynamic section [gABI 5.9 "Dynamic Section"]. */
export interface DynamicEntry {
  readonly d_tag: bigint;
  readonly d_val: bigint;
}

/** Parse dynamic entries from [offset, offset+size) up to and including DT_NULL. */
export function parseDynamic(r: ByteReader, offset: bigint, size: bigint): DynamicEntry[] {
  const count = Number(size / 16n);
  const base = r.check(offset, BigInt(count * 16), "dynamic section");
  const out: DynamicEntry[] = [];
  for (let i = 0; i < count; i++) {
    const d_tag = r.rawI64(base + i * 16);
    out.push({ d_tag, d_val: r.rawU64(base + i * 16 + 8) });
    if (d_tag === 0n) break;
  }
  return out;
}
