import { describe, expect, it } from "vitest";
import { aarch64 } from "../../arch/index.js";
import { EM, R_AARCH64, R_X86_64 } from "../../formats/elf/constants.js";
import { clearField, fieldValue, relocationShape } from "./relocation-shape.js";

const word = (w: number): Uint8Array =>
  Uint8Array.of(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24);

describe("what a diff masks in an A64 word", () => {
  it("b.eq and b.ne to different offsets: the offset bits cleared, the condition kept", () => {
    const beq = word(0x54000040); // b.eq .+8
    const bne = word(0x540000a1); // b.ne .+20
    const masked = [beq, bne].map((b) => {
      const f = aarch64.decodeFields(b, 0n)[0]!.fields[0]!;
      const copy = Uint8Array.from(b);
      clearField(copy, f.offset, f.size, f.mask);
      return [...copy];
    });
    expect(masked[0]).toEqual([0x00, 0, 0, 0x54]);
    expect(masked[1]).toEqual([0x01, 0, 0, 0x54]);
    // And the same condition to two offsets masks to the same bytes.
    const beq2 = Uint8Array.from(word(0x54000100));
    clearField(beq2, 0, 4, 0x00ffffe0);
    expect([...beq2]).toEqual(masked[0]);
  });

  it("an imm12 reads as its value: add x0, x1, #8", () => {
    expect(fieldValue(0x91002020n, 0x003ffc00)).toBe(8n);
  });

  it("R_AARCH64 relocations fill their field only; data relocations their width", () => {
    expect(relocationShape(EM.EM_AARCH64, R_AARCH64.R_AARCH64_CONDBR19)).toEqual({
      size: 4,
      pcRelative: false,
      mask: 0x00ffffe0,
    });
    expect(relocationShape(EM.EM_AARCH64, R_AARCH64.R_AARCH64_ADR_PREL_PG_HI21).mask).toBe(0x60ffffe0);
    expect(relocationShape(EM.EM_AARCH64, R_AARCH64.R_AARCH64_LDST64_ABS_LO12_NC).mask).toBe(0x003ffc00);
    expect(relocationShape(EM.EM_AARCH64, R_AARCH64.R_AARCH64_ABS64)).toEqual({ size: 8, pcRelative: false });
    expect(relocationShape(EM.EM_X86_64, R_X86_64.R_X86_64_PLT32)).toEqual({ size: 4, pcRelative: true });
    expect(relocationShape(EM.EM_X86_64, R_X86_64.R_X86_64_64)).toEqual({ size: 8, pcRelative: false });
  });
});
