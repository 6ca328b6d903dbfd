import type { Instruction, InstructionKind } from "../arch.js";
import { directBranch, HINT, hintNumber, pcPlus, signExtend, wordAt } from "./a64-word.js";

/**
 * The A64 decoder graft needs for analysis, no more: every word is one 4-byte instruction, so
 * boundaries are never in doubt; what matters is its kind (NOP, BTI landing pad, direct branch and
 * target, indirect branch, return, trap) and its PC-relative operand (ADR, ADRP, LDR literal, and the
 * low half of an ADRP pair). Other instructions are "other", with text for the common prologue
 * forms and `.inst 0x…` for the rest (the text is for people only).
 */

const HEX = (n: bigint | number): string => `0x${n.toString(16)}`;
const X = (r: number, sp = false): string => (r === 31 ? (sp ? "sp" : "xzr") : `x${r}`);
const W = (r: number, sp = false): string => (r === 31 ? (sp ? "wsp" : "wzr") : `w${r}`);
const CONDITIONS = [
  "eq",
  "ne",
  "hs",
  "lo",
  "mi",
  "pl",
  "vs",
  "vc",
  "hi",
  "ls",
  "ge",
  "lt",
  "gt",
  "le",
  "al",
  "nv",
];
const BTI_TARGETS: Record<number, string> = { 32: "bti", 34: "bti\tc", 36: "bti\tj", 38: "bti\tjc" };
const HINT_NAMES: Record<number, string> = {
  0: "nop",
  1: "yield",
  2: "wfe",
  3: "wfi",
  4: "sev",
  5: "sevl",
  7: "xpaclri",
  [HINT.PACIAZ]: "paciaz",
  [HINT.PACIASP]: "paciasp",
  [HINT.PACIBZ]: "pacibz",
  [HINT.PACIBSP]: "pacibsp",
  [HINT.AUTIAZ]: "autiaz",
  [HINT.AUTIASP]: "autiasp",
  [HINT.AUTIBZ]: "autibz",
  [HINT.AUTIBSP]: "autibsp",
};

/** Fields common to every decoded word. */
interface Decoded {
  kind: InstructionKind;
  text: string;
  target?: bigint;
  memoryAddress?: bigint;
  pcRelative: boolean;
}

