/**
 * The memory of the tracing runtime. Shared with graft (a memfd mapped MAP_SHARED in the target,
 * read by graft through /proc/PID/fd/N): one header page, a table of per-thread slots, and
 * per-thread event rings. Private to the process (anonymous MAP_PRIVATE): per-thread shadow stacks
 * with their depth — so a child forked inside traced functions gets a copy of them and can return
 * through the frames it inherited, while its events go to a slot of its own. Every ring has one producer (its thread) and one consumer
 * (graft), so producing needs no atomic instruction: x86-64 stores are seen in program order
 * (Intel SDM Vol. 3 §8.2.2), so a consumer that reads `head` before the records sees whole records.
 * Only claiming a slot (a thread's first traced call) uses `lock cmpxchg`. Records carry the parity
 * of their ring lap (RECORD_LAP_BIT), so consumed space is given back by moving `tail` alone.
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
  /** u32 the traced process's pid: a forked child (another pid) knows its frames are its parent's. */
  pid: 0x28,
} as const;

export const SLOT_TABLE_OFFSET = 0x1000;
export const SLOT_BYTES = 64;

/** Per-thread slot fields (byte offsets in a slot). */
export const SLOT = {
  /** u32 thread id; 0 = free (claimed with lock cmpxchg). */
  tid: 0,
  /** unused (the depth lives with the private shadow stack). */
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
  /** u64 address of this slot's private shadow block (set by graft). */
  shadow: 56,
} as const;

/** A private shadow block: u32 depth at 0, then the entries from SHADOW_ENTRIES_OFFSET. */
export const SHADOW_DEPTH = 0;
export const SHADOW_ENTRIES_OFFSET = 16;
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
/**
 * Bit of the record's second word that holds the parity of the ring lap it was written in
 * (⌊offset ÷ ringBytes⌋ mod 2, offset counting every byte ever reserved): a record is committed when
 * its kind is set and its lap bit is the one its position expects, so a record left from the lap
 * before never passes for a new one and graft need not zero what it took.
 */
export const RECORD_LAP_BIT = 55;
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
  readonly ringOffset: number;
  /** Shared memory (header, slot table, rings). */
  readonly totalBytes: number;
  /** Bytes of one private shadow block, and of all of them. */
  readonly shadowBlockBytes: number;
  readonly privateBytes: number;
}

/** Lay out `slots` threads (a power of two), each with `ringBytes` (a power of two) of events. */
export function traceLayout(slots: number, ringBytes: number, shadowEntries = 1024): TraceLayout {
  const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
  if (!pow2(slots) || !pow2(ringBytes) || ringBytes < 4096 || ringBytes > 1 << 30) {
    throw new Error(`bad trace layout: ${slots} slots, ${ringBytes}-byte rings`);
  }
  const ringOffset = SLOT_TABLE_OFFSET + Math.ceil((slots * SLOT_BYTES) / 4096) * 4096;
  const shadowBlockBytes = SHADOW_ENTRIES_OFFSET + shadowEntries * SHADOW_ENTRY_BYTES;
  return {
    slots,
    shadowEntries,
    ringBytes,
    ringOffset,
    totalBytes: ringOffset + slots * ringBytes,
    shadowBlockBytes,
    privateBytes: Math.ceil((slots * shadowBlockBytes) / 4096) * 4096,
  };
}

/**
 * How many bytes from `offset` of `buf` hold whole committed records, of `length` bytes copied from
 * a ring: records from its position up to the ring's end (`wrapAt` bytes), then from its start. `lap`
 * is the parity of the first record's lap; it flips at the wrap. Stops at the first record not yet
 * committed: kind 0, or the lap bit of the lap before (space reserved, record not yet written).
 */
export function committedLength(
  buf: Uint8Array,
  offset: number,
  length: number,
  wrapAt: number,
  lap: number,
): number {
  const lapBit = 1 << (RECORD_LAP_BIT - 48); // in byte 14, bits 48–55 of the second word
  let end = 0;
  let expected = lap;
  while (end + RECORD_BYTES <= length) {
    if (end === wrapAt) expected ^= 1;
    const kind = buf[offset + end + 15]!;
    const high = buf[offset + end + 14]!;
    // A committed record has a known kind, the lap bit expected here, and nothing else in byte 14
    // (the depth is 16 bits). Space reserved but not yet written may hold anything from the lap
    // before — an argument value of an args record, say — and this rejects all but a sliver of it.
    if (kind === 0 || kind > RECORD_KIND.entryArgs || (high & ~lapBit) !== 0) break;
    if ((high === 0 ? 0 : 1) !== expected) break;
    const span = kind === RECORD_KIND.entryArgs ? (1 + ARGS_RECORDS) * RECORD_BYTES : RECORD_BYTES;
    if (end + span > length) break;
    end += span;
    if (end > wrapAt && end - span < wrapAt) expected ^= 1; // an args record across the wrap
  }
  return end;
}
