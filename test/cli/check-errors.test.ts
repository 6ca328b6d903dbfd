/**
 * `graft check` on files it cannot read: each ends with a non-zero exit code and exactly one line on
 * stderr, `graft: error: <subject>: <what> (hint: <fix>)`, with no stack trace; with --json the same
 * error is a JSON object on stdout carrying its stable code.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { buildElf } from "../support/elf-builder.js";
import { buildFixture, repoRoot } from "../support/fixtures.js";

const main = join(repoRoot, "dist/cli/main.js");
const tmp = mkdtempSync(join(tmpdir(), "graft-check-errors-"));

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function graft(...args: string[]): Run {
  const r = spawnSync(process.execPath, [main, ...args], {
    encoding: "utf8",
    env: { ...process.env, GRAFT_DEBUG: "" },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The inputs, by what is wrong with them, and the code each must report. */
const cases: [string, () => string, string][] = [
  ["a missing file", () => join(tmp, "no-such-file"), "FILE_NOT_FOUND"],
  ["a directory", () => tmp, "FILE_UNREADABLE"],
  [
    "a text file",
    () => {
      const path = join(tmp, "notes.txt");
      writeFileSync(path, "this is not an ELF file\n");
      return path;
    },
    "ELF_BAD_MAGIC",
  ],
  [
    "an ELF file cut short after 100 bytes",
    () => {
      const path = join(tmp, "truncated");
      const whole = readFileSync(
        buildFixture({ compiler: "gcc", sources: ["sites.c"], flags: ["-O2"], output: "pie" }),
      );
      writeFileSync(path, whole.subarray(0, 100));
      return path;
    },
    "ELF_TRUNCATED",
  ],
  [
    "a 32-bit ELF file",
    () => {
      const path = join(tmp, "elf32");
      writeFileSync(path, buildElf({ header: { ei_class: 1, e_machine: 3 } }).bytes);
      return path;
    },
    "ELF_UNSUPPORTED",
  ],
  [
    "a big-endian ELF file",
    () => {
      const path = join(tmp, "elf64-be");
      writeFileSync(path, buildElf({ header: { ei_data: 2 } }).bytes);
      return path;
    },
    "ELF_UNSUPPORTED",
  ],
];

beforeAll(() => {
  try {
    execFileSync("npm", ["run", "build"], { cwd: repoRoot, encoding: "utf8", stdio: "pipe" });
  } catch (e) {
    const out = e as { stdout?: string; stderr?: string };
    throw new Error(`npm run build failed:\n${out.stdout ?? ""}${out.stderr ?? ""}`);
  }
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.each(cases)("graft check on %s", (_what, makePath, code) => {
  test("exits non-zero with one `graft: error: … (hint: …)` line on stderr and no stack trace", () => {
    const path = makePath();
    const r = graft("check", path);
    expect(r.status).not.toBe(0);
    expect(r.status).not.toBeNull();
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^graft: error: /);
    expect(lines[0]).toContain("(hint: ");
    expect(lines[0]).toContain(path);
    expect(r.stderr).not.toMatch(/\n\s+at |Error:/);
    expect(r.stdout).toBe("");
  });

  test(`with --json prints {error:{code:"${code}"}} on stdout and exits non-zero`, () => {
    const path = makePath();
    const r = graft("check", path, "--json");
    expect(r.status).not.toBe(0);
    const parsed = JSON.parse(r.stdout) as { error: { code: string; message: string; hint: string } };
    expect(parsed.error.code).toBe(code);
    expect(parsed.error.message).not.toBe("");
    expect(parsed.error.hint).not.toBe("");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
