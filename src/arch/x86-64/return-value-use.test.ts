import { describe, expect, test } from "vitest";
import {
  compile,
  hasTool,
  objdump,
  readBytes,
  section,
  sections,
} from "../../../test/support/objdump-oracle.js";
import { decode } from "./decode.js";
import { returnValueUse } from "./return-value-use.js";

const haveTools = hasTool("gcc") && hasTool("objdump") && hasTool("readelf");

/**
 * Assemble `body` after a `call f` at the start of `.text` (f and g outside it, so jumps to them are
 * tail calls) and ask what the code after that call does with its result.
 */
function after(body: string) {
  const obj = compile("rv.s", `.text\n.globl f, g\ncall f\n${body}\n.fill 16, 1, 0xcc\n`, []);
  const text = section(obj, ".text");
  const code = readBytes(obj, text.offset, text.size);
  return returnValueUse(code, 0n, 5n);
}

describe.skipIf(!haveTools)("returnValueUse on hand-written code", () => {
  test.each([
    ["mov %eax, %ebx", "reads %rax"],
    ["test %al, %al\nje 1f\n1: ret", "reads %rax"],
    ["mov $0, %al\nmov %eax, %ebx", "reads %rax"], // a byte write keeps the callee's upper bits
    ["movsd %xmm0, 8(%rsp)", "reads %xmm0"],
    ["fstpt 8(%rsp)", "reads %st"],
    ["mov %rdx, %rbx\nxor %eax, %eax\nret", undefined], // -fipa-ra keeps caller values in %rdx across calls
    ["add $8, %rsp\nret", "returns"],
    ["jmp 1f\nnop\n1: lea 1(%rax), %ecx", "reads %rax"],
    ["cmp $3, %ebx\nje 1f\nxor %eax, %eax\nret\n1: mov %eax, %ecx\nret", "reads %rax"],
    ["jmp *%rbx", "indirect jump"],
    ["ud2", undefined],
    ["xor %eax, %eax\nret", undefined],
    ["mov %ebx, %eax\nmov %eax, %ecx\nret", undefined], // a 32-bit write replaces all of %rax
    ["mov $1, %edi\ncall g\nmov %eax, %ebx", undefined],
    ["add $1, %ebx\njmp g", undefined], // tail call: %rax is no argument
    ["1: add $1, %ebx\ncmp $9, %ebx\njne 1b\nsub %eax, %eax\nret", undefined],
  ])("after `call f`: %s", (body, reason) => {
    const use = after(body);
    expect(use.used, use.reason).toBe(reason !== undefined);
    if (reason !== undefined) expect(use.reason).toContain(reason);
  });

  test("a loop ends its path where it closes; a path longer than the budget counts as used", () => {
    const use = after("1: add $1, %ebx\njmp 1b");
    // The loop revisits the same instruction with the same live registers: that path simply ends.
    expect(use.used).toBe(false);
    const long = after(Array.from({ length: 80 }, () => "add $1, %ebx").join("\n"));
    expect(long).toMatchObject({ used: true });
    expect(long.reason).toContain("64 instructions");
  });

  test("running off the end of the caller (a call that does not return) counts as used", () => {
    const obj = compile("rv.s", ".text\ncall f\nadd $1, %ebx\n", []);
    const text = section(obj, ".text");
    const use = returnValueUse(readBytes(obj, text.offset, text.size), 0n, 5n);
    expect(use).toMatchObject({ used: true });
    expect(use.reason).toContain("off the end");
  });
});

const SOURCE = `
extern int g(int);
extern void log_it(int);
long counter;
int used_arith(int x) { return g(x) * 2 + 1; }
int unused_overwritten(int x) { log_it(x); return x * 3; }
void unused_then_call(int x) { log_it(x); log_it(x + 1); }
void returned_void(int x) { log_it(x); __asm__ volatile(""); } /* the asm keeps it from being a tail call */
`;

describe.skipIf(!haveTools)("returnValueUse on compiled C", () => {
  const cells = ["gcc", "clang"].filter(hasTool).flatMap((cc) => ["-O0", "-O2"].map((o) => [cc, o] as const));
  test.each(cells)("%s %s: the first call of each function is judged as its name says", (cc, opt) => {
    const obj = compile("rv.c", SOURCE, [opt, "-ffunction-sections", "-fno-asynchronous-unwind-tables"], cc);
    const judged: Record<string, string> = {};
    for (const s of sections(obj).filter((x) => x.name.startsWith(".text.") && x.size > 0)) {
      const name = s.name.slice(".text.".length);
      const code = readBytes(obj, s.offset, s.size);
      const call = decode(code, 0n).find((i) => i.kind === "call");
      expect(
        call,
        `${name}: objdump shows ${objdump(obj, { section: s.name })
          .map((l) => l.text)
          .join("; ")}`,
      ).toBeDefined();
      const use = returnValueUse(code, 0n, call!.address + BigInt(call!.length));
      judged[name] = use.used ? (use.reason.includes("returns") ? "returned" : "used") : "unused";
    }
    expect(judged).toEqual({
      used_arith: "used",
      unused_overwritten: "unused",
      unused_then_call: "unused",
      // The bytes cannot say the caller is void: %rax reaches its ret untouched, so maybe returned;
      // except after clang -O2, whose `push %rax` … `pop %rax` (stack alignment) discards the result.
      returned_void: cc === "clang" && opt === "-O2" ? "unused" : "returned",
    });
  });
});
