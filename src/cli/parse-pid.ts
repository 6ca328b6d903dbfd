import { GraftError } from "../core/errors.js";

/** A PID argument: a positive decimal integer, or a usage error that says so. */
export function parsePid(text: string): number {
  if (!/^[1-9][0-9]{0,9}$/.test(text)) {
    throw new GraftError("USAGE", `"${text}" is not a process id`, {
      hint: "pass the PID of a running process, e.g. $(pidof server)",
    });
  }
  return Number(text);
}
