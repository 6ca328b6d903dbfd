import { GraftError, RefusedError } from "../core/errors.js";
import { constantName, R_X86_64, SHN, SHT, STT } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import { isRelaxableGotLoad, loadedSections, type PatchLayout } from "./patch-image.js";

/** Relocation types that write 8 bytes; the others this linker knows write 4 [x86-64 psABI 4.4]. */
const WIDE_RELOCATIONS: ReadonlySet<number> = new Set([
  R_X86_64.R_X86_64_64,
  R_X86_64.R_X86_64_PC64,
  R_X86_64.R_X86_64_GOTOFF64,
  R_X86_64.R_X86_64_SIZE64,
]);

/** Where an undefined symbol of the fix lives in the target; undefined when nowhere. */
export type ResolveSymbol = (name: string) => bigint | undefined;

/** The patch, relocated for one address in one process, ready to be written there. */
export interface LinkedPatch {
  readonly base: bigint;
  readonly image: Uint8Array;
  /** Absolute address of every defined global/local function and object of the patch, by name. */
  readonly symbols: ReadonlyMap<string, bigint>;
  /** Each external symbol and the address it was bound to, for status output and the journal. */
  readonly bindings: ReadonlyMap<string, bigint>;
}

const INT32_MIN = -(1n << 31n);
const INT32_MAX = (1n << 31n) - 1n;

/**
 * Relocate a laid-out patch for `base` [x86-64 psABI 4.4, relocation formulas]: S symbol, A addend,
 * P place, G GOT slot. Calls to far externals go through graft's own stubs; every GOT slot is filled
 * with the absolute address. Unknown relocation types and symbols are refused with the reason.
 */
