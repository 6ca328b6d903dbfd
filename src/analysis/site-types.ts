/** The kinds of room a function can have for a redirect, best first. */
export const REDIRECT_KINDS = ["sled", "fentry", "hotpatch", "overwrite"] as const;
export type RedirectKind = (typeof REDIRECT_KINDS)[number];

/**
 * One planned write of a redirect: `far` is the long jump placed where no thread executes (pre-entry
 * NOPs or padding), `entry` the jump written at the entry itself, last, so that every thread sees
 * old or new code, never half [DESIGN "safe code-modification protocol" step 5].
 */
export interface RedirectWrite {
  readonly role: "far" | "entry";
  readonly address: bigint;
  /** Bytes available at `address` for this write. */
  readonly room: number;
}

/** A way to redirect one function, found in the bytes, with whatever stops it from being used. */
export interface RedirectSite {
  readonly kind: RedirectKind;
  /** Where the site's bytes start (the first sled NOP, the fentry call, the first instruction). */
  readonly address: bigint;
  /** Bytes the site occupies. */
  readonly length: number;
  /** How a redirect would be written, when `problems` is empty. */
  readonly writes: readonly RedirectWrite[];
  /**
   * Other ways to write it that reach further than `writes` does, when the site has the room: an
   * AArch64 sled with ≥ 4 NOPs before the entry takes the absolute literal-load jump there and a `b`
   * to it at the entry, for a replacement beyond `b`'s ±128 MiB. Absent when there are none.
   */
  readonly alternatives?: readonly (readonly RedirectWrite[])[];
  /** Why it cannot be used; empty when usable. */
  readonly problems: readonly string[];
  /** Kind-specific facts, for people and JSON. */
  readonly detail: SledDetail | FentryDetail | HotpatchDetail | OverwriteDetail;
}

export interface SledDetail {
  readonly kind: "sled";
  /** NOP bytes before the entry (M of -fpatchable-function-entry=N,M). */
  readonly before: number;
  /** NOP bytes at the entry, after endbr64 when present (N−M). */
  readonly after: number;
  /** Whether the bytes are the NOPs the compiler recorded (false: something rewrote them). */
  readonly verified: boolean;
  /**
   * Where the entry's landing pad (endbr64, `bti c`) is: `before-sled` at the entry with the NOPs
   * after it (the redirect is written after it, so indirect calls still land on it), `after-sled`
   * behind the NOPs (the entry itself is a NOP). Absent when there is none.
   */
  readonly landingPad?: "before-sled" | "after-sled";
}

export interface FentryDetail {
  readonly kind: "fentry";
  /**
   * `call` (live -pg -mfentry), `nop` (-mnop-mcount or turned off), `after-prologue` (plain -pg,
   * AArch64's only form: the call follows the prologue, so the site is reported but never usable).
   */
  readonly state: "call" | "nop" | "after-prologue";
  readonly callee: string | undefined;
  /** Listed in `__mcount_loc` (-mrecord-mcount). */
  readonly recorded: boolean;
}

export interface HotpatchDetail {
  readonly kind: "hotpatch";
  readonly firstInstruction: string;
  readonly firstInstructionLength: number;
  /** Free NOP/int3 bytes between the previous function's end and the entry. */
  readonly padding: number;
}

export interface OverwriteDetail {
  readonly kind: "overwrite";
  /** Whole instructions that the 5-byte jump replaces. */
  readonly instructions: readonly string[];
  /** Whether they could be copied elsewhere and run (no RIP-relative operand, no call): needed by trampolines. */
  readonly relocatable: boolean;
}

/** A USDT probe site (`.note.stapsdt`). */
export interface UsdtSite {
  readonly provider: string;
  readonly name: string;
  readonly address: bigint;
  readonly semaphore: bigint;
  readonly arguments: readonly {
    readonly size: number;
    readonly signed: boolean;
    readonly location: string;
  }[];
  /** The function that holds the probe, when known. */
  readonly function: string | undefined;
  /** Length of the NOP at the probe address (0 when it is not a NOP: damaged or already armed). */
  readonly nopLength: number;
}
