/**
 * Test support: write a redirect the way a verdict describes it into a COPY of a linked file on
 * disk, with the arch layer's own encoders, so a test can run the copy and see the replacement run.
 * A plan of one write is the entry's near jump to the replacement; a plan of two is the far jump
 * (absolute on AArch64) in the room before the entry and the entry's short jump to it.
 */
import { chmodSync, copyFileSync, readFileSync, writeFileSync } from "node:fs";
import type { RedirectWrite } from "../../src/analysis/site-types.js";
import type { Arch } from "../../src/arch/arch.js";
import type { Elf } from "../../src/formats/elf/elf.js";

/** File offset of link-time `address` in a linked file (the allocated section holding it). */
export function fileOffsetOf(elf: Elf, address: bigint, length: number): number {
  for (const s of elf.sections) {
    if ((s.sh_flags & 2n) === 0n || s.sh_type === 8 /* SHT_NOBITS */) continue;
    if (address >= s.sh_addr && address + BigInt(length) <= s.sh_addr + s.sh_size)
      return Number(s.sh_offset + (address - s.sh_addr));
  }
  throw new Error(`0x${address.toString(16)} is in no section of the file`);
}

/** The bytes of each write of `plan` (far first, then entry) redirecting to `replacement`. */
export function redirectBytes(
  arch: Arch,
  plan: readonly RedirectWrite[],
  replacement: bigint,
): { address: bigint; bytes: Uint8Array; room: number }[] {
  const entry = plan[plan.length - 1]!;
  if (plan.length === 1) {
    const jump = arch.encodeNearJump(entry.address, replacement);
    if (jump === undefined) throw new Error("replacement out of the near jump's reach");
    return [{ address: entry.address, bytes: jump, room: entry.room }];
  }
  const far = plan[0]!;
  const back = arch.encodeShortJump(entry.address, far.address);
  if (back === undefined) throw new Error("far write out of the short jump's reach");
  const farBytes =
    far.room >= arch.absoluteJumpLength
      ? arch.encodeAbsoluteJump(replacement)
      : arch.encodeNearJump(far.address, replacement);
  if (farBytes === undefined) throw new Error("replacement out of the far jump's reach");
  return [
    { address: far.address, bytes: farBytes, room: far.room },
    { address: entry.address, bytes: back, room: entry.room },
  ];
}

/** Copy `file` to `copy` and write `plan` into it (an executable copy). */
export function writeRedirectCopy(
  elf: Elf,
  arch: Arch,
  file: string,
  copy: string,
  plan: readonly RedirectWrite[],
  replacement: bigint,
): void {
  copyFileSync(file, copy);
  const bytes = readFileSync(copy);
  for (const w of redirectBytes(arch, plan, replacement)) {
    if (w.bytes.length > w.room)
      throw new Error(`${w.bytes.length} bytes do not fit in ${w.room} at 0x${w.address.toString(16)}`);
    bytes.set(w.bytes, fileOffsetOf(elf, w.address, w.bytes.length));
  }
  writeFileSync(copy, bytes);
  chmodSync(copy, 0o755);
}
