import { SHF } from "../../formats/elf/constants.js";
import type { Unit } from "./build-units.js";
import type { BuildView } from "./build-view.js";
import { canonicalName } from "./normalize-name.js";
import { clearField, fieldValue } from "./relocation-shape.js";

/** How a diff names a unit when it stands for an address: its correlation id, or its name. */
export type Identify = (u: Unit) => string;

/** One instruction (or data word) with its address fields replaced by what they point at. */
export interface NormalizedItem {
  /** Offset in the unit. */
  readonly offset: number;
  /** Bytes as hex with address fields and immediates masked, then the tokens of the address fields. */
  readonly shape: string;
  /** Plain immediates (no address): compared apart, to tell a `__LINE__`-only change. */
  readonly immediates: readonly bigint[];
}

const MAX_ANON = 256;
const textLike = (b: Uint8Array): boolean =>
  b.length > 0 && b.every((c) => c === 9 || c === 10 || (c >= 32 && c < 127));
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
/** Hex of a few bytes: a table lookup beats a Buffer per instruction. */
function hexOf(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!];
  return s;
}

function readLE(b: Uint8Array, off: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[off + i] ?? 0);
  return v;
}

function signed(v: bigint, size: number): bigint {
  return BigInt.asIntN(size * 8, v);
}

/**
 * Names what an address stands for, relative to the unit `self` that refers to it: `self+d` inside
 * it, `<id>+d` inside another unit, a string or constant by content, a PLT/GOT name in a linked
 * file, else the anonymous bytes there (with their own relocations named, so a jump table into
 * `self` compares by the offsets it holds, not by where the linker put things).
 */
export function nameAddress(
  view: BuildView,
  address: bigint,
  self: Unit,
  identify: Identify,
  depth = 0,
  accessSize = 0,
): string {
  if (address >= self.address && address < self.address + self.size) return `self+${address - self.address}`;
  const u = view.unitAt(address);
  if (u !== undefined) return `${identify(u)}+${address - u.address}`;
  const linked = view.linkedName(address);
  if (linked !== undefined) return `ext:${linked}`;
  const s = view.sectionAt(address);
  if (s === undefined) return view.elf.isRelocatable ? `abs:${address}` : "outside";
  const flags = s.section.sh_flags;
  const sectionName = canonicalName(
    s.section.name.replace(/\.(str|cst)\d*\.\d+$/, "").replace(/^(\.[a-z]+)\..*$/, "$1"),
  );
  if (!view.elf.isRelocatable && depth === 0) {
    // Linked files merge strings and switch tables into one .rodata: try the table reading first.
    const table = jumpTable(view, address, s.end, self);
    if (table !== undefined) return `anon:${sectionName}:${table}`;
  }
  if ((flags & BigInt(SHF.SHF_STRINGS)) !== 0n || !view.elf.isRelocatable) {
    const bytes = view.bytesAt(address, 4096);
    const nul = bytes.indexOf(0);
    if (nul >= 0 && textLike(bytes.subarray(0, nul)))
      return `str:${JSON.stringify(Buffer.from(bytes.subarray(0, nul)).toString("latin1"))}`;
  }
  if ((flags & BigInt(SHF.SHF_MERGE)) !== 0n && s.section.sh_entsize > 0n)
    return `const:${hexOf(view.bytesAt(address, Number(s.section.sh_entsize)))}`;
  if (depth > 0) return `anon:${sectionName}`;
  return `anon:${sectionName}:${anonymousContent(view, address, s.end, self, identify, accessSize)}`;
}

/** The bytes at an anonymous address up to the next unit or MAX_ANON, relocations named. */
function anonymousContent(
  view: BuildView,
  address: bigint,
  end: bigint,
  self: Unit,
  identify: Identify,
  accessSize: number,
): string {
  let stop = address + BigInt(MAX_ANON) < end ? address + BigInt(MAX_ANON) : end;
  const next = view.nextUnitAfter(address);
  if (next !== undefined && next.address < stop) stop = next.address;
  const bytes = view.bytesAt(address, Number(stop - address));
  // A linked file has no boundaries between anonymous constants: what the instruction reads, else 16 bytes.
  if (!view.elf.isRelocatable) return hexOf(bytes.subarray(0, accessSize > 0 ? accessSize : 16));
  return relocatedContent(view, address, bytes, self, identify);
}

/**
 * A jump table of a linked file: int32 offsets from the table (gcc/clang PIC) or absolute 64-bit
 * addresses (non-PIE) that all land in the function using it, named by offset in the function.
 */
function jumpTable(view: BuildView, address: bigint, end: bigint, self: Unit): string | undefined {
  const bytes = view.bytesAt(address, Math.min(MAX_ANON * 4, Number(end - address)));
  const entries: string[] = [];
  for (let i = 0; i + 4 <= bytes.length; i += 4) {
    const to = address + signed(readLE(bytes, i, 4), 4);
    if (to < self.address || to >= self.address + self.size) break;
    entries.push(String(to - self.address));
  }
  if (entries.length >= 2) return `jt32[${entries.join(",")}]`;
  entries.length = 0;
  for (let i = 0; i + 8 <= bytes.length; i += 8) {
    const to = readLE(bytes, i, 8);
    if (to < self.address || to >= self.address + self.size) break;
    entries.push(String(to - self.address));
  }
  if (entries.length >= 2) return `jt64[${entries.join(",")}]`;
  return undefined;
}

