import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { buildFixture } from "../../../test/support/fixtures.js";
import { cfaRowAt, EhFrame, type RegisterRule } from "./eh-frame.js";
import { readElfFile } from "./elf-file.js";

/** readelf's column names → DWARF register numbers [psABI x86-64 figure 3.36]. */
const COLUMNS: Record<string, number> = {
  rax: 0,
  rdx: 1,
  rcx: 2,
  rbx: 3,
  rsi: 4,
  rdi: 5,
  rbp: 6,
  rsp: 7,
  r8: 8,
  r9: 9,
  r10: 10,
  r11: 11,
  r12: 12,
  r13: 13,
  r14: 14,
  r15: 15,
  ra: 16,
};
const NAMES = Object.fromEntries(Object.entries(COLUMNS).map(([k, v]) => [v, k]));

interface OracleFde {
  offset: number;
  begin: bigint;
  end: bigint;
  rows: { loc: bigint; cells: Record<string, string> }[];
}

/** `readelf --debug-dump=frames-interp`: every FDE with its table of rows (the oracle). */
function readelfFrames(file: string): OracleFde[] {
  const text = execFileSync("readelf", ["-wN", "--debug-dump=frames-interp", file], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  const out: OracleFde[] = [];
  let current: OracleFde | undefined;
  let header: string[] = [];
  for (const line of text.split("\n")) {
    const fde = /^([0-9a-f]+) [0-9a-f]+ [0-9a-f]+ FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.([0-9a-f]+)/.exec(line);
    if (fde !== null) {
      current = {
        offset: Number.parseInt(fde[1]!, 16),
        begin: BigInt(`0x${fde[2]}`),
        end: BigInt(`0x${fde[3]}`),
        rows: [],
      };
      out.push(current);
      header = [];
      continue;
    }
    if (/ CIE /.test(line)) current = undefined;
    if (/^\s+LOC\s+CFA/.test(line)) {
      header = line.trim().split(/\s+/);
      continue;
    }
    const row = /^([0-9a-f]{16}) (.*)$/.exec(line);
    if (row !== null && current !== undefined && header.length > 0) {
      // A register rule prints as `r<n> (<name>)`: one cell, two words.
      const cells = row[2]!
        .trim()
        .replace(/ \(\w+\)/g, "")
        .split(/\s+/);
      const rec: Record<string, string> = {};
      for (let i = 1; i < header.length; i++) rec[header[i]!] = cells[i - 1] ?? "";
      current.rows.push({ loc: BigInt(`0x${row[1]}`), cells: rec });
    }
  }
  return out;
}

/** Our rule, in readelf's notation (`c-8`, `s`, `r6`, `exp`, `u`). */
function cell(rule: RegisterRule | undefined): string {
  if (rule === undefined || rule.kind === "undefined") return "u";
  if (rule.kind === "offset") return `c${rule.offset < 0n ? "" : "+"}${rule.offset}`;
  if (rule.kind === "val-offset") return `v${rule.offset < 0n ? "" : "+"}${rule.offset}`;
  if (rule.kind === "same") return "s";
  if (rule.kind === "register") return `r${rule.register}`;
  return "exp";
}

function ehFrameOf(file: string): EhFrame {
  const elf = readElfFile(file);
  const s = elf.findSection(".eh_frame")!;
  const h = elf.findSection(".eh_frame_hdr");
  return new EhFrame(
    elf.sectionBytes(s),
    s.sh_addr,
    h === undefined ? undefined : { bytes: elf.sectionBytes(h), address: h.sh_addr },
  );
}

const FILES: [string, () => string][] = [
  [
    "gcc -O2",
    () => buildFixture({ compiler: "gcc", sources: ["call-chain.c"], flags: ["-O2"], output: "pie" }),
  ],
  [
    "clang -O0 -fno-omit-frame-pointer",
    () => buildFixture({ compiler: "clang", sources: ["call-chain.c"], flags: ["-O0"], output: "pie" }),
  ],
  [
    "glibc's libc.so.6 (hand-written assembly, remember/restore_state)",
    () => "/lib/x86_64-linux-gnu/libc.so.6",
  ],
];

describe("EhFrame and cfaRowAt against readelf --debug-dump=frames-interp", () => {
  for (const [name, file] of FILES) {
    it(`gives every FDE's range and every row's CFA and saved registers (${name})`, () => {
      const path = file();
      const eh = ehFrameOf(path);
      const oracle = readelfFrames(path);
      const ours = eh.fdes();
      expect(ours.map((f) => [f.offset, f.pcBegin, f.pcEnd])).toEqual(
        oracle.map((f) => [f.offset, f.begin, f.end]),
      );
      const mismatches: string[] = [];
      for (const [i, o] of oracle.entries()) {
        const fde = ours[i]!;
        // Found through .eh_frame_hdr's binary search table at both ends of its range.
        if (eh.findFde(o.begin)?.offset !== o.offset || eh.findFde(o.end - 1n)?.offset !== o.offset)
          mismatches.push(`FDE at ${o.offset.toString(16)} not found by PC`);
        for (const r of o.rows) {
          const row = cfaRowAt(fde, r.loc);
          const cfa = row.cfa.kind === "expression" ? "exp" : `${NAMES[row.cfa.register]}+${row.cfa.offset}`;
          const want: string[] = [`CFA ${r.cells.CFA}`];
          const got: string[] = [`CFA ${cfa}`];
          for (const [col, v] of Object.entries(r.cells)) {
            if (col === "CFA" || COLUMNS[col] === undefined) continue;
            want.push(`${col} ${v}`);
            got.push(`${col} ${cell(row.registers.get(COLUMNS[col]!))}`);
          }
          if (want.join(", ") !== got.join(", "))
            mismatches.push(`${r.loc.toString(16)}: readelf ${want.join(", ")}; ours ${got.join(", ")}`);
        }
      }
      expect(mismatches.slice(0, 10)).toEqual([]);
    });
  }

  it("finds no FDE outside every range", () => {
    const eh = ehFrameOf(FILES[0]![1]());
    expect(eh.findFde(0n)).toBeUndefined();
    expect(eh.findFde(0xffff_ffff_ffffn)).toBeUndefined();
  });
});
