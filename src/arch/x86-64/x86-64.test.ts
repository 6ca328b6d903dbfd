import { describe, expect, test } from "vitest";
import { archForMachine, x86_64 } from "../index.js";

describe("x86_64", () => {
  test("is the arch for EM_X86_64 and no other machine", () => {
    expect(archForMachine(62)).toBe(x86_64);
    expect(archForMachine(183)?.name).toBe("aarch64");
    expect(archForMachine(0)).toBeUndefined();
  });

  test("its jump lengths are the lengths of the jumps it encodes", () => {
    expect(x86_64.encodeShortJump(0n, 0n)).toHaveLength(x86_64.shortJumpLength);
    expect(x86_64.encodeNearJump(0n, 0n)).toHaveLength(x86_64.nearJumpLength);
    expect(x86_64.encodeAbsoluteJump(0n)).toHaveLength(x86_64.absoluteJumpLength);
  });

  test("its trap byte decodes as a trap", () => {
    expect(x86_64.decodeOne(Uint8Array.of(x86_64.trapByte!), 0n)?.kind).toBe("trap");
  });
});
