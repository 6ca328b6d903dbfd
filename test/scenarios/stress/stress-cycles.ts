/**
 * The apply/revert loop of bench/stress and its short form in CI: `cycles` times apply the patch and
 * revert it on a running target, checking after each step that graft's journal and the process's
 * bytes agree and the target is alive. Returns what it saw; the target counts wrong answers itself.
 */
import { applyPatch } from "../../../src/live/apply-patch.js";
import { patchStatus } from "../../../src/live/patch-status.js";
import { revertPatch } from "../../../src/live/revert-patch.js";
import { ModuleCache } from "../../../src/live/target-modules.js";

export interface StressOutcome {
  readonly cycles: number;
  readonly failures: readonly string[];
  readonly applyPausesMs: readonly number[];
  readonly revertPausesMs: readonly number[];
  /**
   * Reverts whose code stayed mapped (retired) because a thread was still inside it at every look
   * until the deadline: safe (the journal lists it), and expected when the target's threads get
   * little CPU, but counted.
   */
  readonly retired: number;
}

function alive(pid: number, read: (path: string) => string): boolean {
  try {
    return !/\) [ZX] /.test(read(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

export function stressCycles(
  pid: number,
  patch: string,
  cycles: number,
  read: (path: string) => string,
  onCycle?: (done: number) => void,
): StressOutcome {
  const failures: string[] = [];
  const applyPausesMs: number[] = [];
  const revertPausesMs: number[] = [];
  let done = 0;
  let retired = 0;
  // One long-lived graft (an agent) parses libc once, not once per apply.
  const moduleCache = new ModuleCache();
  for (; done < cycles && failures.length === 0; done++) {
    try {
      const a = applyPatch(pid, patch, { moduleCache });
      applyPausesMs.push((a.pause?.windowNs ?? 0) / 1e6);
      const s = patchStatus(pid).patches.map((p) => `${p.journal}/${p.sites}`);
      if (s.join() !== "applied/applied") failures.push(`cycle ${done}: after apply, status ${s.join()}`);
      const r = revertPatch(pid);
      revertPausesMs.push(Math.max(...r.pauses.map((p) => p.windowNs)) / 1e6);
      if (!r.reverted.every((x) => x.unmapped)) retired++;
      if (patchStatus(pid).patches.length !== 0) failures.push(`cycle ${done}: a patch left after revert`);
    } catch (e) {
      failures.push(`cycle ${done}: ${(e as Error).message}`);
    }
    if (!alive(pid, read)) failures.push(`cycle ${done}: the target died`);
    onCycle?.(done + 1);
  }
  return { cycles: done, failures, applyPausesMs, revertPausesMs, retired };
}
