/**
 * GOT relaxation: the fix's loads of the target's statics (`mov x@GOTPCREL(%rip), %r`) become
 * `lea x(%rip), %r` when the code is placed within rel32 reach, so they need no GOT slot, while a
 * call to libc keeps its stub and slot. objdump disassembles the linked image as the oracle.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPatchFile } from "../../../src/live/build-patch-file.js";
import { linkPatch } from "../../../src/live/link-patch.js";
import { readPatchFile } from "../../../src/live/patch-file.js";
import { layoutPatch } from "../../../src/live/patch-image.js";
import { buildFixture, type Compiler } from "../../support/fixtures.js";

const here = dirname(fileURLToPath(import.meta.url));
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "graft-relax-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("GOT loads of the target's variables", () => {
  it.each(["gcc", "clang"] as Compiler[])(
    "become PC-relative lea (%s), and libc's snprintf keeps its GOT slot",
    (compiler) => {
      const exe = buildFixture({
        compiler,
        sources: [join(here, "target.c")],
        flags: ["-O2", "-fpatchable-function-entry=16,14"],
        output: "pie",
      });
      const file = join(dir, `fix-${compiler}.graft`);
      buildPatchFile({ fix: join(here, "fix.c"), target: exe, output: file });
      const elf = readPatchFile(file).elf;
      const defined = new Set(
        elf
          .symbols()
          .filter((s) => s.st_shndx !== 0)
          .map((s) => s.name),
      );
      // The target's statics and offset() will be in reach, libc's snprintf not.
      const near = (n: string): boolean => n !== "snprintf";
      const plain = layoutPatch(elf, (n) => defined.has(n));
      const relaxed = layoutPatch(elf, (n) => defined.has(n), near);
      expect([...plain.gotSlots.keys()].sort()).toEqual(["calls", "label", "offset", "scale", "snprintf"]);
      expect([...plain.stubs.keys()].sort()).toEqual(["offset", "snprintf"]);
      expect([...(relaxed.relaxed ?? [])].sort()).toEqual(["calls", "label", "scale"]);
      expect([...relaxed.gotSlots.keys()]).toEqual(["snprintf"]);
      expect([...relaxed.stubs.keys()]).toEqual(["snprintf"]);

      // The target's statics a few pages above the code, libc far away (through its slot).
      const base = 0x555555000000n;
      const at: Record<string, bigint> = {
        scale: base + 0x10010n,
        calls: base + 0x10020n,
        label: base + 0x10040n,
        offset: base + 0x9000n,
        snprintf: 0x7ffff7e00000n,
      };
      const linked = linkPatch(elf, relaxed, base, (n) => at[n]);
      const text = relaxed.segments.find((s) => s.kind === "text")!;
      const raw = join(dir, `text-${compiler}.bin`);
      writeFileSync(raw, linked.image.subarray(0, Number(text.size)));
      const asm = execFileSync(
        "objdump",
        ["-D", "-b", "binary", "-m", "i386:x86-64", `--adjust-vma=0x${base.toString(16)}`, raw],
        { encoding: "utf8" },
      );
      expect(asm, "offset called directly").toMatch(new RegExp(`call\\s+0x${at.offset!.toString(16)}\\b`));
      for (const name of ["scale", "calls", "label"]) {
        expect(asm, `${name} through lea`).toMatch(
          new RegExp(`lea\\s+0x[0-9a-f]+\\(%rip\\),%r\\w+\\s+# 0x${at[name]!.toString(16)}\\b`),
        );
      }
      // No GOT load left but snprintf's (whose slot holds libc's address).
      const loads = [...asm.matchAll(/mov\s+0x[0-9a-f]+\(%rip\),%r\w+\s+# 0x([0-9a-f]+)/g)].map((m) =>
        BigInt(`0x${m[1]}`),
      );
      for (const slot of loads) expect(slot).toBe(base + relaxed.gotSlots.get("snprintf")!);
    },
  );
});
