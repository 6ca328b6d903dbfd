import { describe, expect, it } from "vitest";
import { decodeRegisters, encodeRegisters, USER_REGS_FIELDS, USER_REGS_SIZE } from "./registers.js";

describe("registers", () => {
  it("has the 27 fields of struct user_regs_struct, 216 bytes", () => {
    expect(USER_REGS_FIELDS).toHaveLength(27);
    expect(USER_REGS_SIZE).toBe(216);
    expect(USER_REGS_FIELDS.indexOf("orig_rax")).toBe(15);
    expect(USER_REGS_FIELDS.indexOf("rip")).toBe(16);
  });

  it("round-trips through the kernel layout, negative values as two's complement", () => {
    const words = BigUint64Array.from({ length: 27 }, (_, i) => BigInt(i) * 0x1111n);
    const regs = decodeRegisters(words);
    expect(regs.rip).toBe(16n * 0x1111n);
    const changed = encodeRegisters({ ...regs, rax: -512n });
    expect(changed[10]).toBe((1n << 64n) - 512n);
    expect(BigInt.asIntN(64, decodeRegisters(changed).rax)).toBe(-512n);
  });
});
