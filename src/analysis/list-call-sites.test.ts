import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { buildFixture, type Compiler, type OutputKind } from "../../test/support/fixtures.js";
import { compile, hasTool, objdump, objdumpBranch, objdumpKind } from "../../test/support/objdump-oracle.js";
import { x86_64 } from "../arch/index.js";
import { hex } from "../core/hex.js";
import { readElfFile } from "../formats/elf/elf-file.js";
import { type CallSite, listCallSites } from "./list-call-sites.js";

const haveTools = hasTool("gcc") && hasTool("clang") && hasTool("objdump") && hasTool("readelf");

interface Cell {
  readonly compiler: Compiler;
  readonly flags: readonly string[];
  readonly output: OutputKind;
}

const CELLS: readonly Cell[] = [
  ...(["gcc", "clang"] as const).flatMap((compiler) =>
    ["-O0", "-O2"].flatMap((opt) =>
      (["exe", "pie"] as const).map((output) => ({ compiler, flags: [opt], output })),
    ),
  ),
  { compiler: "gcc", flags: ["-O2", "-fno-plt"], output: "pie" },
  { compiler: "gcc", flags: ["-O2", "-fcf-protection=full"], output: "pie" },
  { compiler: "gcc", flags: ["-O2", "-pg", "-mfentry"], output: "pie" },
  { compiler: "gcc", flags: ["-O2", "-pg", "-mfentry"], output: "exe" },
  { compiler: "clang", flags: ["-O2", "-pg", "-mfentry"], output: "pie" },
  { compiler: "gcc", flags: ["-O2", "-pg", "-mfentry", "-mnop-mcount", "-mrecord-mcount"], output: "exe" },
];

const label = (c: Cell) => `${c.compiler} ${c.flags.join(" ")} ${c.output}`;

/** What one site says, in the terms objdump can be read back in. */
const facts = (s: CallSite) => ({
  address: s.address,
  length: s.length,
  target: s.target,
  name: s.targetName,
});

/** The 8-byte words of a section, from `readelf -x` (the oracle for __mcount_loc). */
function words(file: string, name: string): bigint[] {
  const dump = execFileSync("readelf", ["-x", name, file], { encoding: "utf8" });
  const hexes = dump
    .split("\n")
    .map((l) => /^\s+0x[0-9a-f]+ ((?:[0-9a-f]{8} ?){1,4})/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined)
    .join("")
    .replace(/ /g, "");
  const out: bigint[] = [];
  for (let i = 0; i + 16 <= hexes.length; i += 16)
    out.push(
      BigInt(
        `0x${Buffer.from(hexes.slice(i, i + 16), "hex")
          .reverse()
          .toString("hex")}`,
      ),
    );
  return out;
}

