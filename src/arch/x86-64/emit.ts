/**
 * A small x86-64 machine-code writer for the code graft generates itself (the tracing runtime):
 * exactly the instruction forms that code needs, encoded by hand from the Intel SDM Vol. 2
 * tables, with labels and rel32 fixups. Every form is checked against objdump in emit.test.ts.
 */

/** General registers by their encoding number. */
export const R = {
  rax: 0,
  rcx: 1,
  rdx: 2,
  rbx: 3,
  rsp: 4,
  rbp: 5,
  rsi: 6,
  rdi: 7,
  r8: 8,
  r9: 9,
  r10: 10,
  r11: 11,
  r12: 12,
  r13: 13,
  r14: 14,
  r15: 15,
} as const;
export type Reg = (typeof R)[keyof typeof R];

/** Condition codes for jcc (the low nibble of 0f 8x / 7x). */
export const CC = { e: 0x4, ne: 0x5, a: 0x7, ae: 0x3, b: 0x2, be: 0x6 } as const;

/** ALU operations by their /digit (81 /n) and r/m,reg opcode (01, 09, 21, 29, 31, 39). */
const ALU = { add: 0, or: 1, and: 4, sub: 5, xor: 6, cmp: 7 } as const;
export type AluOp = keyof typeof ALU;

export class X86Emitter {
  readonly bytes: number[] = [];
  readonly #labels = new Map<string, number>();
  readonly #fixups: { at: number; label: string }[] = [];

  /** Offset of the next byte. */
  get here(): number {
    return this.bytes.length;
  }

  bind(label: string): void {
    if (this.#labels.has(label)) throw new Error(`label ${label} bound twice`);
    this.#labels.set(label, this.here);
  }

  offsetOf(label: string): number {
    const at = this.#labels.get(label);
    if (at === undefined) throw new Error(`label ${label} not bound`);
    return at;
  }

  /** Resolve every rel32 fixup; returns the code. */
  finish(): Uint8Array {
    for (const f of this.#fixups) {
      const rel = this.offsetOf(f.label) - (f.at + 4);
      this.#put32(f.at, rel);
    }
    return Uint8Array.from(this.bytes);
  }

  #put32(at: number, v: number): void {
    for (let i = 0; i < 4; i++) this.bytes[at + i] = (v >>> (8 * i)) & 0xff;
  }

