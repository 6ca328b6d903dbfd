import type { ElfNote } from "./notes.js";

/** NT_GNU_PROPERTY_TYPE_0 [Linux Extensions to gABI, "Program Property"]. */
export const NT_GNU_PROPERTY_TYPE_0 = 5;
/** GNU_PROPERTY_AARCH64_FEATURE_1_AND and its bits [ELF for the Arm 64-bit Architecture (AAELF64), "Program Property"]. */
export const GNU_PROPERTY_AARCH64_FEATURE_1_AND = 0xc0000000;
export const GNU_PROPERTY_AARCH64_FEATURE_1_BTI = 1;
export const GNU_PROPERTY_AARCH64_FEATURE_1_PAC = 2;

/**
 * The AArch64 feature bits a file is marked with (`.note.gnu.property`): `bti` means every object
 * was built with landing pads and the loader maps its code as guarded pages (PROT_BTI), so indirect
 * branches fault unless they land on `bti`/`paciasp`. Both false when there is no such property.
 * Properties are 8-byte aligned records: pr_type, pr_datasz, data [ibid.].
 */
export function aarch64Features(notes: readonly ElfNote[]): { bti: boolean; pac: boolean } {
  let bits = 0;
  for (const n of notes) {
    if (n.name !== "GNU" || n.type !== NT_GNU_PROPERTY_TYPE_0) continue;
    const view = new DataView(n.desc.buffer, n.desc.byteOffset, n.desc.byteLength);
    for (let o = 0; o + 8 <= n.desc.length; ) {
      const type = view.getUint32(o, true);
      const size = view.getUint32(o + 4, true);
      if (type === GNU_PROPERTY_AARCH64_FEATURE_1_AND && size >= 4 && o + 12 <= n.desc.length)
        bits |= view.getUint32(o + 8, true);
      o += 8 + size + ((8 - (size % 8)) % 8);
    }
  }
  return {
    bti: (bits & GNU_PROPERTY_AARCH64_FEATURE_1_BTI) !== 0,
    pac: (bits & GNU_PROPERTY_AARCH64_FEATURE_1_PAC) !== 0,
  };
}
