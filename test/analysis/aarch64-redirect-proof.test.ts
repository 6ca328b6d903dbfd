/**
 * Proof that every redirect an AArch64 verdict promises works: for `greet` in each build, every
 * usable site's write plan (and its alternatives, e.g. the literal-load jump in pre-entry NOPs) is
 * written with the arch layer's encoders into a copy of the executable, which then runs under
 * qemu-aarch64 and must print what `greet_replacement` prints, for the direct and the indirect call.
 * The libc-free builds are marked BTI, so qemu maps them as guarded pages: there the indirect call
 * must still land on a landing pad and the literal load's `br x16` on the replacement's `bti c`.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type CheckReport, checkElf, type FunctionReport } from "../../src/analysis/check.js";
import { aarch64 } from "../../src/arch/index.js";
import type { Elf } from "../../src/formats/elf/elf.js";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import { buildFixture, type Compiler, hasCommand } from "../support/fixtures.js";
import { writeRedirectCopy } from "../support/write-redirect.js";

interface Variant {
  readonly label: string;
  readonly compiler: Compiler;
  readonly flags: readonly string[];
  /** Built without libc and marked BTI (guarded pages under qemu). */
  readonly guarded: boolean;
}

const FREESTANDING = ["-ffreestanding", "-nostdlib", "-fno-stack-protector", "-mbranch-protection=standard"];

const VARIANTS: readonly Variant[] = [
  {
    label: "gcc -O2 sled 2",
    compiler: "gcc",
    flags: ["-O2", "-fpatchable-function-entry=2"],
    guarded: false,
  },
  {
    label: "clang -O2 sled 2",
    compiler: "clang",
    flags: ["-O2", "-fpatchable-function-entry=2"],
    guarded: false,
  },
  { label: "gcc -O0, no flags", compiler: "gcc", flags: ["-O0"], guarded: false },
  { label: "clang -O2, no flags", compiler: "clang", flags: ["-O2"], guarded: false },
  {
    label: "gcc -O2 -falign-functions=64, no sled",
    compiler: "gcc",
    flags: ["-O2", "-falign-functions=64"],
    guarded: false,
  },
  ...(["gcc", "clang"] as const).flatMap((compiler) => [
    {
      label: `${compiler} -O2 BTI sled 5,4`,
      compiler,
      flags: ["-O2", ...FREESTANDING, "-fpatchable-function-entry=5,4"],
      guarded: true,
    },
    {
      label: `${compiler} -O2 BTI sled 2`,
      compiler,
      flags: ["-O2", ...FREESTANDING, "-fpatchable-function-entry=2"],
      guarded: true,
    },
    {
      label: `${compiler} -O2 BTI, no sled`,
      compiler,
      flags: ["-O2", ...FREESTANDING, "-falign-functions=64"],
      guarded: true,
    },
  ]),
];

const haveTools = hasCommand("qemu-aarch64") && hasCommand("aarch64-linux-gnu-gcc");
const scratch = mkdtempSync(join(tmpdir(), "graft-a64-proof-"));

function build(v: Variant, extra: readonly string[] = []): string {
  return buildFixture({
    compiler: v.compiler,
    target: "aarch64",
    sources: [v.guarded ? "aarch64/redirect-proof-bti.c" : "aarch64/redirect-proof.c"],
    flags: [...v.flags, ...extra, "-static"],
    output: "exe",
  });
}

function runQemu(file: string): { stdout: string; status: number | null } {
  const r = spawnSync("qemu-aarch64", ["-L", "/usr/aarch64-linux-gnu", file], { encoding: "utf8" });
  return { stdout: r.stdout, status: r.status };
}

describe.runIf(haveTools).each(VARIANTS)("AArch64 redirect proof: $label", (v) => {
  let file: string;
  let elf: Elf;
  let report: CheckReport;
  let greet: FunctionReport;
  let replacement: bigint;
  beforeAll(() => {
    file = build(v);
    elf = readElfFile(file);
    report = checkElf(elf, aarch64);
    greet = report.functions.find((f) => f.name === "greet")!;
    replacement = report.functions.find((f) => f.name === "greet_replacement")!.address;
  });

  it("runs the original unmodified", () => {
    expect(runQemu(file)).toEqual({ stdout: "original 1\noriginal 2\n", status: 0 });
  });

  it("judges greet redirectable and explains how", () => {
    expect(greet.verdict.redirectable, greet.verdict.reasons.join("; ")).toBe(true);
    expect(greet.verdict.redirect.length).toBeGreaterThan(0);
  });

  it("runs the replacement after each promised redirect is written into a copy", () => {
    const plans = greet.sites
      .filter((s) => s.problems.length === 0)
      .flatMap((s) => [s.writes, ...(s.alternatives ?? [])].map((plan, i) => ({ kind: s.kind, i, plan })));
    expect(plans.length).toBeGreaterThan(0);
    for (const { kind, i, plan } of plans) {
      const copy = join(scratch, `${v.label.replace(/\W+/g, "_")}-${kind}-${i}`);
      writeRedirectCopy(elf, aarch64, file, copy, plan, replacement);
      expect({ kind, plan: i, ...runQemu(copy) }).toEqual({
        kind,
        plan: i,
        stdout: "replacement 1\nreplacement 2\n",
        status: 0,
      });
    }
  });

  if (v.guarded) {
    it("is really guarded: an indirect call past greet's landing pad faults (SIGILL)", () => {
      const past = build(v, ["-DGREET_OFFSET=4"]);
      const r = runQemu(past);
      expect(r.stdout).toBe("original 1\n");
      expect(r.status).not.toBe(0);
    });
  }
});

describe.runIf(haveTools)("AArch64 redirect proof coverage", () => {
  it("proves the B shape, the literal-load shape and an overwrite, with and without BTI", () => {
    const seen = new Set<string>();
    for (const v of VARIANTS) {
      const f = checkElf(readElfFile(build(v)), aarch64).functions.find((x) => x.name === "greet")!;
      for (const s of f.sites.filter((x) => x.problems.length === 0)) {
        seen.add(`${s.kind}:${s.writes.length}:${v.guarded}`);
        for (const alt of s.alternatives ?? []) seen.add(`${s.kind}-alt:${alt.length}:${v.guarded}`);
      }
    }
    for (const shape of [
      "sled:1:true",
      "sled:1:false",
      "sled-alt:2:true",
      "overwrite:1:true",
      "overwrite:1:false",
    ])
      expect([...seen]).toContain(shape);
  });
});
