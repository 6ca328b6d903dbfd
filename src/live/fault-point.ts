/**
 * Test-only crash points: with GRAFT_FAULT=<name>, graft kills itself with SIGKILL when it reaches
 * the named step of an apply or revert, exactly as a crash or an OOM kill would. Tests use it to prove
 * that the journal lets a later graft recover the target exactly. A no-op otherwise.
 */
export function faultPoint(name: string): void {
  if (process.env.GRAFT_FAULT === name) process.kill(process.pid, "SIGKILL");
}
