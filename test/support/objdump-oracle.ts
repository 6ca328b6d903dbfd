/**
 * Test support: binutils as the oracle for the x86-64 decoder. Compiles C or assembly with gcc into
 * a temporary directory and reads the answers back from objdump/readelf, so expected values come
 * from the tools, never typed in by hand. Test-only (it runs programs); nothing in src imports it.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { InstructionKind } from "../../src/arch/arch.js";

/** One line of `objdump -d -w`: where, the raw bytes, and the text after them ("(bad)" for junk). */
export interface ObjdumpLine {
  readonly address: bigint;
  readonly bytes: Uint8Array;
  readonly text: string;
}

/** A section header as `readelf -SW` prints it. */
export interface SectionInfo {
  readonly name: string;
  readonly address: bigint;
  readonly offset: number;
  readonly size: number;
}

/** True when a program can be run (`gcc --version`). */
export function hasTool(tool: string): boolean {
  try {
    execFileSync(tool, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Write `source` as `name` (`.c` or `.s`) in a fresh temporary directory and compile it with
 * `compiler -c` (gcc unless told); the `.o` path.
 */
let scratch: string | undefined;
let compiled = 0;

export function compile(name: string, source: string, flags: readonly string[], compiler = "gcc"): string {
  // One scratch directory per test process, removed when it exits, so runs leave nothing in /tmp.
  if (scratch === undefined) {
    const dir = mkdtempSync(join(tmpdir(), "graft-x86-"));
    scratch = dir;
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  const dir = join(scratch, String(compiled++));
  mkdirSync(dir);
  const src = join(dir, name);
  const obj = join(dir, `${name}.o`);
  writeFileSync(src, source);
  execFileSync(compiler, [...flags, "-c", src, "-o", obj], { stdio: ["ignore", "ignore", "pipe"] });
  return obj;
}

/** Every section of `file` that `readelf -SW` lists. */
export function sections(file: string): SectionInfo[] {
  const out = execFileSync("readelf", ["-SW", file], { encoding: "utf8" });
  const found: SectionInfo[] = [];
  for (const line of out.split("\n")) {
    // [Nr] Name Type Address Off Size ...; the "[ 1]" index may hold a space.
    const m = /^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s/.exec(line);
    if (m === null) continue;
    const [, name, address, offset, size] = m as unknown as [string, string, string, string, string];
    found.push({
      name,
      address: BigInt(`0x${address}`),
      offset: Number.parseInt(offset, 16),
      size: Number.parseInt(size, 16),
    });
  }
  return found;
}

/** `readelf -SW` entry for section `name` of `file`. */
export function section(file: string, name: string): SectionInfo {
  const found = sections(file).find((s) => s.name === name);
  if (found === undefined) throw new Error(`${file}: no section ${name}`);
  return found;
}

/** `length` bytes of `file` from `offset`, read without loading the rest of it. */
export function readBytes(file: string, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const fd = openSync(file, "r");
  try {
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, length - done, offset + done);
      if (n === 0) throw new Error(`${file}: short read at ${offset + done}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/**
 * Every instruction `objdump -d -z -w` prints for `file` (`-z`: zero bytes too, not "...";
 * `-w`: all of an instruction's bytes on one line), in one section and/or in [start, stop).
 */
export function objdump(
  file: string,
  where: { section?: string; start?: bigint; stop?: bigint } = {},
): ObjdumpLine[] {
  const args = ["-d", "-z", "-w", file];
  if (where.section !== undefined) args.push(`--section=${where.section}`);
  if (where.start !== undefined) args.push(`--start-address=${where.start}`);
  if (where.stop !== undefined) args.push(`--stop-address=${where.stop}`);
  const out = execFileSync("objdump", args, { encoding: "utf8", maxBuffer: 1 << 30 });
  const lines: ObjdumpLine[] = [];
  for (const line of out.split("\n")) {
    const m = /^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*(?:\t(.*))?$/.exec(line);
    if (m === null) continue;
    const bytes = Uint8Array.from(m[2]!.trim().split(" "), (b) => Number.parseInt(b, 16));
    lines.push({ address: BigInt(`0x${m[1]}`), bytes, text: (m[3] ?? "").trim() });
  }
  return lines;
}

/** A direct branch as objdump shows it: `bnd jmp 1d <f+0x1d>` → jmp, 0x1d. */
export interface ObjdumpBranch {
  readonly mnemonic: string;
  readonly target: bigint;
}

/** The direct branch on `line`, or `undefined` for anything else (indirect branches print `*`). */
export function objdumpBranch(line: ObjdumpLine): ObjdumpBranch | undefined {
  const m =
    /^(?:(?:bnd|notrack|cs|ds|data16|addr32|rex\.\w*)\s+)*(call|jmp|j[a-z]+|loop[a-z]*|xbegin)\s+([0-9a-f]+)(?: <.*>)?$/.exec(
      line.text,
    );
  return m === null ? undefined : { mnemonic: m[1]!, target: BigInt(`0x${m[2]}`) };
}

/** objdump's prefixes that do not change what an instruction is (bnd/notrack are CET/MPX hints). */
const PREFIXES =
  /^(?:(?:bnd|notrack|lock|rep|repz|repnz|repe|repne|cs|ds|es|ss|fs|gs|data16|addr32|rex(?:\.\w+)?)\s+)*/;

/** The contract's kind for an objdump line, from its text alone: the oracle for `decode`'s kinds. */
export function objdumpKind(line: ObjdumpLine): InstructionKind {
  const text = line.text.replace(PREFIXES, "");
  const [mnemonic = "", operands = ""] = text.split(/\s+(.*)/);
  if (text === "(bad)" || mnemonic === ".byte") return "invalid";
  if (/^(nop[lwq]?|xchg)$/.test(mnemonic) && (mnemonic !== "xchg" || operands === "%ax,%ax")) return "nop";
  if (mnemonic === "endbr64") return "endbr";
  if (/^(int3|int1|icebp|ud[012]|hlt)$/.test(mnemonic)) return "trap";
  if (/^(ret|lret|iret[dq]?|sysret[lq]?)$/.test(mnemonic)) return "return";
  if (mnemonic === "call") return operands.startsWith("*") ? "indirect-call" : "call";
  if (mnemonic === "lcall") return "indirect-call";
  if (mnemonic === "jmp") return operands.startsWith("*") ? "indirect-jump" : "jump";
  if (mnemonic === "ljmp") return "indirect-jump";
  if (/^(j[a-z]+|loop[a-z]*|xbegin)$/.test(mnemonic)) return "cond-jump";
  return "other";
}
