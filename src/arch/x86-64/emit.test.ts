/** Every instruction form of the emitter, disassembled by objdump (the oracle). */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { traceLayout } from "../trace-layout.js";
import { R, X86Emitter } from "./emit.js";
import { generateTraceRuntime } from "./trace-runtime.js";

function objdump(code: Uint8Array, base = 0x1000n): string[] {
  const dir = mkdtempSync(join(tmpdir(), "graft-emit-"));
  const file = join(dir, "code.bin");
  writeFileSync(file, code);
  const text = execFileSync(
    "objdump",
    ["-D", "-b", "binary", "-mi386:x86-64", `--adjust-vma=0x${base.toString(16)}`, file],
    { encoding: "utf8" },
  );
  return text
    .split("\n")
    .filter((l) => /^\s+[0-9a-f]+:\t/.test(l))
    .map((l) => l.split("\t")[2]?.replace(/\s+/g, " ").trim() ?? "")
    .filter((l) => l !== "");
}

describe("X86Emitter", () => {
  it("encodes each form as objdump reads it", () => {
    const e = new X86Emitter();
    e.push(R.r11);
    e.pop(R.rax);
    e.pushImm(7);
    e.load(R.r9, R.rsp, 0x58);
    e.store(R.r13, 0, R.rcx, 32);
    e.lea(R.rax, R.r12, -8);
    e.movImm64(R.r11, 0x0300000000000000n);
    e.movImm32(R.r10, 1);
    e.loadFs32(R.r8, 0x2d0);
    e.aluImm("and", R.r9, 0xfffff);
    e.aluLoad("sub", R.rax, R.rdi, 0x30);
    e.cmpMem(R.r9, 0, R.r10);
    e.testMemImm(R.r9, 0x14, 1);
    e.incMem(R.rax, 0x18, true);
    e.shl(R.rdx, 32);
    e.bts(R.r11, 58);
    e.lockCmpxchg32(R.rdi, 0, R.r8);
    e.xaddMem(R.rdi, 8, R.rsi);
    e.rdtsc();
    e.aluMemImm32("or", R.rax, 0x24, 2);
    e.aluMemImm32("and", R.r9, 0x24, ~2);
    e.addMemImm8(R.rsp, 0x48, 15);
    e.jmpReg(R.r11);
    e.retPop(8);
    expect(objdump(e.finish())).toEqual([
      "push %r11",
      "pop %rax",
      "push $0x7",
      "mov 0x58(%rsp),%r9",
      "mov %ecx,0x0(%r13)",
      "lea -0x8(%r12),%rax",
      "movabs $0x300000000000000,%r11",
      "mov $0x1,%r10d",
      "mov %fs:0x2d0,%r8d",
      "and $0xfffff,%r9",
      "sub 0x30(%rdi),%rax",
      "cmp %r10,(%r9)",
      "testl $0x1,0x14(%r9)",
      "lock incq 0x18(%rax)",
      "shl $0x20,%rdx",
      "bts $0x3a,%r11",
      "lock cmpxchg %r8d,(%rdi)",
      "xadd %rsi,0x8(%rdi)",
      "rdtsc",
      "orl $0x2,0x24(%rax)",
      "andl $0xfffffffd,0x24(%r9)",
      "addq $0xf,0x48(%rsp)",
      "jmp *%r11",
      "ret $0x8",
    ]);
  });

  it("generates a runtime objdump decodes whole, with stubs that call through to each function", () => {
    const r = generateTraceRuntime({
      codeBase: 0x10000n,
      dataBase: 0x7f0000000000n,
      layout: traceLayout(64, 1 << 20),
      tidOffset: 0x2d0,
      maxDepth: 100,
      functions: [
        { fid: 0, resume: 0x20005n, args: false },
        { fid: 1, resume: 0x20105n, args: true, displaced: Uint8Array.of(0x55, 0x48, 0x89, 0xe5) },
      ],
      unwindHooks: [
        { kind: "throw", target: 0x30000n },
        { kind: "catch", target: 0x30100n },
      ],
    });
    const lines = objdump(r.code.subarray(0, r.returnPointTableOffset), 0x10000n);
    // The table after the code: each function's return point, by function id.
    const table = new DataView(r.code.buffer, r.code.byteOffset + r.returnPointTableOffset);
    expect([0, 1].map((fid) => table.getBigUint64(fid * 8, true))).toEqual(
      r.returnPoints.map((p) => 0x10000n + BigInt(p)),
    );
    // Each unwind hook: the runtime's part, then on to the real function with the arguments untouched.
    const hookLines = (i: number) =>
      objdump(r.code.subarray(r.hookOffsets[i]!, r.hookOffsets[i]! + 18), 0x10000n);
    expect(hookLines(0).slice(1)).toEqual(["movabs $0x30000,%r11", "jmp *%r11"]);
    expect(hookLines(1).slice(1)).toEqual(["movabs $0x30100,%r11", "jmp *%r11"]);
    expect(hookLines(0)[0]).not.toBe(hookLines(1)[0]);
    expect(lines.filter((l) => l.includes("(bad)"))).toEqual([]);
    const at = (offset: number) => `0x${(0x10000 + offset).toString(16)}`;
    const exit = `jmp ${at(r.exitOffset)}`;
    // Stub 0 (sled site): the function is called with the caller's return-address slot as its own.
    const stub0 = lines.slice(0, lines.lastIndexOf("push $0x0") + 6);
    expect(stub0.slice(-6)).toEqual([
      "push $0x0",
      `call ${at(r.entryOffset)}`,
      "lea 0x8(%rsp),%rsp",
      "call 0x20005",
      exit,
      "jmp 0x20005",
    ]);
    // Stub 1 (displaced instructions): called through a body that runs them, then goes on.
    const body = at(r.returnPoints[1]! + 5);
    const stub1 = lines.lastIndexOf("push $0x1");
    expect(lines.slice(stub1, stub1 + 8)).toEqual([
      "push $0x1",
      expect.stringMatching(/^call 0x1[0-9a-f]{4}$/),
      "lea 0x8(%rsp),%rsp",
      `call ${body}`,
      exit,
      "push %rbp",
      "mov %rsp,%rbp",
      "jmp 0x20105",
    ]);
    // A call the runtime does not follow returns to the body, 15 bytes past the entry call.
    expect(lines).toContain("addq $0xf,0x48(%rsp)");
    expect(r.returnPoints.map((p, i) => p - r.stubs[i]!)).toEqual([20, 20]);
  });
});
