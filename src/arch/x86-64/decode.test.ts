import { existsSync, readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import {
  compile,
  hasTool,
  type ObjdumpLine,
  objdump,
  objdumpBranch,
  objdumpKind,
  readBytes,
  section,
  sections,
} from "../../../test/support/objdump-oracle.js";
import type { Instruction } from "../arch.js";
import { decode, decodeOne } from "./decode.js";

const haveTools = hasTool("gcc") && hasTool("objdump") && hasTool("readelf");
const source = readFileSync(new URL("../../../test/fixtures/arch/control-flow.c", import.meta.url), "utf8");

/** What decode says about one instruction, in the terms objdump can be read back in. */
function facts(ins: Instruction) {
  return {
    address: ins.address,
    length: ins.length,
    kind: ins.kind,
    target: ins.target,
    pcRelative: ins.pcRelative,
    memoryAddress: ins.memoryAddress,
    relocatable: ins.relocatable,
  };
}

const hexOf = (digits: string | undefined) => (digits === undefined ? undefined : BigInt(`0x${digits}`));

/** The same facts as read from objdump's line. */
function objdumpFacts(line: ObjdumpLine) {
  const kind = objdumpKind(line);
  return {
    address: line.address,
    length: line.bytes.length,
    kind,
    target: objdumpBranch(line)?.target,
    pcRelative: line.text.includes("(%rip)"),
    // objdump resolves a RIP-relative operand in a trailing comment: `lea 0x0(%rip),%rax # 7 <f+0x7>`.
    memoryAddress: line.text.includes("(%rip)") ? hexOf(/#\s+([0-9a-f]+)/.exec(line.text)?.[1]) : undefined,
    relocatable: kind === "invalid" ? false : !/^(loop|jrcxz|jecxz)/.test(line.text),
  };
}

describe.skipIf(!haveTools)("decode against objdump", () => {
  test.each([
    "-O2",
    "-O0",
    "-Os",
    "-O3 -mavx2",
    "-O2 -fcf-protection=full",
    "-O2 -fpatchable-function-entry=8,3",
    "-O2 -fno-pie -pg -mfentry -mnop-mcount -mrecord-mcount",
    "-O2 -fpic",
  ])("every instruction of gcc %s agrees with objdump on boundaries, kinds, targets and RIP use", (flags) => {
    const obj = compile("control-flow.c", source, flags.split(" "));
    const texts = sections(obj).filter((s) => s.name.startsWith(".text") && s.size > 0);
    expect(texts.length).toBeGreaterThan(0);
    for (const text of texts) {
      const mine = decode(readBytes(obj, text.offset, text.size), text.address);
      const theirs = objdump(obj, { section: text.name });
      expect(mine.map(facts), text.name).toEqual(theirs.map(objdumpFacts));
    }
  });

  test("the fixture holds every kind, RIP-relative operands and rel8-only branches", () => {
    const obj = compile("control-flow.c", source, ["-O2"]);
    const kinds = new Set<string>();
    const all = sections(obj)
      .filter((s) => s.name.startsWith(".text") && s.size > 0)
      .flatMap((text) => decode(readBytes(obj, text.offset, text.size), text.address));
    for (const ins of all) kinds.add(ins.kind);
    expect(all.some((ins) => ins.memoryAddress !== undefined)).toBe(true);
    expect(all.some((ins) => ins.relocatable === false)).toBe(true);
    for (const kind of [
      "nop",
      "endbr",
      "jump",
      "cond-jump",
      "call",
      "indirect-jump",
      "indirect-call",
      "return",
      "trap",
    ]) {
      expect(kinds, kind).toContain(kind);
    }
  });

  test("text reads like objdump's for nearly every instruction gcc emits", () => {
    const obj = compile("control-flow.c", source, ["-O2"]);
    const text = section(obj, ".text");
    const mine = decode(readBytes(obj, text.offset, text.size), text.address);
    const theirs = objdump(obj, { section: ".text" });
    // objdump names branch targets `<sym+off>` and prints them without 0x; that is all we drop.
    const plain = (s: string) =>
      s
        .replace(/ <[^>]*>$/, "")
        .replace(/ 0x([0-9a-f]+)$/, " $1")
        .replace(/\s+/g, " ");
    const same = mine.filter((ins, i) => plain(ins.text) === plain(theirs[i]!.text)).length;
    expect(same / mine.length).toBeGreaterThan(0.9);
    expect(mine.find((ins) => ins.kind === "return")?.text).toBe("ret");
  });
});

/** JSON.stringify replacer for bigints. */
const bigintHex = (_: string, v: unknown) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v);

/** /usr/bin/node is a large real-world x86-64 binary (V8, OpenSSL asm) when this machine has one. */
const node = "/usr/bin/node";
const haveNode = haveTools && existsSync(node) && Buffer.from(readBytes(node, 18, 2)).readUInt16LE() === 62;

describe.skipIf(!haveNode)("decode over node's .text", () => {
  test("the first 2 MB decode whole, and a 256 KB window agrees with objdump", () => {
    const text = section(node, ".text");
    const size = Math.min(2 << 20, text.size);
    const mine = decode(readBytes(node, text.offset, size), text.address);
    // Every byte is covered, up to a last instruction the 2 MB cut may split.
    const covered = mine.reduce((n, ins) => n + ins.length, 0);
    expect(covered).toBeGreaterThan(size - 15);
    const gaps = mine.filter(
      (ins, i) => i > 0 && ins.address !== mine[i - 1]!.address + BigInt(mine[i - 1]!.length),
    );
    expect(gaps).toEqual([]);
    // objdump restarts at each symbol while decode sweeps on, so the two can differ only after
    // bytes that do not decode (data in .text); none in gcc/clang output, so demand near-total accord.
    const from = mine.findIndex((ins) => ins.address >= text.address + BigInt(size / 2));
    const to = mine.findIndex((ins) => ins.address >= text.address + BigInt(size / 2 + (256 << 10)));
    const window = mine.slice(from, to);
    const theirs = objdump(node, { start: window[0]!.address, stop: mine[to]!.address });
    const byAddress = new Map(window.map((ins) => [ins.address, ins]));
    const disagree: unknown[] = [];
    let agree = 0;
    for (const line of theirs) {
      const ins = byAddress.get(line.address);
      if (ins === undefined) continue;
      const [a, b] = [facts(ins), objdumpFacts(line)];
      if (JSON.stringify(a, bigintHex) === JSON.stringify(b, bigintHex)) agree++;
      else disagree.push([line.text, a, b]);
    }
    expect(disagree.slice(0, 5)).toEqual([]);
    expect(agree / theirs.length).toBeGreaterThan(0.999);
  });
});

describe("decode edge cases", () => {
  test("each undecodable byte becomes a one-byte invalid instruction and decoding goes on", () => {
    // 06 is push %es, which has no 64-bit form; objdump prints "(bad)" and moves one byte on.
    const out = decode(Uint8Array.of(0x06, 0x90, 0x06, 0xc3), 0x1000n);
    expect(out.map((i) => [i.address, i.length, i.kind, i.text])).toEqual([
      [0x1000n, 1, "invalid", "(bad)"],
      [0x1001n, 1, "nop", "nop"],
      [0x1002n, 1, "invalid", "(bad)"],
      [0x1003n, 1, "return", "ret"],
    ]);
  });

  test("decoding stops before an instruction the bytes cut short", () => {
    const call = Uint8Array.of(0x90, 0xe8, 0x00, 0x00); // nop; call rel32 missing a byte
    expect(decode(call, 0n).map((i) => i.kind)).toEqual(["nop"]);
    expect(decodeOne(call.subarray(1), 1n)).toBeUndefined();
    expect(decodeOne(new Uint8Array(0), 0n)).toBeUndefined();
  });

  test("a limit bounds how many instructions come back", () => {
    const nops = new Uint8Array(100).fill(0x90);
    expect(decode(nops, 0n, 3)).toHaveLength(3);
    expect(decode(nops, 0n, 0)).toHaveLength(0);
    expect(decodeOne(nops, 5n)).toMatchObject({ address: 5n, length: 1, kind: "nop" });
  });

  test("syscall is not a call: iced files it under Call, but it has no target and returns", () => {
    expect(decodeOne(Uint8Array.of(0x0f, 0x05), 0n)).toMatchObject({ kind: "other", target: undefined });
  });
});
