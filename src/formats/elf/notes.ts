import { FormatError } from "../../core/errors.js";
import { type ByteReader, findCString } from "./byte-reader.js";

/** One note [gABI 5.6 "Note Section"]: namesz/descsz/type, then name and desc, each 4-byte aligned. */
export interface ElfNote {
  readonly name: string;
  readonly type: number;
  /** A view of the descriptor bytes. */
  readonly desc: Uint8Array;
  /** File offset of the note header. */
  readonly offset: number;
}

// Arithmetic, not `(n + 3) & ~3`: bitwise operators wrap sizes ≥ 2^31 from a u32 field to negative.
const align4 = (n: number): number => n + ((4 - (n % 4)) % 4);

/** Parse the notes in [offset, offset+size) of the file. */
export function parseNotes(r: ByteReader, offset: bigint, size: bigint, what: string): ElfNote[] {
  const where = r.file === undefined ? {} : { file: r.file };
  const start = r.check(offset, size, what);
  const end = start + Number(size);
  const out: ElfNote[] = [];
  let o = start;
  while (o + 12 <= end) {
    const namesz = r.rawU32(o);
    const descsz = r.rawU32(o + 4);
    const type = r.rawU32(o + 8);
    const nameAt = o + 12;
    const descAt = nameAt + align4(namesz);
    const next = descAt + align4(descsz);
    if (namesz > end - nameAt || descsz > end - descAt || next > end + 3) {
      throw new FormatError(
        "ELF_CORRUPT",
        `note in ${what}: namesz ${namesz}/descsz ${descsz} run past the end of the notes`,
        {
          ...where,
          offset: o,
        },
      );
    }
    const nameBytes = r.bytes.subarray(nameAt, nameAt + namesz);
    const name = namesz === 0 ? "" : (findCString(nameBytes, 0) ?? new TextDecoder().decode(nameBytes));
    out.push({ name, type, desc: r.bytes.subarray(descAt, descAt + descsz), offset: o });
    o = next;
  }
  return out;
}
