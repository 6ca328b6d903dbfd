import { describe, expect, test } from "vitest";
import { buildFixture, hasCommand } from "../../../test/support/fixtures.js";
import { readElfFile } from "../../formats/elf/elf-file.js";
import { decodeOne } from "./decode.js";
import { decodeFields } from "./decode-fields.js";

const have = hasCommand("aarch64-linux-gnu-gcc");

/** The .text of sites.c cross-compiled (a linked executable: real offsets and ADRP pairs). */
function text(): { bytes: Uint8Array; address: bigint } {
  const elf = readElfFile(
    buildFixture({ compiler: "gcc", target: "aarch64", sources: ["sites.c"], flags: ["-O2"], output: "exe" }),
  );
  const s = elf.getSection(elf.sections.findIndex((x) => x.name === ".text"));
  return { bytes: elf.sectionBytes(s), address: s.sh_addr };
}

const word = (b: Uint8Array, o: number): number =>
  (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const bytesOf = (w: number): Uint8Array =>
  Uint8Array.of(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24);

describe.runIf(have)("aarch64 decodeFields", () => {
  test("a branch's field is exactly its offset: cleared, the same branch (condition, register, bit kept) goes to itself", () => {
    const { bytes, address } = text();
    let branches = 0;
    for (const ins of decodeFields(bytes, address)) {
      const at = address + BigInt(ins.offset);
      const w = word(bytes, ins.offset);
      const isBranch = ins.kind === "jump" || ins.kind === "call" || ins.kind === "cond-jump";
      expect({ at, branchField: ins.fields.some((f) => f.role === "branch") }).toEqual({
        at,
        branchField: isBranch,
      });
      if (!isBranch) continue;
      branches++;
      const cleared = (w & ~ins.fields[0]!.mask) >>> 0;
      const again = decodeOne(bytesOf(cleared), at)!;
      expect({ at, kind: again.kind, target: again.target, mnemonic: again.text.split("\t")[0] }).toEqual({
        at,
        kind: ins.kind,
        target: at,
        mnemonic: decodeOne(bytes.subarray(ins.offset), at)!.text.split("\t")[0],
      });
    }
    expect(branches).toBeGreaterThan(20);
  });

  test("ADR/ADRP/literal fields and the low half of an ADRP pair are pc-relative, with the pair's address", () => {
    const { bytes, address } = text();
    const all = decodeFields(bytes, address);
    let pairs = 0;
    for (const [i, ins] of all.entries()) {
      const pc = ins.fields.find((f) => f.role === "pc-relative");
      if (pc === undefined) continue;
      const w = word(bytes, ins.offset);
      if ((w & 0x9f000000) >>> 0 === 0x90000000) {
        // Cleared, an ADRP points at its own page.
        const at = address + BigInt(ins.offset);
        expect(decodeOne(bytesOf((w & ~pc.mask) >>> 0), at)!.memoryAddress).toBe(at & ~0xfffn);
        // A page some later instruction completes is named there, not here.
        const page = decodeOne(bytesOf(w), at)!.memoryAddress!;
        const completed = all
          .slice(i + 1)
          .some(
            (x) =>
              x.memoryAddress !== undefined && (x.memoryAddress & ~0xfffn) === page && x.kind === "other",
          );
        expect(ins.memoryAddress).toBe(completed ? undefined : page);
      } else if ((w & 0x1f000000) !== 0x10000000 && (w & 0x3b000000) !== 0x18000000) {
        pairs++;
        const adrp = all
          .slice(0, i)
          .reverse()
          .find((x) => (word(bytes, x.offset) & 0x9f000000) >>> 0 === 0x90000000)!;
        expect(ins.memoryAddress).toBeDefined();
        expect(ins.memoryAddress! & ~0xfffn).toBe(
          decodeOne(bytesOf(word(bytes, adrp.offset)), address + BigInt(adrp.offset))!.memoryAddress,
        );
      }
    }
    expect(pairs).toBeGreaterThan(5);
  });

  test("plain constants are immediates (mov, add/sub, unsigned-offset loads without ADRP)", () => {
    const fields = (w: number) => decodeFields(bytesOf(w), 0x1000n)[0]!.fields;
    expect(fields(0x52800040)).toEqual([{ offset: 0, size: 4, mask: 0x001fffe0, role: "immediate" }]); // mov w0, #2
    expect(fields(0x91004000)).toEqual([{ offset: 0, size: 4, mask: 0x003ffc00, role: "immediate" }]); // add x0, x0, #0x10
    expect(fields(0xf9400bf3)).toEqual([{ offset: 0, size: 4, mask: 0x003ffc00, role: "immediate" }]); // ldr x19, [sp, #16]
    expect(fields(0xd503201f)).toEqual([]); // nop
  });
});
