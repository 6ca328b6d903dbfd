/**
 * The memory the tracing runtime shares with graft (a memfd mapped MAP_SHARED in the target, read by
 * graft through /proc/PID/fd/N): one header page, a table of per-thread slots, per-thread shadow
 * stacks, and per-thread event rings. Every ring has one producer (its thread) and one consumer
 * (graft), so producing needs no atomic instruction: x86-64 stores are seen in program order
 * (Intel SDM Vol. 3 §8.2.2), so a consumer that reads `head` before the records sees whole records.
 * Only claiming a slot (a thread's first traced call) uses `lock cmpxchg`.
 */

export const TRACE_MAGIC = 0x4352_5454_4652_4147n; // "GRAFTTRC" little-endian
export const TRACE_VERSION = 1;

/** Header fields (byte offsets in page 0). */
export const HEADER = {
  magic: 0x00,
  version: 0x08,
  slots: 0x0c,
  ringBytes: 0x10,
  /** Calls not traced because every thread slot was taken (lock incq). */
  noSlot: 0x18,
  shadowEntries: 0x20,
} as const;

export const SLOT_TABLE_OFFSET = 0x1000;
export const SLOT_BYTES = 64;

/** Per-thread slot fields (byte offsets in a slot). */
export const SLOT = {
  /** u32 thread id; 0 = free (claimed with lock cmpxchg). */
  tid: 0,
  /** u32 number of shadow-stack entries in use. */
  depth: 4,
  /** u64 bytes ever written to the ring (producer). */
  head: 8,
  /** u64 records not written because the ring was full. */
  dropped: 16,
  /** u64 calls not traced because the shadow stack was full. */
  overflow: 24,
  /** u64 shadow entries discarded because their frame was left without a return (longjmp). */
  unwound: 32,
  /** u64 address of this slot's ring (set by graft). */
  ring: 40,
  /** u64 bytes graft has consumed (consumer). */
  tail: 48,
  /** u64 address of this slot's shadow stack (set by graft). */
  shadow: 56,
} as const;

export const SHADOW_ENTRY_BYTES = 32;
/** Shadow entry fields. */
export const SHADOW = {
  /** u64 address of the hijacked return-address slot on the thread's stack. */
  slot: 0,
  /** u64 the original return address. */
  returnAddress: 8,
  /** u32 function id. */
  fid: 16,
  /** u32 bit 0: the entry was recorded (so the exit is too). */
  flags: 20,
} as const;

export const RECORD_BYTES = 16;
/** Record kinds (bits 56–63 of the record's second word). */
export const RECORD_KIND = {
  entry: 1,
  exit: 2,
  /** The frame was left without returning (longjmp past it); written when that is noticed. */
  unwound: 3,
  /** An entry followed by three records holding rdi, rsi, rdx, rcx, r8, r9. */
  entryArgs: 4,
} as const;
export const ARGS_RECORDS = 3;

/** The sizes of one tracing runtime's shared memory. */
export interface TraceLayout {
  readonly slots: number;
  readonly shadowEntries: number;
  readonly ringBytes: number;
  readonly shadowOffset: number;
  readonly ringOffset: number;
  readonly totalBytes: number;
}

/** Lay out `slots` threads (a power of two), each with `ringBytes` (a power of two) of events. */
export function traceLayout(slots: number, ringBytes: number, shadowEntries = 1024): TraceLayout {
  const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
  if (!pow2(slots) || !pow2(ringBytes) || ringBytes < 4096 || ringBytes > 1 << 30) {
    throw new Error(`bad trace layout: ${slots} slots, ${ringBytes}-byte rings`);
  }
  const shadowOffset = SLOT_TABLE_OFFSET + Math.max(4096, slots * SLOT_BYTES);
  const shadowBytes = slots * shadowEntries * SHADOW_ENTRY_BYTES;
  const ringOffset = Math.ceil((shadowOffset + shadowBytes) / 4096) * 4096;
  return {
    slots,
    shadowEntries,
    ringBytes,
    shadowOffset,
    ringOffset,
    totalBytes: ringOffset + slots * ringBytes,
  };
}
