import { createHash } from "node:crypto";
import type { Elf } from "../formats/elf/elf.js";
import { MANIFEST_SECTION } from "./patch-manifest.js";

/**
 * sha256 over everything in a patch object that decides what it does: every section but the manifest
 * and the section-name table (both change when the manifest is attached) — name, type, flags, size
 * and contents, in file order. Symbol and relocation tables are sections, so they are covered.
 */
export function patchContentHash(elf: Elf): string {
  const h = createHash("sha256");
  for (const s of elf.sections) {
    if (s.index === 0 || s.name === MANIFEST_SECTION || s.index === elf.header.e_shstrndx) continue;
    h.update(`${s.name}\0${s.sh_type}\0${s.sh_flags}\0${s.sh_size}\0`);
    h.update(elf.sectionBytes(s));
  }
  return h.digest("hex");
}