export function linkPatch(elf: Elf, layout: PatchLayout, base: bigint, resolve: ResolveSymbol): LinkedPatch {
  const image = new Uint8Array(Number(layout.size));
  const view = new DataView(image.buffer);
  for (const s of loadedSections(elf)) {
    if (s.sh_type === SHT.SHT_NOBITS) continue;
    image.set(elf.sectionBytes(s), Number(layout.sectionOffsets.get(s.index)!));
  }
  // int3 after each stub's 6-byte jump, so a stray fall-through traps instead of running garbage.
  for (const off of layout.stubs.values()) image.fill(0xcc, Number(off), Number(off) + 8);

  const symbols = elf.symbols();
  const defined = new Map<string, bigint>();
  const bindings = new Map<string, bigint>();
  const missing = new Set<string>();
  const symbolValue = (index: number): bigint | undefined => {
    const sym = symbols[index];
    if (sym === undefined)
      throw new GraftError("PATCH_CORRUPT", `relocation names symbol ${index}, which does not exist`);
    if (sym.st_shndx === SHN.SHN_ABS) return sym.st_value;
    if (sym.st_shndx === SHN.SHN_UNDEF) {
      if (sym.name === "_GLOBAL_OFFSET_TABLE_") return base + layout.gotOffset;
      const at = defined.get(sym.name) ?? resolve(sym.name);
      if (at === undefined) missing.add(sym.name);
      else bindings.set(sym.name, at);
      return at;
    }
    if (sym.st_shndx >= SHN.SHN_LORESERVE)
      throw new RefusedError(
        "UNSUPPORTED_RELOCATION",
        [`symbol ${sym.name} is in special section ${sym.st_shndx} (COMMON?)`],
        { hint: "compile the fix with -fno-common" },
      );
    const off = layout.sectionOffsets.get(sym.st_shndx);
    if (off === undefined) return undefined;
    return base + off + sym.st_value;
  };
  for (const sym of symbols) {
    if (
      sym.name === "" ||
      sym.type === STT.STT_SECTION ||
      sym.type === STT.STT_FILE ||
      sym.st_shndx === SHN.SHN_UNDEF
    )
      continue;
    const off = layout.sectionOffsets.get(sym.st_shndx);
    if (off !== undefined) defined.set(sym.name, base + off + sym.st_value);
  }
  // GOT slots and stubs first: relocations below point into them.
  for (const [name, off] of layout.gotSlots) {
    if (name.startsWith("#section")) continue;
    const at = defined.get(name) ?? resolve(name);
    if (at === undefined) missing.add(name);
    else {
      view.setBigUint64(Number(off), at, true);
      if (!defined.has(name)) bindings.set(name, at);
    }
  }
  for (const [name, off] of layout.stubs) {
    const slot = layout.gotSlots.get(name)!;
    image.set([0xff, 0x25], Number(off));
    view.setInt32(Number(off) + 2, Number(slot - (off + 6n)), true);
  }

  const loaded = new Set(loadedSections(elf).map((s) => s.index));
  for (const rs of elf.relocationSections()) {
    if (rs.target === undefined || !loaded.has(rs.target.index)) continue;
    const sectionOff = layout.sectionOffsets.get(rs.target.index)!;
    for (const r of rs.entries) {
      const where = sectionOff + r.r_offset;
      const P = base + where;
      const A = r.addend;
      const sym = symbols[r.symbolIndex];
      const name = sym?.name ?? "";
      // A damaged object may point a relocation outside its section: refuse, never write past it.
      const width = WIDE_RELOCATIONS.has(r.type) ? 8n : 4n;
      if (r.type !== R_X86_64.R_X86_64_NONE && (r.r_offset < 0n || r.r_offset + width > rs.target.sh_size)) {
        throw new GraftError(
          "PATCH_CORRUPT",
          `a relocation at offset 0x${r.r_offset.toString(16)} lies outside ${rs.target.name} (0x${rs.target.sh_size.toString(16)} bytes)`,
        );
      }
      const at = Number(where);
      const put32 = (v: bigint, signed: boolean): void => {
        const ok = signed ? v >= INT32_MIN && v <= INT32_MAX : v >= 0n && v <= 0xffffffffn;
        if (!ok) {
          throw new RefusedError(
            "UNSUPPORTED_RELOCATION",
            [
              `${constantName(R_X86_64, r.type, "R_X86_64")} to ${name || "a section"} does not fit in 32 bits (0x${v.toString(16)})`,
            ],
            {
              hint: "the fix is compiled with -fPIC so data is reached through the GOT; remove -mcmodel or absolute addressing",
            },
          );
        }
        if (signed) view.setInt32(at, Number(v), true);
        else view.setUint32(at, Number(v), true);
      };
      switch (r.type) {
        case R_X86_64.R_X86_64_NONE:
          break;
        case R_X86_64.R_X86_64_64: {
          const S = symbolValue(r.symbolIndex);
          if (S !== undefined) view.setBigUint64(at, BigInt.asUintN(64, S + A), true);
          break;
        }
        case R_X86_64.R_X86_64_PC64: {
          const S = symbolValue(r.symbolIndex);
          if (S !== undefined) view.setBigInt64(at, BigInt.asIntN(64, S + A - P), true);
          break;
        }
        case R_X86_64.R_X86_64_PC32:
        case R_X86_64.R_X86_64_PLT32: {
          const S = symbolValue(r.symbolIndex);
          if (S === undefined) break;
          let v = S + A - P;
          const stub = layout.stubs.get(name);
          if ((v < INT32_MIN || v > INT32_MAX) && stub !== undefined) v = base + stub + A - P;
          put32(v, true);
          break;
        }
        case R_X86_64.R_X86_64_32:
        case R_X86_64.R_X86_64_32S: {
          const S = symbolValue(r.symbolIndex);
          if (S !== undefined) put32(S + A, r.type === R_X86_64.R_X86_64_32S);
          break;
        }
        case R_X86_64.R_X86_64_GOTPCREL:
        case R_X86_64.R_X86_64_GOTPCRELX:
        case R_X86_64.R_X86_64_REX_GOTPCRELX: {
          // The slot holds S; the addend only adjusts for the place [psABI: G + GOT + A - P].
          const key = sym?.type === STT.STT_SECTION ? `#section${sym.st_shndx}` : name;
          const slot = layout.gotSlots.get(key);
          if (slot === undefined && layout.relaxed?.has(key) && isRelaxableGotLoad(image, at)) {
            // No slot: `mov S@GOTPCREL(%rip), %r` becomes `lea S(%rip), %r` [psABI B.2], S + A - P.
            const S = symbolValue(r.symbolIndex);
            if (S === undefined) break;
            image[at - 2] = 0x8d;
            put32(S + A - P, true);
            break;
          }
          if (slot === undefined)
            throw new GraftError(
              "PATCH_CORRUPT",
              `a GOT relocation names ${key || "no symbol"}, which has no GOT slot`,
            );
          const S = symbolValue(r.symbolIndex);
          if (S !== undefined && key.startsWith("#section")) view.setBigUint64(Number(slot), S, true);
          put32(base + slot + A - P, true);
          break;
        }
        case R_X86_64.R_X86_64_GOTPC32:
          put32(base + layout.gotOffset + A - P, true);
          break;
        case R_X86_64.R_X86_64_GOTOFF64: {
          const S = symbolValue(r.symbolIndex);
          if (S !== undefined) view.setBigInt64(at, S + A - (base + layout.gotOffset), true);
          break;
        }
        case R_X86_64.R_X86_64_SIZE32:
          put32((sym?.st_size ?? 0n) + A, false);
          break;
        case R_X86_64.R_X86_64_SIZE64:
          view.setBigUint64(at, (sym?.st_size ?? 0n) + A, true);
          break;
        default:
          throw new RefusedError(
            "UNSUPPORTED_RELOCATION",
            [
              `relocation ${constantName(R_X86_64, r.type, "R_X86_64")} against ${name || "a section"} in ${rs.target.name}`,
            ],
            {
              hint: "rebuild the fix with default code model and -fPIC",
            },
          );
      }
    }
  }
  if (missing.size > 0) {
    const names = [...missing].sort();
    throw new RefusedError(
      "UNKNOWN_SYMBOL",
      names.map((n) => `${n} is not defined by the fix, the target, or any library the process has loaded`),
      {
        subject: names.join(", "),
      },
    );
  }
  return { base, image, symbols: defined, bindings };
}
