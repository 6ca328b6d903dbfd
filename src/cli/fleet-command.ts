import type { Command } from "commander";
import { GraftError } from "../core/errors.js";
import { runFleet } from "../live/fleet.js";
import type { FleetOperation } from "../live/fleet-target.js";
import { fleetExitCode, progressBar, renderFleet } from "./fleet-output.js";
import { printResult } from "./output.js";

/** A positive integer option. */
export function parseCount(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new GraftError("USAGE", `${name} must be a positive integer, not ${value}`);
  return n;
}

/** `--memory-sample N` as FleetOptions (absent: every process is measured). */
function parseMemorySample(value: string | undefined): { memorySample?: number } {
  if (value === undefined) return {};
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new GraftError("USAGE", `--memory-sample must be a whole number, not ${value}`);
  return { memorySample: n };
}

/** The --all-of options of a command that changes processes (apply, revert): `verb` as in "processes patched at once". */
export function fleetChangeOptions(command: Command, verb: string): Command {
  return command
    .option(
      "-j, --jobs <n>",
      `with --all-of: processes ${verb} at once (graft itself and N-1 worker processes)`,
      "1",
    )
    .option("--continue-on-error", "with --all-of: go on after a process fails", false)
    .option(
      "--memory-sample <n>",
      "with --all-of: measure private memory on N processes spread over the fleet, 0 for none (default: every one)",
    );
}

/** The flags runFleetCommand reads (status has no --continue-on-error or --memory-sample). */
export interface FleetFlags {
  readonly jobs: string;
  readonly continueOnError?: boolean;
  readonly memorySample?: string;
  readonly json: boolean;
}

/** Run `op` on every process of `bin`, print the table (or JSON), and exit with its verdict. */
export async function runFleetCommand(
  bin: string,
  op: FleetOperation,
  flags: FleetFlags,
  label: string,
  continueOnError = flags.continueOnError ?? false,
): Promise<void> {
  const result = await runFleet(bin, op, {
    jobs: parseCount(flags.jobs, "--jobs"),
    continueOnError,
    ...parseMemorySample(flags.memorySample),
    onProgress: progressBar(flags.json, label),
  });
  printResult(result, flags.json, renderFleet);
  process.exitCode = fleetExitCode(result);
}