/** Decode the word `w` at `address` on its own (no pairing with earlier instructions). */
export function decodeWord(w: number, address: bigint): Decoded {
  const hint = hintNumber(w);
  if (hint >= 0) {
    if (hint === 0) return { kind: "nop", text: "nop", pcRelative: false };
    const bti = BTI_TARGETS[hint];
    if (bti !== undefined) return { kind: "endbr", text: bti, pcRelative: false };
    return { kind: "other", text: HINT_NAMES[hint] ?? `hint\t#${HEX(hint)}`, pcRelative: false };
  }
  const branch = directBranch(w, address);
  if (branch !== undefined) {
    return {
      kind: branch.kind,
      text: `${branchMnemonic(w)}\t${branchOperands(w)}${HEX(branch.to)}`,
      target: branch.to,
      pcRelative: false,
    };
  }
  // Unconditional branch (register): 1101011 opc op2=11111 op3 Rn op4 [Arm ARM, "Unconditional branch (register)"]. op3 is 000000
  // for the plain forms and 00001M for the pointer-authenticating ones (M picks key A or B); opc
  // bit 3 gives those a modifier register in op4 (braa x1, x2) instead of zero (braaz x1).
  if ((w & 0xfe000000) >>> 0 === 0xd6000000 && ((w >>> 16) & 0x1f) === 0x1f) {
    const indirect = registerBranch(w);
    if (indirect !== undefined) return { ...indirect, pcRelative: false };
  }
  // Exception generation: 11010100 opc imm16 op2 LL [Arm ARM, "Exception generation"]; udf is the all-zero top half.
  if ((w & 0xffe0001f) >>> 0 === 0xd4200000)
    return { kind: "trap", text: `brk\t#${HEX((w >>> 5) & 0xffff)}`, pcRelative: false };
  if ((w & 0xffe0001f) >>> 0 === 0xd4400000)
    return { kind: "trap", text: `hlt\t#${HEX((w >>> 5) & 0xffff)}`, pcRelative: false };
  if ((w & 0xffff0000) >>> 0 === 0) return { kind: "trap", text: `udf\t#${w & 0xffff}`, pcRelative: false };
  // ADR / ADRP: op immlo 10000 immhi Rd [Arm ARM, "ADR", "ADRP"].
  if ((w & 0x1f000000) === 0x10000000) {
    const imm = signExtend((((w >>> 5) & 0x7ffff) << 2) | ((w >>> 29) & 3), 21);
    const page = (w & 0x80000000) !== 0;
    const to = page ? pcPlus(address & ~0xfffn, BigInt(imm) * 4096n) : pcPlus(address, imm);
    return {
      kind: "other",
      text: `${page ? "adrp" : "adr"}\t${X(w & 0x1f)}, ${HEX(to)}`,
      memoryAddress: to,
      pcRelative: true,
    };
  }
  // LDR (literal) and PRFM (literal): opc 011 V 00 imm19 Rt [Arm ARM, "LDR (literal)"].
  if ((w & 0x3b000000) === 0x18000000) {
    const to = pcPlus(address, signExtend((w >>> 5) & 0x7ffff, 19) * 4);
    const opc = w >>> 30;
    const simd = ((w >>> 26) & 1) === 1;
    const rt = w & 0x1f;
    const reg = simd ? `${["s", "d", "q"][opc] ?? "?"}${rt}` : opc === 0 ? W(rt) : `x${rt}`;
    const mnemonic = simd ? "ldr" : opc === 2 ? "ldrsw" : opc === 3 ? "prfm" : "ldr";
    return {
      kind: "other",
      text: `${mnemonic}\t${opc === 3 && !simd ? `#${rt}` : reg}, ${HEX(to)}`,
      memoryAddress: to,
      pcRelative: true,
    };
  }
  return { kind: "other", text: otherText(w), pcRelative: false };
}

function registerBranch(w: number): { kind: InstructionKind; text: string } | undefined {
  const opc = (w >>> 21) & 0xf;
  const op3 = (w >>> 10) & 0x3f;
  const rn = (w >>> 5) & 0x1f;
  const op4 = w & 0x1f;
  const pac = op3 >>> 1 === 1;
  if (op3 !== 0 && !pac) return undefined;
  const key = (op3 & 1) === 1 ? "b" : "a";
  const withModifier = (opc & 8) !== 0;
  if (pac && !withModifier && op4 !== 0x1f) return undefined;
  if (!pac && (withModifier || op4 !== 0)) return undefined;
  const auth = pac ? `a${key}${withModifier ? "" : "z"}` : "";
  const operands = `${X(rn)}${withModifier ? `, ${X(op4, true)}` : ""}`;
  switch (opc & 7) {
    case 0:
      return { kind: "indirect-jump", text: `br${auth}\t${operands}` };
    case 1:
      return { kind: "indirect-call", text: `blr${auth}\t${operands}` };
    case 2:
      if (withModifier) return undefined;
      if (pac) return rn === 0x1f ? { kind: "return", text: `reta${key}` } : undefined;
      return { kind: "return", text: rn === 30 ? "ret" : `ret\t${X(rn)}` };
    case 4:
      return !withModifier && !pac && rn === 0x1f ? { kind: "return", text: "eret" } : undefined;
    default:
      return undefined;
  }
}

function branchMnemonic(w: number): string {
  if ((w & 0xfc000000) >>> 0 === 0x14000000) return "b";
  if ((w & 0xfc000000) >>> 0 === 0x94000000) return "bl";
  if ((w & 0xff000000) >>> 0 === 0x54000000) return `${(w & 0x10) !== 0 ? "bc" : "b"}.${CONDITIONS[w & 0xf]}`;
  if ((w & 0x7e000000) === 0x34000000) return ((w >>> 24) & 1) === 1 ? "cbnz" : "cbz";
  return ((w >>> 24) & 1) === 1 ? "tbnz" : "tbz";
}

