import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GraftError } from "../core/errors.js";
import {
  buildTarget,
  isAlive,
  killTarget,
  startTarget,
  type Target,
  waitForOutput,
} from "./fixtures/run-target.js";
import { readMaps } from "./maps.js";
import { readMemory } from "./memory.js";
import { peekData, pokeData, ptraceError, seize } from "./ptrace.js";
import { stopProcess } from "./stop-the-world.js";

let dir: string;
let target: Target;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "graft-ptrace-"));
  target = startTarget(buildTarget(), dir, "light");
  await waitForOutput(target, /^tick 1 /m);
});

afterAll(() => {
  killTarget(target);
  rmSync(dir, { recursive: true, force: true });
});

describe("ptraceError", () => {
  it("maps ESRCH to NO_SUCH_PROCESS, EPERM and EACCES to PERMISSION_DENIED, the rest to PTRACE_FAILED", () => {
    const where = { pid: 10, tid: 11 };
    expect(ptraceError("PTRACE_SEIZE", where, 3).code).toBe("NO_SUCH_PROCESS");
    expect(ptraceError("PTRACE_SEIZE", where, 1).code).toBe("PERMISSION_DENIED");
    expect(ptraceError("PTRACE_SEIZE", where, 13).code).toBe("PERMISSION_DENIED");
    const other = ptraceError("PTRACE_GETREGS", where, 5);
    expect(other.code).toBe("PTRACE_FAILED");
    expect(other.message).toBe("PTRACE_GETREGS on thread 11 failed: EIO");
    expect(other).toMatchObject({ pid: 10, tid: 11, op: "PTRACE_GETREGS", errno: 5 });
  });

  it("hints at ptrace_scope and other tracers on EPERM", () => {
    expect(ptraceError("PTRACE_SEIZE", { pid: 1, tid: 1 }, 1).hint).toContain("ptrace_scope");
  });
});

describe("ptrace requests", () => {
  it("refuse a thread that does not exist with NO_SUCH_PROCESS", () => {
    const dead = Number(execFileSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).trim());
    let code: string | undefined;
    try {
      seize(dead);
    } catch (error) {
      code = (error as GraftError).code;
    }
    expect(code).toBe("NO_SUCH_PROCESS");
  });

  it("peek and poke words of a stopped thread, agreeing with readMemory", () => {
    const stopped = stopProcess(target.pid);
    try {
      const data = readMaps(target.pid).find((m) => m.perms.w && m.perms.r && m.path === "[stack]");
      expect(data).toBeDefined();
      if (data === undefined) return;
      // The lowest word of the main stack mapping is far below any live frame.
      const addr = data.start;
      const word = peekData(target.pid, addr, target.pid);
      const bytes = readMemory(target.pid, addr, 8);
      expect(word).toBe(new DataView(bytes.buffer).getBigUint64(0, true));
      pokeData(target.pid, addr, 0xfedcba9876543210n, target.pid);
      expect(peekData(target.pid, addr, target.pid)).toBe(0xfedcba9876543210n);
      pokeData(target.pid, addr, word, target.pid);
      expect(readMemory(target.pid, addr, 8)).toEqual(bytes);
    } finally {
      stopped.resume();
    }
  });

  it("resume() returns quietly when the stopped process was killed meanwhile", () => {
    const stopped = stopProcess(target.pid);
    process.kill(target.pid, "SIGKILL");
    expect(() => stopped.resume()).not.toThrow();
    for (let i = 0; i < 100 && isAlive(target.pid); i++) execFileSync("sleep", ["0.02"]);
    expect(isAlive(target.pid)).toBe(false);
  });
});