describe.skipIf(!haveTools)("listCallSites against objdump", () => {
  it.each(CELLS.map((c) => [label(c), c] as const))(
    "%s: every call objdump shows is listed, with its target",
    (_, cell) => {
      const file = buildFixture({
        compiler: cell.compiler,
        sources: ["calls.c"],
        flags: cell.flags,
        output: cell.output,
      });
      const report = listCallSites(readElfFile(file), x86_64);
      const lines = objdump(file);

      // Direct calls: address, length, target and objdump's `<name>` (`puts@plt`, `leaf`, `f+0x10`).
      const direct = lines
        .filter((l) => objdumpKind(l) === "call")
        .map((l) => ({
          address: l.address,
          length: l.bytes.length,
          target: objdumpBranch(l)!.target,
          name: /<([^>]+)>$/.exec(l.text)?.[1],
        }));
      expect(direct.length).toBeGreaterThan(5);
      expect(report.sites.filter((s) => s.form === "direct").map(facts)).toEqual(direct);

      // Calls through a GOT slot: objdump resolves the slot in a comment, `# 3fc8 <puts@GLIBC_2.2.5>`.
      const got = lines
        .map((l) => ({ l, m: /^call\s+\*0x[0-9a-f]+\(%rip\)\s+# ([0-9a-f]+) <([^>@]+)/.exec(l.text) }))
        .filter((x) => x.m !== null)
        .map(({ l, m }) => ({
          address: l.address,
          length: l.bytes.length,
          slot: BigInt(`0x${m![1]}`),
          name: m![2],
        }));
      expect(
        report.sites
          .filter((s) => s.form === "got")
          .map((s) => ({
            address: s.address,
            length: s.length,
            slot: s.slot,
            name: s.targetName?.replace(/@.*$/, ""),
          })),
      ).toEqual(got);

      // fentry: a -mnop-mcount NOP is listed exactly where __mcount_loc records one.
      const nops = report.sites.filter((s) => s.form === "nop").map((s) => s.address);
      const byAddress = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
      expect(nops.sort(byAddress)).toEqual(
        cell.flags.includes("-mnop-mcount") ? words(file, "__mcount_loc").sort(byAddress) : [],
      );
      if (cell.flags.includes("-mfentry")) {
        const leaf = report.sites.find((s) => s.caller === "leaf" && s.fentry);
        expect(leaf?.form).toBe(
          cell.flags.includes("-mnop-mcount")
            ? "nop"
            : cell.compiler === "gcc" && cell.output === "pie"
              ? "got"
              : "direct",
        );
        expect(leaf?.resultUse).toBeUndefined();
      }
    },
  );

  it.each(CELLS.filter((c) => !c.flags.includes("-O0")).map((c) => [label(c), c] as const))(
    "%s: the fixture's calls are judged as its comments say",
    (_, cell) => {
      const file = buildFixture({
        compiler: cell.compiler,
        sources: ["calls.c"],
        flags: cell.flags,
        output: cell.output,
      });
      const sites = listCallSites(readElfFile(file), x86_64).sites.filter((s) => !s.fentry);
      const call = (caller: string, callee: string) => {
        const found = sites.filter(
          (s) => s.caller === caller && s.targetName?.replace(/@.*$/, "") === callee,
        );
        expect(found.length, `${caller} → ${callee}`).toBeGreaterThan(0);
        return found;
      };
      for (const s of [...call("in_loop", "log_value"), ...call("ignore_result", "leaf")]) {
        expect(s.rewritable, s.problems.join("; ")).toBe(true);
        expect(s.resultUse?.used, s.resultUse?.reason).toBe(false);
      }
      for (const s of [...call("use_result", "leaf"), ...call("in_loop", "leaf")]) {
        expect(s.rewritable).toBe(true);
        expect(s.resultUse?.used).toBe(true);
      }
      // gcc moves the abort() call into fail_hard.cold; clang keeps it at the end of fail_hard.
      const abort = sites.filter(
        (s) => s.caller.startsWith("fail_hard") && s.targetName?.startsWith("abort"),
      );
      expect(abort).toHaveLength(1);
      expect(abort[0]!.rewritable).toBe(false);
      expect(abort[0]!.problems.join()).toContain("does not return");
    },
  );

  it("--to and --from select by callee (name, name@plt, alias) and caller glob", () => {
    const file = buildFixture({ compiler: "gcc", sources: ["calls.c"], flags: ["-O2"], output: "pie" });
    const elf = readElfFile(file);
    const all = listCallSites(elf, x86_64).sites;
    const toLeaf = listCallSites(elf, x86_64, { to: "leaf" }).sites;
    expect(toLeaf.map((s) => s.address)).toEqual(
      all.filter((s) => s.targetName === "leaf").map((s) => s.address),
    );
    expect(toLeaf.length).toBeGreaterThanOrEqual(3);
    const both = listCallSites(elf, x86_64, { to: "leaf", from: "in_*" }).sites;
    expect(both.map((s) => s.caller)).toEqual(["in_loop"]);
    expect(listCallSites(elf, x86_64, { to: "printf" }).sites.map((s) => s.targetName)).toEqual([
      "printf@plt",
    ]);
    expect(listCallSites(elf, x86_64, { to: "printf@plt" }).sites).toHaveLength(1);
    expect(listCallSites(elf, x86_64, { to: "no_such_function" }).sites).toEqual([]);
  });
});

describe.skipIf(!haveTools)("listCallSites on hand-written code", () => {
  it("refuses a call that a jump lands inside, and names the jump", () => {
    // `jmp f+2` enters the call's displacement: after a rewrite it would run half an instruction.
    const obj = compile(
      "into.s",
      [
        ".text",
        ".globl f, g",
        ".type f, @function",
        "f: call g",
        "   test %eax, %eax",
        "   jne f+2",
        "   ret",
        ".size f, .-f",
        ".type g, @function",
        "g: mov $1, %eax",
        "   ret",
        ".size g, .-g",
        "",
      ].join("\n"),
      [],
    );
    const [site] = listCallSites(readElfFile(obj), x86_64, { to: "g" }).sites;
    // A .o's sections are laid out from 0x1000 up, as a linker would (Elf.sectionAddress).
    const f = site!.callerAddress;
    expect(site).toMatchObject({
      caller: "f",
      address: f,
      length: 5,
      target: f + 10n,
      targetName: "g",
      rewritable: false,
    });
    expect(site!.problems).toEqual([`a cond-jump at ${hex(f + 7n)} lands inside the call (${hex(f + 2n)})`]);
  });
});
