/**
 * The one bounds-checked conversion from a bigint (an address, size or offset read from a file
 * or process) to a JS number used as an index. Throws RangeError beyond 2^53, which callers turn
 * into a format error naming the place.
 */
export function toIndex(value: bigint): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`value 0x${value.toString(16)} is out of index range`);
  }
  return Number(value);
}