function branchOperands(w: number): string {
  const rt = w & 0x1f;
  const sf = (w & 0x80000000) !== 0;
  if ((w & 0x7e000000) === 0x34000000) return `${sf ? X(rt) : W(rt)}, `;
  if ((w & 0x7e000000) === 0x36000000) {
    const bit = ((w >>> 31) << 5) | ((w >>> 19) & 0x1f);
    return `${bit >= 32 ? X(rt) : W(rt)}, #${bit}, `;
  }
  return "";
}

/** Text for the non-branch instructions that fill prologues and epilogues; `.inst` for the rest. */
function otherText(w: number): string {
  const rd = w & 0x1f;
  const rn = (w >>> 5) & 0x1f;
  // ADD/SUB (immediate), 64-bit: sf op S 100010 sh imm12 Rn Rd; `mov` to or from sp.
  if ((w & 0x9f800000) >>> 0 === 0x91000000) {
    const sub = (w & 0x40000000) !== 0;
    const imm = (w >>> 10) & 0xfff;
    const shift = ((w >>> 22) & 1) === 1 ? ", lsl #12" : "";
    if (!sub && imm === 0 && shift === "" && (w & 0x20000000) === 0 && (rd === 31 || rn === 31))
      return `mov\t${X(rd, true)}, ${X(rn, true)}`;
    return `${sub ? "sub" : "add"}${(w & 0x20000000) !== 0 ? "s" : ""}\t${X(rd, true)}, ${X(rn, true)}, #${HEX(imm)}${shift}`;
  }
  // ORR (shifted register) with xzr: `mov xd, xm`.
  if ((w & 0xffe0ffe0) >>> 0 === 0xaa0003e0) return `mov\t${X(rd)}, ${X((w >>> 16) & 0x1f)}`;
  if ((w & 0xffe0ffe0) >>> 0 === 0x2a0003e0) return `mov\t${W(rd)}, ${W((w >>> 16) & 0x1f)}`;
  // STP/LDP 64-bit, pre-index / post-index / signed offset.
  if ((w & 0xfe000000) >>> 0 === 0xa8000000 || (w & 0xfe000000) >>> 0 === 0xa9000000) {
    const mode = (w >>> 23) & 3; // 1 post, 2 offset, 3 pre
    const load = ((w >>> 22) & 1) === 1;
    const imm = signExtend((w >>> 15) & 0x7f, 7) * 8;
    const pair = `${X(rd)}, ${X((w >>> 10) & 0x1f)}`;
    const base = X(rn, true);
    const addr =
      mode === 1
        ? `[${base}], #${imm}`
        : mode === 3
          ? `[${base}, #${imm}]!`
          : imm === 0
            ? `[${base}]`
            : `[${base}, #${imm}]`;
    if (mode !== 0) return `${load ? "ldp" : "stp"}\t${pair}, ${addr}`;
  }
  // LDR/STR (unsigned offset), 32- and 64-bit integer registers.
  if ((w & 0xbf800000) >>> 0 === 0xb9000000) {
    const is64 = (w & 0x40000000) !== 0;
    const load = ((w >>> 22) & 1) === 1;
    const imm = ((w >>> 10) & 0xfff) * (is64 ? 8 : 4);
    const base = X(rn, true);
    return `${load ? "ldr" : "str"}\t${is64 ? X(rd) : W(rd)}, ${imm === 0 ? `[${base}]` : `[${base}, #${imm}]`}`;
  }
  return `.inst\t${HEX(w >>> 0)}`;
}

/** Registers an ADRP pair tracks: the page ADRP put there, or the address an LDR loaded from. */
/** Bytes the imm12 of a load/store (unsigned offset) counts in: the access size [Arm ARM C6.2 LDR (immediate)]. */
function unsignedOffsetScale(w: number): number {
  const size = w >>> 30;
  // SIMD&FP (V=1) with size 00 and opc<1> set is the 128-bit Q form.
  if ((w & 0x04000000) !== 0 && size === 0 && (w & 0x00800000) !== 0) return 16;
  return 1 << size;
}

type Known = { page: bigint } | { loadedFrom: bigint } | { address: bigint };

/**
 * Decode one instruction; `undefined` when fewer than 4 bytes remain. A lone word cannot know the
 * ADRP before it, so `add x0, x0, #lo12` has no `memoryAddress` here; `decode` pairs them.
 */
export function decodeOne(bytes: Uint8Array, address: bigint): Instruction | undefined {
  const w = wordAt(bytes, 0);
  if (w === undefined) return undefined;
  return { address, length: 4, relocatable: true, ...decodeWord(w, address) };
}

/**
 * Decode up to `limit` instructions from `bytes` (at `address`), pairing each ADRP with the ADD or
 * LDR that completes its address (`adrp x16, page; ldr x17, [x16, #lo12]` in a PLT entry, `adrp x0,
 * page; add x0, x0, #lo12` for a string): the second instruction gets the full `memoryAddress`, and
 * a `br`/`blr` through a register just loaded that way gets the slot it jumps through, as x86's
 * `jmp *slot(%rip)` does. Any other write to a tracked register, or any branch, forgets it. Bytes
 * after the last whole word are ignored. In a `.o` the immediates are placeholders: the relocations
 * at each instruction's address (R_AARCH64_ADR_PREL_PG_HI21, ADD_ABS_LO12_NC, LDST64_ABS_LO12_NC)
 * say what they mean.
 */
export function decode(bytes: Uint8Array, address: bigint, limit = Number.POSITIVE_INFINITY): Instruction[] {
  const out: Instruction[] = [];
  const known = new Map<number, Known>();
  for (let o = 0; o + 4 <= bytes.length && out.length < limit; o += 4) {
    const w = wordAt(bytes, o)!;
    const at = address + BigInt(o);
    const d = decodeWord(w, at);
    const rd = w & 0x1f;
    const rn = (w >>> 5) & 0x1f;
    const base = known.get(rn);
    if ((w & 0x9f000000) >>> 0 === 0x90000000) {
      known.set(rd, { page: d.memoryAddress! });
    } else if ((w & 0xffc00000) >>> 0 === 0x91000000 && base !== undefined && "page" in base) {
      // ADD xd, xn, #imm12 (no shift): page + lo12.
      d.memoryAddress = pcPlus(base.page, (w >>> 10) & 0xfff);
      d.pcRelative = true;
      known.set(rd, { address: d.memoryAddress });
    } else if ((w & 0xbfc00000) >>> 0 === 0xb9400000 && base !== undefined && "page" in base) {
      // LDR xt|wt, [xn, #imm12 × size] (unsigned offset).
      const size = (w & 0x40000000) !== 0 ? 8n : 4n;
      d.memoryAddress = pcPlus(base.page, BigInt((w >>> 10) & 0xfff) * size);
      d.pcRelative = true;
      known.set(rd, { loadedFrom: d.memoryAddress });
    } else if ((w & 0x3b000000) >>> 0 === 0x39000000 && base !== undefined && "page" in base) {
      // Any other load or store (unsigned offset): bytes, halves, stores, SIMD&FP `ldr q0, [x0, #lo12]`
      // (a 16-byte constant). Its address completes the pair; the page register stays known.
      d.memoryAddress = pcPlus(base.page, BigInt((w >>> 10) & 0xfff) * BigInt(unsignedOffsetScale(w)));
      d.pcRelative = true;
      const gprLoad = (w & 0x04000000) === 0 && (w & 0x00c00000) !== 0;
      if (gprLoad) known.delete(rd);
    } else if (
      (d.kind === "indirect-jump" || d.kind === "indirect-call") &&
      base !== undefined &&
      "loadedFrom" in base
    ) {
      d.memoryAddress = base.loadedFrom;
    } else if (d.kind !== "nop" && d.kind !== "endbr") {
      known.delete(rd);
    }
    if (d.kind !== "other" && d.kind !== "nop" && d.kind !== "endbr") known.clear();
    out.push({ address: at, length: 4, relocatable: true, ...d });
  }
  return out;
}
