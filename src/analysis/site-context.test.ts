import { describe, expect, it } from "vitest";
import { x86_64 } from "../arch/index.js";
import { freePaddingBeforeEntry } from "./site-context.js";

describe("freePaddingBeforeEntry", () => {
  it("counts NOP and int3 fill at the end of the padding", () => {
    // ret; int3 × 3; nopw 0x0(%rax,%rax,1) (6 bytes)
    expect(
      freePaddingBeforeEntry(
        x86_64,
        Uint8Array.from([0xc3, 0xcc, 0xcc, 0xcc, 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00]),
      ),
    ).toBe(9);
  });

  it("does not take the 0xcc displacement of `jmp .-0x32` (eb cc) for int3 fill", () => {
    // jmp .-0x32; nopw 0x0(%rax,%rax,1) (9 bytes): libc's _IO_seekpos is preceded by exactly this.
    const padding = Uint8Array.from([0xeb, 0xcc, 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00]);
    expect(freePaddingBeforeEntry(x86_64, padding)).toBe(9);
  });

  it("does not take the 0x90 bytes of an immediate for NOPs", () => {
    // mov $0x90909090,%eax: b8 90 90 90 90
    expect(freePaddingBeforeEntry(x86_64, Uint8Array.from([0xb8, 0x90, 0x90, 0x90, 0x90]))).toBe(0);
  });

  it("starts at the given instruction boundary inside the padding", () => {
    // two bytes of unknown code, then `ret; nop; nop`: from offset 2 only the two NOPs are free.
    const padding = Uint8Array.from([0x0f, 0x0b, 0xc3, 0x90, 0x90]);
    expect(freePaddingBeforeEntry(x86_64, padding, 2)).toBe(2);
    expect(freePaddingBeforeEntry(x86_64, padding, 5)).toBe(0);
  });
});
