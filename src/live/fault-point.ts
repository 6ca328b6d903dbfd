/**
 * Test-only crash points: with GRAFT_FAULT=<name>, graft kills itself with SIGKILL when it reaches
 * the named step of an apply or revert, exactly as a crash or an OOM kill would. Tests use it to prove
 * that the journal lets a later graft recover the target exactly. With GRAFT_FAULT=<name>:stop graft
 * stops itself there instead (SIGSTOP; SIGCONT goes on), so a test can hold it mid-operation — with
 * its lock taken — while a second graft tries the same process. A no-op otherwise.
 *
 * The points, in order: apply:journaled, apply:mapped, apply:loaded, apply:wrote-far,
 * apply:wrote-entry, apply:resumed; revert:journaled, revert:wrote-entry, revert:wrote-far,
 * revert:restored, revert:unmapped; callsite:journaled, callsite:wrote, callsite:resumed.
 */
export function faultPoint(name: string): void {
  const fault = process.env.GRAFT_FAULT;
  if (fault === name) process.kill(process.pid, "SIGKILL");
  else if (fault === `${name}:stop`) process.kill(process.pid, "SIGSTOP");
}
