import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GraftError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import { buildTarget, killTarget, startTarget, type Target, waitForOutput } from "./fixtures/run-target.js";
import { readMaps } from "./maps.js";
import { openMemory, readMemory, writeMemory } from "./memory.js";
import { findModule, listModules } from "./modules.js";

let exe: string;
let dir: string;
let target: Target;

/** Runtime address of a symbol of the (PIE) target: load base + st_value from nm. */
function symbolAddress(name: string): bigint {
  const line = execFileSync("nm", [exe], { encoding: "utf8" })
    .split("\n")
    .find((l) => l.endsWith(` ${name}`));
  if (line === undefined) throw new Error(`no ${name} in nm output`);
  const module = findModule(listModules(readMaps(target.pid)), exe);
  if (module?.base === undefined) throw new Error("target not mapped");
  return module.base.start + BigInt(`0x${line.split(" ")[0]}`);
}

function procMem(pid: number, addr: bigint, length: number): Uint8Array {
  const fd = openSync(`/proc/${pid}/mem`, "r");
  try {
    const out = new Uint8Array(length);
    expect(readSync(fd, out, 0, length, addr)).toBe(length);
    return out;
  } finally {
    closeSync(fd);
  }
}

function errorOf(fn: () => unknown): GraftError {
  try {
    fn();
  } catch (error) {
    if (error instanceof GraftError) return error;
    throw error;
  }
  throw new Error("expected an error");
}

beforeAll(async () => {
  exe = buildTarget();
  dir = mkdtempSync(join(tmpdir(), "graft-memory-"));
  target = startTarget(exe, dir, "light");
  await waitForOutput(target, /^tick 1 /m);
});

afterAll(() => {
  killTarget(target);
  rmSync(dir, { recursive: true, force: true });
});

describe("readMemory", () => {
  it("reads the same bytes as /proc/PID/mem, for text, the vDSO and the stack", () => {
    const maps = readMaps(target.pid);
    const picks = [
      maps.find((m) => m.path === exe && m.perms.x),
      maps.find((m) => m.path === "[vdso]"),
      maps.find((m) => m.path === "[stack]"),
    ];
    for (const m of picks) {
      expect(m).toBeDefined();
      if (m === undefined) continue;
      const length = Number(m.end - m.start < 8192n ? m.end - m.start : 8192n);
      expect(readMemory(target.pid, m.start, length)).toEqual(procMem(target.pid, m.start, length));
    }
  });

  it("reads pages that process_vm_readv refuses (PROT_NONE guard pages) through /proc/PID/mem", () => {
    const guard = readMaps(target.pid).find((m) => !m.perms.r && !m.perms.w && !m.perms.x);
    expect(guard, "a thread stack guard page").toBeDefined();
    if (guard === undefined) return;
    expect(readMemory(target.pid, guard.start, 64)).toHaveLength(64);
  });

  it("names the first unmapped address when a read runs off the end of a mapping", () => {
    const maps = readMaps(target.pid);
    const edge = maps.find(
      (m, i) => m.perms.r && (maps[i + 1]?.start ?? 0n) > m.end && m.path !== "[vsyscall]",
    );
    if (edge === undefined) throw new Error("no mapping followed by a hole");
    const error = errorOf(() => readMemory(target.pid, edge.end - 8n, 16));
    expect(error.code).toBe("MEMORY_ACCESS_FAILED");
    expect(error.message).toContain(hex(edge.end));
  });

  it("reports NO_SUCH_PROCESS for a process that has exited", () => {
    const dead = Number(execFileSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).trim());
    expect(errorOf(() => readMemory(dead, 0x400000n, 8)).code).toBe("NO_SUCH_PROCESS");
  });
});

describe("writeMemory", () => {
  it("writes writable data and reads it back", () => {
    const scratch = symbolAddress("scratch");
    const pattern = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
    writeMemory(target.pid, scratch, pattern);
    expect(readMemory(target.pid, scratch, 32)).toEqual(pattern);
    expect(procMem(target.pid, scratch, 32)).toEqual(pattern);
  });

  it("writes read-only text and restores it byte-identical", () => {
    const fn = symbolAddress("patch_me");
    const mapping = readMaps(target.pid).find((m) => m.start <= fn && fn < m.end);
    expect(mapping?.perms).toMatchObject({ r: true, w: false, x: true });
    const mem = openMemory(target.pid);
    try {
      const original = mem.read(fn, 16);
      mem.write(fn, new Uint8Array(16).fill(0xcc));
      expect(mem.read(fn, 16)).toEqual(new Uint8Array(16).fill(0xcc));
      mem.write(fn, original);
      expect(mem.read(fn, 16)).toEqual(original);
      expect(procMem(target.pid, fn, 16)).toEqual(original);
    } finally {
      mem.close();
    }
  });

  it("fails with MEMORY_ACCESS_FAILED naming the address when nothing is mapped there", () => {
    const error = errorOf(() => writeMemory(target.pid, 0x1000n, new Uint8Array([1, 2, 3])));
    expect(error.code).toBe("MEMORY_ACCESS_FAILED");
    expect(error.message).toContain("0x1000");
  });
});
