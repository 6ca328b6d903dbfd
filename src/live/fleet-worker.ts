/**
 * Entry point of one worker process of graft apply/revert/status --all-of --jobs N (forked by
 * fleet.ts). ptrace binds a tracee to the OS thread that attached it and graft's ptrace calls are
 * synchronous, so parallel patching takes one OS thread per worker: a process of its own (its main
 * thread does everything, as in the CLI) is the simplest way, with nothing shared but messages.
 *
 * Protocol over the IPC channel: the parent sends `{ op }` once, then `{ pid, measureMemory }` one at a time; the
 * worker answers each with `{ row }` and exits when the channel closes.
 */

import { type FleetOperation, type FleetShared, runFleetTarget } from "./fleet-target.js";
import { withoutStaleSweep } from "./journal.js";
import { readPatchFile } from "./patch-file.js";
import { ModuleCache } from "./target-modules.js";

let shared: FleetShared | undefined;
let op: FleetOperation | undefined;

process.on("message", (message: { op?: FleetOperation; pid?: number; measureMemory?: boolean }) => {
  if (message.op !== undefined) {
    op = message.op;
    shared = {
      patchFile: op.kind === "apply" ? readPatchFile(op.patch) : undefined,
      moduleCache: new ModuleCache(),
    };
    process.send?.({ ready: true });
    return;
  }
  if (message.pid === undefined || op === undefined || shared === undefined) return;
  const pid = message.pid;
  const row = {
    ...withoutStaleSweep(() => runFleetTarget(pid, op!, shared!, message.measureMemory ?? true)),
    by: process.pid,
  };
  process.send?.({ row });
});
process.on("disconnect", () => process.exit(0));
