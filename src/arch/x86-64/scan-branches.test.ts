import { existsSync, readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import {
  compile,
  hasTool,
  objdump,
  objdumpBranch,
  objdumpKind,
  readBytes,
  section,
  sections,
} from "../../../test/support/objdump-oracle.js";
import type { BranchRef } from "../arch.js";
import { decode } from "./decode.js";
import { scanBranches } from "./scan-branches.js";

const haveTools = hasTool("gcc") && hasTool("objdump") && hasTool("readelf");
const source = readFileSync(new URL("../../../test/fixtures/arch/control-flow.c", import.meta.url), "utf8");

function scan(bytes: Uint8Array, address: bigint): BranchRef[] {
  const refs: BranchRef[] = [];
  scanBranches(bytes, address, (ref) => refs.push(ref));
  return refs;
}

describe.skipIf(!haveTools)("scanBranches against objdump", () => {
  test.each(["-O2", "-O0", "-O2 -fcf-protection=full -fpic"])(
    "reports exactly the direct branches objdump shows in gcc %s code",
    (flags) => {
      const obj = compile("control-flow.c", source, flags.split(" "));
      for (const text of sections(obj).filter((s) => s.name.startsWith(".text") && s.size > 0)) {
        const expected = objdump(obj, { section: text.name }).flatMap((line) => {
          const branch = objdumpBranch(line);
          const kind = objdumpKind(line);
          if (branch === undefined || (kind !== "jump" && kind !== "cond-jump" && kind !== "call")) return [];
          return [{ from: line.address, to: branch.target, kind, length: line.bytes.length }];
        });
        expect(scan(readBytes(obj, text.offset, text.size), text.address), text.name).toEqual(expected);
      }
    },
  );
});

const node = "/usr/bin/node";
const haveNode = haveTools && existsSync(node) && Buffer.from(readBytes(node, 18, 2)).readUInt16LE() === 62;

describe.skipIf(!haveNode)("scanBranches over node's .text", () => {
  test("finds in the first 2 MB the same branches as a full decode", () => {
    const text = section(node, ".text");
    const bytes = readBytes(node, text.offset, Math.min(2 << 20, text.size));
    const expected = decode(bytes, text.address).flatMap((ins) =>
      ins.target !== undefined && (ins.kind === "jump" || ins.kind === "cond-jump" || ins.kind === "call")
        ? [{ from: ins.address, to: ins.target, kind: ins.kind, length: ins.length }]
        : [],
    );
    const found = scan(bytes, text.address);
    expect(found.length).toBeGreaterThan(10_000);
    expect(found).toEqual(expected);
  });
});

describe("scanBranches", () => {
  test("skips undecodable bytes one at a time and keeps going", () => {
    // 06 (bad), eb fe jmp to itself, 06 (bad), e8 rel32 call
    const bytes = Uint8Array.of(0x06, 0xeb, 0xfe, 0x06, 0xe8, 0x00, 0x00, 0x00, 0x00);
    expect(scan(bytes, 0x100n)).toEqual([
      { from: 0x101n, to: 0x101n, kind: "jump", length: 2 },
      { from: 0x104n, to: 0x109n, kind: "call", length: 5 },
    ]);
  });

  test("reports loop, jrcxz and xbegin as conditional jumps, and not syscall or indirect branches", () => {
    // loop; jrcxz; xbegin rel32; syscall; jmp *%rax; call *%rax
    const bytes = Uint8Array.of(
      0xe2,
      0xfe,
      0xe3,
      0x00,
      0xc7,
      0xf8,
      0,
      0,
      0,
      0,
      0x0f,
      0x05,
      0xff,
      0xe0,
      0xff,
      0xd0,
    );
    expect(scan(bytes, 0n).map((r) => [r.from, r.kind, r.to])).toEqual([
      [0n, "cond-jump", 0n],
      [2n, "cond-jump", 4n],
      [4n, "cond-jump", 10n],
    ]);
  });

  test("ends quietly at a branch the bytes cut short, and on no bytes", () => {
    expect(scan(Uint8Array.of(0x90, 0xe9, 0x00), 0n)).toEqual([]);
    expect(scan(new Uint8Array(0), 0n)).toEqual([]);
  });
});
