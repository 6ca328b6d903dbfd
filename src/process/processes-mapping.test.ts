import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readElfFile } from "../formats/elf/elf-file.js";
import { buildTarget, killTarget, startTarget, type Target, waitForOutput } from "./fixtures/run-target.js";
import { readMaps } from "./maps.js";
import { findProcessesMapping } from "./processes-mapping.js";

let exe: string;
let dir: string;
let target: Target;

beforeAll(async () => {
  exe = buildTarget();
  dir = mkdtempSync(join(tmpdir(), "graft-mapping-"));
  target = startTarget(exe, dir, "light");
  await waitForOutput(target, /^tick 1 /m);
});

afterAll(() => {
  killTarget(target);
  rmSync(dir, { recursive: true, force: true });
});

describe("findProcessesMapping", () => {
  it("finds a process by the build-id of its executable, with the path its maps show", () => {
    const buildId = readElfFile(exe).buildId()!;
    expect(findProcessesMapping(buildId)).toContainEqual({ pid: target.pid, path: exe });
    // Given the file, by a stat of /proc/PID/exe: the same answer.
    expect(findProcessesMapping(buildId, exe)).toContainEqual({ pid: target.pid, path: exe });
  });

  it("finds it by the build-id of a library it maps (the executable is another file)", () => {
    const libc = readMaps(target.pid).find((m) => /\/libc\.so\.6$/.test(m.path) && m.offset === 0n);
    expect(libc, "the target maps libc").toBeDefined();
    const found = findProcessesMapping(readElfFile(libc!.path).buildId()!);
    expect(found).toContainEqual({ pid: target.pid, path: libc!.path });
  });
});