function relocatedContent(
  view: BuildView,
  address: bigint,
  bytes: Uint8Array,
  self: Unit,
  identify: Identify,
): string {
  const masked = Uint8Array.from(bytes);
  const tokens: string[] = [];
  for (let i = 0; i < masked.length; i++) {
    const r = view.relocations.get(address + BigInt(i));
    if (r === undefined) continue;
    clearField(masked, i, r.size, r.mask);
    const to =
      r.target === undefined
        ? `ext:${canonicalName(r.external ?? "")}${r.addend}`
        : nameAddress(view, r.target, self, identify, 1);
    tokens.push(`${i}:${r.type}:${to}`);
  }
  return `${hexOf(masked)}{${tokens.join(" ")}}`;
}

/**
 * A function's code, instruction by instruction, with every address operand replaced by the name
 * of what it points at: through the relocation on it in a .o, through the decoded target in a
 * linked file (branches, RIP-relative operands, absolute addresses of a non-PIE executable).
 */
export function normalizeFunction(view: BuildView, u: Unit, identify: Identify): NormalizedItem[] {
  const bytes = view.unitBytes(u);
  // One masked copy of the whole function; each instruction's slice of it goes into its shape.
  const masked = Uint8Array.from(bytes);
  const out: NormalizedItem[] = [];
  const hasRelocations = view.relocations.size > 0;
  const absolute = view.absoluteAddresses;
  for (const ins of view.arch.decodeFields(bytes, u.address)) {
    const at = u.address + BigInt(ins.offset);
    const end = at + BigInt(ins.length);
    let tokens = "";
    const immediates: bigint[] = [];
    let covered: Set<number> | undefined;
    for (let i = 0; hasRelocations && i < ins.length; i++) {
      const r = view.relocations.get(at + BigInt(i));
      if (r === undefined) continue;
      clearField(masked, ins.offset + i, r.size, r.mask);
      covered ??= new Set();
      for (let k = i; k < i + r.size; k++) covered.add(k);
      // S + A names the target once the CPU's own PC adjustment (end of instruction − field) is added.
      const to =
        r.target === undefined
          ? `ext:${canonicalName(r.external ?? "")}${r.addend + (r.pcRelative ? end - (at + BigInt(i)) : 0n)}`
          : nameAddress(view, r.target + (r.pcRelative ? end - (at + BigInt(i)) : 0n), u, identify);
      tokens += ` ${i}:${r.type}:${to}`;
    }
    for (const f of ins.fields) {
      if (covered?.has(f.offset)) continue;
      const start = ins.offset + f.offset;
      // An A64 field is some bits of the word: only those are the constant (the rest: opcode, registers, condition).
      const raw = fieldValue(readLE(masked, start, f.size), f.mask);
      let target: bigint | undefined;
      if (f.role === "branch") target = ins.target;
      else if (f.role === "pc-relative") target = ins.memoryAddress;
      else if (absolute && f.mask === undefined && f.size >= 4 && view.sectionAt(raw) !== undefined)
        target = raw;
      if (target !== undefined) {
        clearField(masked, start, f.size, f.mask);
        const size = f.role === "pc-relative" ? (ins.memorySize ?? 0) : 0;
        tokens += ` ${f.offset}:${f.role}:${nameAddress(view, target, u, identify, 0, size)}`;
      } else if (f.role === "pc-relative" && f.mask !== undefined) {
        // An A64 ADRP page completed by a later instruction, which names the address itself.
        clearField(masked, start, f.size, f.mask);
        tokens += ` ${f.offset}:page`;
      } else if (f.role === "immediate") {
        clearField(masked, start, f.size, f.mask);
        immediates.push(raw);
      }
    }
    out.push({
      offset: ins.offset,
      shape: hexOf(masked.subarray(ins.offset, ins.offset + ins.length)) + tokens,
      immediates,
    });
  }
  return out;
}

/**
 * A data object's bytes with its relocations (a .o) or the pointers it holds (a linked file: an
 * aligned word whose value is an address of the file) replaced by what they point at.
 */
export function normalizeData(view: BuildView, u: Unit, identify: Identify): string {
  const bytes = Uint8Array.from(view.unitBytes(u));
  const tokens: string[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const at = u.address + BigInt(i);
    const r = view.relocations.get(at);
    if (r !== undefined) {
      clearField(bytes, i, r.size, r.mask);
      const to =
        r.target === undefined
          ? `ext:${canonicalName(r.external ?? "")}${r.addend}`
          : nameAddress(view, r.target, u, identify, 1);
      tokens.push(`${i}:${r.type}:${to}`);
      continue;
    }
    if (!view.elf.isRelocatable && i % 8 === 0 && i + 8 <= bytes.length && !u.nobits) {
      const v = readLE(bytes, i, 8);
      if (v !== 0n && view.sectionAt(v) !== undefined) {
        bytes.fill(0, i, i + 8);
        tokens.push(`${i}:ptr:${nameAddress(view, v, u, identify, 1)}`);
      }
    }
  }
  return `${u.size}:${u.nobits ? "bss" : hexOf(bytes)}{${tokens.join(" ")}}`;
}
