import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { GraftError } from "../../core/errors.js";
import { aarch64, archForMachine } from "../index.js";

const haveTools = (() => {
  try {
    execFileSync("aarch64-linux-gnu-as", ["--version"], { stdio: "ignore" });
    execFileSync("aarch64-linux-gnu-objdump", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const scratch = mkdtempSync(join(tmpdir(), "graft-a64-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let n = 0;

/** Assemble `source` with gas (armv8.5-a: BTI and PAC) and return the .text bytes and objdump's lines. */
function assemble(source: string): {
  bytes: Uint8Array;
  lines: { address: bigint; word: number; text: string }[];
} {
  const dir = join(scratch, String(n++));
  execFileSync("mkdir", ["-p", dir]);
  writeFileSync(join(dir, "a.s"), `.text\n${source}\n`);
  execFileSync("aarch64-linux-gnu-as", ["-march=armv8.5-a", join(dir, "a.s"), "-o", join(dir, "a.o")]);
  execFileSync("aarch64-linux-gnu-objcopy", [
    "-O",
    "binary",
    "-j",
    ".text",
    join(dir, "a.o"),
    join(dir, "a.bin"),
  ]);
  const out = execFileSync("aarch64-linux-gnu-objdump", ["-d", "-w", join(dir, "a.o")], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  const lines = [];
  for (const line of out.split("\n")) {
    const m = /^\s*([0-9a-f]+):\t([0-9a-f]{8})\s+\t(.*)$/.exec(line);
    if (m)
      lines.push({
        address: BigInt(`0x${m[1]}`),
        word: Number.parseInt(m[2]!, 16),
        text: m[3]!.replace(/\s+\/\/.*$/, "").trim(),
      });
  }
  return { bytes: new Uint8Array(readFileSync(join(dir, "a.bin"))), lines };
}

/** The kind the Arch contract gives what objdump prints as `text`. */
function kindOf(text: string): string {
  const m = text.split(/\s+/)[0] ?? "";
  if (m === "nop") return "nop";
  if (m === "bti") return "endbr";
  if (m === "b") return "jump";
  if (m === "bl") return "call";
  if (/^(b|bc)\.\w+$/.test(m) || /^(cbz|cbnz|tbz|tbnz)$/.test(m)) return "cond-jump";
  if (/^(br|braaz|brabz|braa|brab)$/.test(m)) return "indirect-jump";
  if (/^(blr|blraaz|blrabz|blraa|blrab)$/.test(m)) return "indirect-call";
  if (/^(ret|retaa|retab|eret)$/.test(m)) return "return";
  if (/^(brk|hlt|udf)$/.test(m)) return "trap";
  return "other";
}

const EVERY_FORM = `
f:
 b.eq f
 b.ne g
 cbz x0, f
 cbnz w3, g
 tbz w0, #3, f
 tbnz x1, #40, g
 b g
 bl f
 br x16
 blr x1
 ret
 ret x1
 retaa
 retab
 braaz x1
 blraaz x2
 braa x1, x2
 eret
 adr x0, f
 adrp x0, f
 add x0, x0, #0x10
 ldr x17, [x16, #4088]
 ldr x16, f
 ldr w16, g
 ldrsw x1, f
 prfm pldl1keep, f
 udf #0
 brk #0x3e8
 hlt #0
 svc #0
 stp x29, x30, [sp, #-16]!
 ldp x29, x30, [sp], #16
 mov x29, sp
 mov x0, x30
 nop
 xpaclri
 hint #0x70
 bti
 bti c
 bti j
 bti jc
 paciasp
 pacibsp
 autiasp
g:
 nop
`;

describe.runIf(haveTools)("aarch64 decode against gas and objdump", () => {
  test("every branch, return, landing pad, NOP, trap and PC-relative form has objdump's kind, target and mnemonic", () => {
    const { bytes, lines } = assemble(EVERY_FORM);
    const got = aarch64.decode(bytes, 0n);
    expect(got.map((i) => i.address)).toEqual(lines.map((l) => l.address));
    for (const [i, l] of lines.entries()) {
      const insn = got[i]!;
      const target = /\s([0-9a-f]+)(?: <[^>]*>)?$/.exec(l.text);
      const kind = kindOf(l.text);
      // Mnemonics for every form but the ordinary ones graft leaves as `.inst` (svc).
      const mnemonic = insn.text.startsWith(".inst") ? l.text.split(/\s+/)[0] : insn.text.split(/\s+/)[0];
      expect({ text: l.text, kind: insn.kind, mnemonic }).toEqual({
        text: l.text,
        kind,
        mnemonic: l.text.split(/\s+/)[0],
      });
      if (kind === "jump" || kind === "call" || kind === "cond-jump")
        expect({ text: l.text, target: insn.target }).toEqual({
          text: l.text,
          target: BigInt(`0x${target![1]}`),
        });
      if (/^(adr|adrp|ldr|ldrsw|prfm)\s[^[]*$/.test(l.text))
        expect({ text: l.text, memory: insn.memoryAddress, pc: insn.pcRelative }).toEqual({
          text: l.text,
          memory: BigInt(`0x${target![1]}`),
          pc: true,
        });
    }
  });

  test("agrees with objdump on the kind and target of 20000 pseudo-random words", () => {
    // A fixed LCG, biased towards the branch, system and exception classes, so misses cannot hide.
    let seed = 0x2545f491;
    const next = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed;
    };
    const PREFIXES = [
      0x14000000, 0x94000000, 0x54000000, 0x34000000, 0x36000000, 0xd6000000, 0xd5000000, 0xd4000000,
      0x10000000, 0x18000000, 0,
    ];
    const words: number[] = [];
    for (let i = 0; i < 20000; i++) {
      const r = next();
      const p = PREFIXES[r % PREFIXES.length]!;
      words.push(p === 0 ? next() : (p | (next() & 0x03ffffff) | (r & 0x80000000)) >>> 0);
    }
    const { bytes, lines } = assemble(words.map((w) => `.inst 0x${w.toString(16)}`).join("\n"));
    const mismatches: string[] = [];
    for (const l of lines) {
      const insn = aarch64.decodeOne(bytes.subarray(Number(l.address)), l.address)!;
      const want = l.text.startsWith(".inst") ? "other" : kindOf(l.text);
      const target = /^(b|bl|b\.\w+|bc\.\w+|cbn?z|tbn?z)\s.*\s([0-9a-f]+)(?: <[^>]*>)?$/.exec(l.text);
      if (insn.kind !== want) mismatches.push(`${l.word.toString(16)} ${l.text}: ${insn.kind}`);
      else if (target !== null && insn.target !== BigInt(`0x${target[2]}`))
        mismatches.push(`${l.word.toString(16)} ${l.text}: target ${insn.target?.toString(16)}`);
    }
    expect(mismatches.slice(0, 20)).toEqual([]);
    expect(lines.length).toBe(20000);
  });

  test("scanBranches reports exactly the direct branches decode finds", () => {
    const { bytes } = assemble(EVERY_FORM);
    const swept: string[] = [];
    aarch64.scanBranches(bytes, 0x1000n, (b) => swept.push(`${b.from}>${b.to}:${b.kind}:${b.length}`));
    const decoded = aarch64
      .decode(bytes, 0x1000n)
      .filter((i) => i.kind === "jump" || i.kind === "call" || i.kind === "cond-jump")
      .map((i) => `${i.address}>${i.target}:${i.kind}:4`);
    expect(swept).toEqual(decoded);
    expect(swept.length).toBe(8);
  });

  test("pairs adrp with add and ldr, and gives br/blr the slot they jump through (a PLT entry)", () => {
    // Encoded by hand: gas would relocate an ADRP to a label instead of resolving it.
    const { bytes, lines } = assemble(`
 .inst 0x90000090 // adrp x16, . + 16 pages
 ldr x17, [x16, #0x18]
 add x16, x16, #0x18
 br x17
 .inst 0xd0000000 // adrp x0, . + 2 pages
 add x1, x0, #0x40
 bl .
 add x2, x0, #8
`);
    expect(lines.map((l) => l.text.split(/\s+/)[0])).toEqual([
      "adrp",
      "ldr",
      "add",
      "br",
      "adrp",
      "add",
      "bl",
      "add",
    ]);
    expect(lines[0]!.text).toMatch(/^adrp\s+x16, 10000/);
    expect(lines[4]!.text).toMatch(/^adrp\s+x0, 2000/);
    const d = aarch64.decode(bytes, 0x400000n);
    expect(d.map((i) => i.memoryAddress)).toEqual([
      0x410000n,
      0x410018n,
      0x410018n,
      0x410018n,
      0x402000n,
      0x402040n,
      undefined,
      undefined, // a call clobbers x0: the pair is forgotten
    ]);
  });

  test("pairs adrp with any load or store by its access size: bytes, stores, a 16-byte SIMD constant", () => {
    const { bytes, lines } = assemble(`
 .inst 0xd0000000 // adrp x0, . + 2 pages
 ldr q0, [x0, #0x20]
 strb w1, [x0, #3]
 ldrh w2, [x0, #6]
 ldrb w0, [x0, #1]
 ldr x3, [x0, #8]
`);
    expect(lines[1]!.text).toMatch(/^ldr\s+q0, \[x0, #32\]/);
    const d = aarch64.decode(bytes, 0x400000n);
    expect(d.map((i) => i.memoryAddress)).toEqual([
      0x402000n,
      0x402020n,
      0x402003n,
      0x402006n,
      0x402001n,
      undefined, // the byte load wrote x0: the page is forgotten
    ]);
  });
});

describe("aarch64 encoders", () => {
  test("b and bl reach ±128 MiB and decode back to their targets", () => {
    const from = 0x10000000n;
    for (const to of [from, from + 4n, from - 4n, from + (1n << 27n) - 4n, from - (1n << 27n)]) {
      expect(aarch64.decodeOne(aarch64.encodeNearJump(from, to)!, from)).toMatchObject({
        kind: "jump",
        target: to,
      });
      expect(aarch64.decodeOne(aarch64.encodeNearCall(from, to)!, from)).toMatchObject({
        kind: "call",
        target: to,
      });
    }
    expect(aarch64.encodeNearJump(from, from + (1n << 27n))).toBeUndefined();
    expect(aarch64.encodeNearJump(from, from - (1n << 27n) - 4n)).toBeUndefined();
    expect(aarch64.encodeShortJump(from, from + 2n)).toBeUndefined(); // not a word boundary
  });

  test("the absolute jump is ldr x16 of the literal after br x16", () => {
    const bytes = aarch64.encodeAbsoluteJump(0x123456789abcdef0n);
    expect(bytes.length).toBe(aarch64.absoluteJumpLength);
    const [ldr, br] = aarch64.decode(bytes.subarray(0, 8), 0x1000n);
    expect(ldr).toMatchObject({ text: "ldr\tx16, 0x1008", memoryAddress: 0x1008n });
    expect(br).toMatchObject({ kind: "indirect-jump", text: "br\tx16" });
    expect(new DataView(bytes.buffer).getBigUint64(8, true)).toBe(0x123456789abcdef0n);
  });

  test.runIf(haveTools)("objdump reads the encoders' words as gas would write them", () => {
    const words = [
      aarch64.encodeNearJump(0n, 0x7fffffcn)!,
      aarch64.encodeNearCall(0x4n, 0n)!,
      aarch64.encodeAbsoluteJump(0x400000n).subarray(0, 8),
      aarch64.nopFill(4),
    ].flatMap((b) => {
      const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      return Array.from({ length: b.length / 4 }, (_, i) => v.getUint32(i * 4, true));
    });
    const { lines } = assemble(words.map((w) => `.inst 0x${w.toString(16)}`).join("\n"));
    expect(lines.map((l) => l.text.replace(/ <.*>$/, ""))).toEqual([
      "b\t7fffffc",
      "bl\t0",
      "ldr\tx16, 10",
      "br\tx16",
      "nop",
    ]);
  });

  test("NOPs and landing pads are words; only `nop` is a NOP", () => {
    expect(aarch64.nopFill(12)).toEqual(
      Uint8Array.of(0x1f, 0x20, 0x03, 0xd5, 0x1f, 0x20, 0x03, 0xd5, 0x1f, 0x20, 0x03, 0xd5),
    );
    expect(() => aarch64.nopFill(6)).toThrow(RangeError);
    const word = (w: number) => Uint8Array.of(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24);
    expect(aarch64.nopLength(word(0xd503201f), 0)).toBe(4);
    expect(aarch64.nopLength(word(0xd503245f), 0)).toBe(0); // bti c
    expect(aarch64.nopLength(word(0xd503201f).subarray(0, 3), 0)).toBe(0);
    for (const bti of [0xd503241f, 0xd503245f, 0xd503249f, 0xd50324df])
      expect(aarch64.endbrLength(word(bti), 0)).toBe(4);
    expect(aarch64.endbrLength(word(0xd503233f), 0)).toBe(0); // paciasp: an implicit pad, not an endbr
    expect(aarch64.isImplicitLandingPad(word(0xd503233f), 0)).toBe(true);
    expect(aarch64.isImplicitLandingPad(word(0xd503237f), 0)).toBe(true); // pacibsp
    expect(aarch64.isImplicitLandingPad(word(0xd50323bf), 0)).toBe(false); // autiasp
  });
});

describe("aarch64 arch", () => {
  test("is the arch for EM_AARCH64", () => {
    expect(archForMachine(183)).toBe(aarch64);
  });

  test("its jump lengths are the lengths of the jumps it encodes", () => {
    expect(aarch64.encodeShortJump(0n, 0n)).toHaveLength(aarch64.shortJumpLength);
    expect(aarch64.encodeNearJump(0n, 0n)).toHaveLength(aarch64.nearJumpLength);
    expect(aarch64.encodeAbsoluteJump(0n)).toHaveLength(aarch64.absoluteJumpLength);
    expect(aarch64.farJumpLength).toBe(aarch64.absoluteJumpLength);
  });

  test("live-patching questions throw ARCH_UNSUPPORTED until live patching comes to aarch64", () => {
    const err = (() => {
      try {
        aarch64.registerWrites(new Uint8Array(4), 0n);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(GraftError);
    expect((err as GraftError).code).toBe("ARCH_UNSUPPORTED");
    expect(() => aarch64.returnValueUse(new Uint8Array(4), 0n, 0n)).toThrow(/not supported on aarch64/);
  });
});
