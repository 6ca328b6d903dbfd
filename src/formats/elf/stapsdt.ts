import { FormatError } from "../../core/errors.js";
import { findCString } from "./byte-reader.js";
import type { ElfNote } from "./notes.js";

/** One argument of a USDT probe: `[-]N@LOCATION` [SystemTap "UserSpaceProbeImplementation"]. */
export interface UsdtArgument {
  /** Size in bytes (1, 2, 4, 8). */
  readonly size: number;
  readonly signed: boolean;
  /** The assembler operand, e.g. `%edi`, `-4(%rbp)`, `$5`, `foo(%rip)`. */
  readonly location: string;
}

/** One USDT probe from `.note.stapsdt` (sys/sdt.h), addresses as linked (before load bias). */
export interface UsdtProbe {
  readonly provider: string;
  readonly name: string;
  /** Address of the probe's NOP. */
  readonly address: bigint;
  /** Address of the semaphore (a 16-bit counter the probe guard reads), 0n when none. */
  readonly semaphore: bigint;
  /** The link-time address of `.stapsdt.base` the note recorded (for prelink adjustment). */
  readonly base: bigint;
  readonly argumentSpec: string;
  readonly arguments: readonly UsdtArgument[];
}

const ARG = /^(-?)(\d+)@(.+)$/;

/** Split an argument string such as `-4@%edi 8@-16(%rbp)` into typed arguments. */
export function parseUsdtArguments(spec: string): UsdtArgument[] {
  const out: UsdtArgument[] = [];
  for (const part of spec.split(/\s+/)) {
    if (part === "") continue;
    const m = ARG.exec(part);
    // Old sdt.h versions wrote a bare operand without a size; treat as 8 bytes signed.
    if (m === null) out.push({ size: 8, signed: true, location: part });
    else out.push({ size: Number(m[2]), signed: m[1] === "-", location: m[3]! });
  }
  return out;
}

/**
 * Decode stapsdt notes (owner "stapsdt", type 3). `stapsdtBaseAddress` is the current address of the
 * `.stapsdt.base` section: when the file was prelinked the recorded addresses move by its difference.
 */
export function parseStapsdtNotes(
  notes: readonly ElfNote[],
  stapsdtBaseAddress: bigint | undefined,
  file?: string,
  /**
   * The value of the 8-byte field at `at` in a note's descriptor after relocation, for relocatable
   * objects whose note fields are still 0 + a relocation; returns `raw` when none applies.
   */
  relocated?: (note: ElfNote, at: number, raw: bigint) => bigint,
): UsdtProbe[] {
  const out: UsdtProbe[] = [];
  for (const note of notes) {
    if (note.name !== "stapsdt" || note.type !== 3) continue;
    const d = note.desc;
    if (d.length < 24 + 3) {
      throw new FormatError(
        "ELF_CORRUPT",
        `stapsdt note has ${d.length} descriptor bytes, expected at least 27`,
        {
          ...(file === undefined ? {} : { file }),
          offset: note.offset,
        },
      );
    }
    const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
    const field = (at: number): bigint => {
      const raw = view.getBigUint64(at, true);
      return relocated === undefined ? raw : relocated(note, at, raw);
    };
    const pc = field(0);
    const base = field(8);
    const semaphore = field(16);
    const provider = findCString(d, 24) ?? "";
    const nameAt = d.indexOf(0, 24) + 1;
    const name = nameAt > 0 ? (findCString(d, nameAt) ?? "") : "";
    const argsAt = nameAt > 0 ? d.indexOf(0, nameAt) + 1 : 0;
    const argumentSpec = argsAt > 0 ? (findCString(d, argsAt) ?? "") : "";
    const delta = stapsdtBaseAddress !== undefined && base !== 0n ? stapsdtBaseAddress - base : 0n;
    out.push({
      provider,
      name,
      address: pc + delta,
      semaphore: semaphore === 0n ? 0n : semaphore + delta,
      base,
      argumentSpec,
      arguments: parseUsdtArguments(argumentSpec),
    });
  }
  return out;
}
