import type { UsdtLocation } from "../formats/elf/usdt-location.js";
import type { Registers } from "../process/registers.js";

/** The 64-bit register and the bit range a register name (`edi`, `ax`, `r8b`, `ah`) stands for. */
function registerPart(name: string): { reg: keyof Registers; shift: bigint; bits: bigint } | undefined {
  const legacy: Record<string, string> = { a: "rax", b: "rbx", c: "rcx", d: "rdx" };
  const index: Record<string, string> = { si: "rsi", di: "rdi", bp: "rbp", sp: "rsp" };
  let m = /^r(\d+)([dwb]?)$/.exec(name);
  if (m !== null) {
    const bits = m[2] === "d" ? 32n : m[2] === "w" ? 16n : m[2] === "b" ? 8n : 64n;
    return { reg: `r${m[1]}` as keyof Registers, shift: 0n, bits };
  }
  if (name === "rip") return { reg: "rip", shift: 0n, bits: 64n };
  m = /^([re]?)([abcd])x$/.exec(name);
  if (m !== null)
    return {
      reg: legacy[m[2]!] as keyof Registers,
      shift: 0n,
      bits: m[1] === "r" ? 64n : m[1] === "e" ? 32n : 16n,
    };
  m = /^([abcd])([lh])$/.exec(name);
  if (m !== null) return { reg: legacy[m[1]!] as keyof Registers, shift: m[2] === "h" ? 8n : 0n, bits: 8n };
  m = /^([re]?)(si|di|bp|sp)(l?)$/.exec(name);
  if (m !== null) {
    const bits = m[3] === "l" ? 8n : m[1] === "r" ? 64n : m[1] === "e" ? 32n : 16n;
    return { reg: index[m[2]!] as keyof Registers, shift: 0n, bits };
  }
  return undefined;
}

function registerValue(regs: Registers, name: string): bigint | undefined {
  const part = registerPart(name);
  if (part === undefined) return undefined;
  return (regs[part.reg] >> part.shift) & ((1n << part.bits) - 1n);
}

/**
 * The value of one USDT argument at a probe hit: a register (or part of one), memory at
 * base + index × scale + offset (+ a symbol's runtime address, resolved by `symbol`), or a constant,
 * truncated to `size` bytes and sign-extended when `signed`. `rip` in an operand is the address of
 * the instruction after the probe's NOP (`ripAfter`). Undefined when it cannot be read.
 */
export function usdtArgumentValue(
  location: UsdtLocation,
  size: number,
  signed: boolean,
  regs: Registers,
  ripAfter: bigint,
  readMemory: (address: bigint, length: number) => Uint8Array | undefined,
  symbol: (name: string) => bigint | undefined,
): bigint | undefined {
  let raw: bigint | undefined;
  if (location.kind === "constant") raw = location.value;
  else if (location.kind === "register") raw = registerValue(regs, location.register);
  else if (location.kind === "memory") {
    let address = location.offset;
    if (location.base === "rip") address += ripAfter;
    else if (location.base !== undefined) {
      const b = registerValue(regs, location.base);
      if (b === undefined) return undefined;
      address += b;
    }
    if (location.index !== undefined) {
      const i = registerValue(regs, location.index);
      if (i === undefined) return undefined;
      address += i * BigInt(location.scale);
    }
    if (location.symbol !== undefined) {
      const s = symbol(location.symbol);
      if (s === undefined) return undefined;
      // A RIP-relative symbol operand is the symbol's own address; an absolute one too.
      address = address - (location.base === "rip" ? ripAfter : 0n) + s;
    }
    const bytes = readMemory(BigInt.asUintN(64, address), size);
    if (bytes === undefined || bytes.length < size) return undefined;
    raw = 0n;
    for (let i = size - 1; i >= 0; i--) raw = (raw << 8n) | BigInt(bytes[i]!);
  } else return undefined;
  if (raw === undefined) return undefined;
  const bits = BigInt(size * 8);
  return signed ? BigInt.asIntN(Number(bits), raw) : BigInt.asUintN(Number(bits), raw);
}
