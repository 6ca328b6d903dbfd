import type { Arch } from "../arch/arch.js";
import { GraftError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import type { ManifestFunction } from "./patch-manifest.js";

/** One write of a redirect at a runtime address, with the role that orders it. */
export interface PlannedWrite {
  readonly role: "far" | "entry";
  readonly address: bigint;
  readonly bytes: Uint8Array;
  /** The whole site room at `address` (the range no thread may be strictly inside). */
  readonly room: number;
}

/**
 * The bytes that send `fn` to `replacement`, for the site the manifest chose: a far `jmp rel32` in
 * the pre-entry room plus a `jmp rel8` to it at the entry, or one `jmp rel32` at the entry. Any
 * leftover bytes of a replaced instruction (entry overwrite, 6-byte fentry call) become int3 so that
 * nothing ever executes half an instruction silently.
 */
export function redirectBytes(
  arch: Arch,
  fn: ManifestFunction,
  bias: bigint,
  replacement: bigint,
): PlannedWrite[] {
  const far = fn.writes.find((w) => w.role === "far");
  const entry = fn.writes.find((w) => w.role === "entry");
  if (entry === undefined) throw new GraftError("PATCH_CORRUPT", `no entry write for ${fn.name}`);
  const entryAt = BigInt(entry.address) + bias;
  const fill = (jump: Uint8Array, length: number): Uint8Array => {
    const out = new Uint8Array(length).fill(arch.trapByte ?? 0);
    out.set(jump);
    return out;
  };
  if (far === undefined) {
    const jump = arch.encodeNearJump(entryAt, replacement);
    if (jump === undefined)
      // Placement keeps the code within rel32 of every site; only a damaged manifest (sites > 2 GiB apart) gets here.
      throw new GraftError(
        "PATCH_CORRUPT",
        `replacement ${hex(replacement)} out of rel32 reach of ${hex(entryAt)}: the manifest's sites are too far apart`,
      );
    // A sled's spare NOPs stay NOPs; a replaced instruction's leftover bytes become traps.
    const length = fn.kind === "sled" ? jump.length : entry.room;
    return [{ role: "entry", address: entryAt, bytes: fill(jump, length), room: entry.room }];
  }
  const farAt = BigInt(far.address) + bias;
  const longJump = arch.encodeNearJump(farAt, replacement);
  const shortJump = arch.encodeShortJump(entryAt, farAt);
  if (longJump === undefined || shortJump === undefined) {
    throw new GraftError(
      "PATCH_CORRUPT",
      `redirect for ${fn.name} out of reach (${hex(farAt)} → ${hex(replacement)}): the manifest's sites are too far apart`,
    );
  }
  return [
    { role: "far", address: farAt, bytes: longJump, room: far.room },
    {
      role: "entry",
      address: entryAt,
      bytes: fn.kind === "hotpatch" ? fill(shortJump, entry.room) : shortJump,
      room: entry.room,
    },
  ];
}
