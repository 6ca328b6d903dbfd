/**
 * Vitest global setup: every test process and every program it starts uses one scratch TMPDIR,
 * removed after the run, so the suite leaves nothing behind in /tmp however a test ends.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "graft-test-run-"));
  process.env.TMPDIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