  #imm32(v: number): void {
    if (v < -0x80000000 || v > 0x7fffffff) throw new Error(`immediate ${v} does not fit 32 bits`);
    const at = this.here;
    this.bytes.push(0, 0, 0, 0);
    this.#put32(at, v | 0);
  }

  #rel32(label: string): void {
    this.#fixups.push({ at: this.here, label });
    this.bytes.push(0, 0, 0, 0);
  }

  #rex(w: boolean, reg: number, base: number, force = false): void {
    const rex = 0x40 | (w ? 8 : 0) | ((reg >> 3) << 2) | (base >> 3);
    if (rex !== 0x40 || force) this.bytes.push(rex);
  }

  /** ModRM (+SIB, +disp) for `disp(base)` with `reg` in the reg field. */
  #mem(reg: number, base: number, disp: number): void {
    const b = base & 7;
    const mod = disp === 0 && b !== 5 ? 0 : disp >= -128 && disp <= 127 ? 1 : 2;
    this.bytes.push((mod << 6) | ((reg & 7) << 3) | (b === 4 ? 4 : b));
    if (b === 4) this.bytes.push(0x24);
    if (mod === 1) this.bytes.push(disp & 0xff);
    if (mod === 2) this.#imm32(disp);
  }

  raw(...bytes: number[]): void {
    this.bytes.push(...bytes);
  }

  push(r: Reg): void {
    if (r >= 8) this.bytes.push(0x41);
    this.bytes.push(0x50 + (r & 7));
  }

  pop(r: Reg): void {
    if (r >= 8) this.bytes.push(0x41);
    this.bytes.push(0x58 + (r & 7));
  }

  /** push imm32 (sign-extended to 64 bits). */
  pushImm(v: number): void {
    this.bytes.push(0x68);
    this.#imm32(v);
  }

  call(label: string): void {
    this.bytes.push(0xe8);
    this.#rel32(label);
  }

  jmp(label: string): void {
    this.bytes.push(0xe9);
    this.#rel32(label);
  }

  /** jmp rel32 to an absolute address, given the address this code will run at. */
  jmpAbsolute(codeBase: bigint, target: bigint): void {
    this.bytes.push(0xe9);
    const rel = target - (codeBase + BigInt(this.here + 4));
    if (rel < -0x80000000n || rel > 0x7fffffffn) throw new Error("jump target out of rel32 reach");
    this.#imm32(Number(rel));
  }

  /** call rel32 to an absolute address, given the address this code will run at. */
  callAbsolute(codeBase: bigint, target: bigint): void {
    this.bytes.push(0xe8);
    const rel = target - (codeBase + BigInt(this.here + 4));
    if (rel < -0x80000000n || rel > 0x7fffffffn) throw new Error("call target out of rel32 reach");
    this.#imm32(Number(rel));
  }

  jcc(cc: number, label: string): void {
    this.bytes.push(0x0f, 0x80 + cc);
    this.#rel32(label);
  }

  /** jmp *reg. */
  jmpReg(r: Reg): void {
    this.#rex(false, 0, r);
    this.bytes.push(0xff, 0xe0 | (r & 7));
  }

  /** jmp *disp(base). */
  jmpMem(base: Reg, disp: number): void {
    this.#rex(false, 0, base);
    this.bytes.push(0xff);
    this.#mem(4, base, disp);
  }

  ret(): void {
    this.bytes.push(0xc3);
  }

  /** ret imm16: return, then drop `n` bytes of arguments. */
  retPop(n: number): void {
    this.bytes.push(0xc2, n & 0xff, (n >> 8) & 0xff);
  }

  /** mov src, dst (64 or 32 bits; a 32-bit write zero-extends). */
  mov(dst: Reg, src: Reg, bits: 32 | 64 = 64): void {
    this.#rex(bits === 64, src, dst);
    this.bytes.push(0x89, 0xc0 | ((src & 7) << 3) | (dst & 7));
  }

  /** mov disp(base), dst. */
  load(dst: Reg, base: Reg, disp: number, bits: 32 | 64 = 64): void {
    this.#rex(bits === 64, dst, base);
    this.bytes.push(0x8b);
    this.#mem(dst, base, disp);
  }

  /** mov src, disp(base). */
  store(base: Reg, disp: number, src: Reg, bits: 32 | 64 = 64): void {
    this.#rex(bits === 64, src, base);
    this.bytes.push(0x89);
    this.#mem(src, base, disp);
  }

  /** lea disp(base), dst. */
  lea(dst: Reg, base: Reg, disp: number): void {
    this.#rex(true, dst, base);
    this.bytes.push(0x8d);
    this.#mem(dst, base, disp);
  }

  /** movabs imm64, dst. */
  movImm64(dst: Reg, v: bigint): void {
    this.#rex(true, 0, dst);
    this.bytes.push(0xb8 + (dst & 7));
    for (let i = 0n; i < 8n; i++) this.bytes.push(Number((BigInt.asUintN(64, v) >> (8n * i)) & 0xffn));
  }

  /** mov imm32, dst32 (zero-extends). */
  movImm32(dst: Reg, v: number): void {
    this.#rex(false, 0, dst);
    this.bytes.push(0xb8 + (dst & 7));
    this.#imm32(v);
  }

  /** mov %fs:offset, dst32 (a thread-control-block field). */
  loadFs32(dst: Reg, offset: number): void {
    this.bytes.push(0x64);
    this.#rex(false, dst, 0);
    this.bytes.push(0x8b, 0x04 | ((dst & 7) << 3), 0x25);
    this.#imm32(offset);
  }

  /** op imm32, dst (81 /n; imm sign-extended for 64 bits). */
  aluImm(op: AluOp, dst: Reg, v: number, bits: 32 | 64 = 64): void {
    this.#rex(bits === 64, 0, dst);
    this.bytes.push(0x81, 0xc0 | (ALU[op] << 3) | (dst & 7));
    this.#imm32(v);
  }

  /** op src, dst (register to register). */
  alu(op: AluOp, dst: Reg, src: Reg, bits: 32 | 64 = 64): void {
    this.#rex(bits === 64, src, dst);
    this.bytes.push(0x01 + (ALU[op] << 3), 0xc0 | ((src & 7) << 3) | (dst & 7));
  }

  /** op disp(base), dst (dst op= memory). */
  aluLoad(op: AluOp, dst: Reg, base: Reg, disp: number, bits: 32 | 64 = 64): void {
    this.#rex(bits === 64, dst, base);
    this.bytes.push(0x03 + (ALU[op] << 3));
    this.#mem(dst, base, disp);
  }

  /** op imm32, disp(base) (32-bit memory operand, 81 /n). */
  aluMemImm32(op: AluOp, base: Reg, disp: number, v: number): void {
    this.#rex(false, 0, base);
    this.bytes.push(0x81);
    this.#mem(ALU[op], base, disp);
    this.#imm32(v);
  }

  /** cmp reg, disp(base) — flags of memory − reg. */
  cmpMem(base: Reg, disp: number, reg: Reg, bits: 32 | 64 = 64): void {
    this.#rex(bits === 64, reg, base);
    this.bytes.push(0x39);
    this.#mem(reg, base, disp);
  }

  /** test imm32, disp(base) (32-bit). */
  testMemImm(base: Reg, disp: number, v: number): void {
    this.#rex(false, 0, base);
    this.bytes.push(0xf7);
    this.#mem(0, base, disp);
    this.#imm32(v);
  }

  /** test a, b. */
  test(a: Reg, b: Reg, bits: 32 | 64 = 64): void {
    this.#rex(bits === 64, b, a);
    this.bytes.push(0x85, 0xc0 | ((b & 7) << 3) | (a & 7));
  }

  /** incq disp(base); with `lock`, atomically. */
  incMem(base: Reg, disp: number, lock = false): void {
    if (lock) this.bytes.push(0xf0);
    this.#rex(true, 0, base);
    this.bytes.push(0xff);
    this.#mem(0, base, disp);
  }

  /** addq $v, disp(base), v a signed byte. */
  addMemImm8(base: Reg, disp: number, v: number): void {
    if (v < -128 || v > 127) throw new Error("addMemImm8 takes a signed byte");
    this.#rex(true, 0, base);
    this.bytes.push(0x83);
    this.#mem(0, base, disp);
    this.bytes.push(v & 0xff);
  }

  inc(r: Reg, bits: 32 | 64 = 32): void {
    this.#rex(bits === 64, 0, r);
    this.bytes.push(0xff, 0xc0 | (r & 7));
  }

  dec(r: Reg, bits: 32 | 64 = 32): void {
    this.#rex(bits === 64, 0, r);
    this.bytes.push(0xff, 0xc8 | (r & 7));
  }

  /** shl imm8, r. */
  shl(r: Reg, n: number, bits: 32 | 64 = 64): void {
    this.#rex(bits === 64, 0, r);
    this.bytes.push(0xc1, 0xe0 | (r & 7), n);
  }

  /** bts imm8, r (64-bit). */
  bts(r: Reg, bit: number): void {
    this.#rex(true, 0, r);
    this.bytes.push(0x0f, 0xba, 0xe8 | (r & 7), bit);
  }

  /** lock cmpxchg src, disp(base) (32-bit): compares with eax. */
  lockCmpxchg32(base: Reg, disp: number, src: Reg): void {
    this.bytes.push(0xf0);
    this.#rex(false, src, base);
    this.bytes.push(0x0f, 0xb1);
    this.#mem(src, base, disp);
  }

  /** xadd src, disp(base) (64-bit, no lock: atomic against signal handlers on the same thread). */
  xaddMem(base: Reg, disp: number, src: Reg): void {
    this.#rex(true, src, base);
    this.bytes.push(0x0f, 0xc1);
    this.#mem(src, base, disp);
  }

  rdtsc(): void {
    this.bytes.push(0x0f, 0x31);
  }

  syscall(): void {
    this.bytes.push(0x0f, 0x05);
  }

  ud2(): void {
    this.bytes.push(0x0f, 0x0b);
  }

  int3(): void {
    this.bytes.push(0xcc);
  }

  /** Pad with int3 to a multiple of `n`. */
  align(n: number): void {
    while (this.here % n !== 0) this.bytes.push(0xcc);
  }
}
