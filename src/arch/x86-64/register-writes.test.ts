import { describe, expect, test } from "vitest";
import { compile, hasTool, readBytes, section } from "../../../test/support/objdump-oracle.js";
import { CALLER_SAVED, registerWrites } from "./register-writes.js";

const haveTools = hasTool("gcc") && hasTool("readelf");

/** registerWrites over the assembled `body`, at address 0. */
function writes(body: string) {
  const obj = compile("rw.s", `.text\n${body}\n`, []);
  const text = section(obj, ".text");
  return registerWrites(readBytes(obj, text.offset, text.size), 0n);
}

describe.skipIf(!haveTools)("registerWrites", () => {
  test.each([
    ["mov $1, %eax\nmov %rbx, %rcx\nret", ["rax", "rcx"]],
    ["mov $1, %al\nsete %dl\nret", ["rax", "rdx"]], // partial writes clobber too
    ["push %rbx\nmov $1, %ebx\npop %rbx\nret", []], // rbx is callee-saved
    ["add %rdi, %rsi\nxchg %r8, %r9\nret", ["rsi", "r8", "r9"]],
    ["pxor %xmm3, %xmm3\nvmovdqa %ymm1, %ymm12\nret", ["xmm3", "xmm12"]],
    ["fldz\nfstp %st(0)\nret", ["st"]],
    ["mov $60, %eax\nsyscall", ["rax", "rcx", "r11"]],
    ["cmp %rdi, %rsi\nret", []],
  ])("%s", (body, clobbered) => {
    expect(writes(body)).toEqual({ clobbered, callees: [], opaque: false });
  });

  test("vzeroupper changes every vector register; xsave-style instructions count as changing everything", () => {
    expect(writes("vzeroupper\nret").clobbered).toEqual(Array.from({ length: 16 }, (_, i) => `xmm${i}`));
    expect(writes("xrstor (%rdi)\nret").clobbered).toEqual(CALLER_SAVED);
  });

  test("direct calls and jumps out of the code are callees; jumps inside are not; indirect ones make it opaque", () => {
    // Label 3 is the last byte; the function handed over ends before the 16 bytes of fill.
    const obj = compile("rw.s", ".text\n1: call 3f\njne 1b\njmp 3f\nret\n.fill 16, 1, 0x90\n3: ret\n", []);
    const text = section(obj, ".text");
    const end = BigInt(text.size - 1);
    const w = registerWrites(readBytes(obj, text.offset, text.size - 17), 0n);
    expect(w).toMatchObject({ callees: [end, end], opaque: false });
    expect(writes("call *%rax\nret").opaque).toBe(true);
    expect(writes("jmp *(%rdi,%rsi,8)").opaque).toBe(true);
  });
});
