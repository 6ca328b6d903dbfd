import { GraftError } from "../core/errors.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";

/** JSON with bigints as `0x…` strings (addresses) — JSON has no 64-bit integers. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v), 2);
}

/** Print a command's result: JSON on --json, else the command's text rendering. */
export function printResult<T>(result: T, json: boolean, renderText: (r: T) => string): void {
  process.stdout.write(json ? `${toJson(result)}\n` : renderText(result));
}

/**
 * The one place errors reach the user: `graft: error: <subject>: <what> (hint: <fix>)` on stderr, or
 * `{error:{code,message,hint}}` on stdout with --json. Stack traces only with GRAFT_DEBUG=1.
 */
export function reportError(error: unknown, json: boolean): number {
  const debug = process.env.GRAFT_DEBUG === "1";
  if (error instanceof GraftError) {
    const subject = error.subject === undefined ? "" : `${error.subject}: `;
    if (json) {
      process.stdout.write(
        `${toJson({ error: { code: error.code, subject: error.subject, message: error.message, hint: error.hint } })}\n`,
      );
    } else {
      process.stderr.write(`graft: error: ${subject}${error.message} (hint: ${error.hint})\n`);
    }
    if (debug && error.stack) process.stderr.write(`${error.stack}\n`);
    return exitCodeFor(error.code);
  }
  const message = error instanceof Error ? error.message : String(error);
  if (json)
    process.stdout.write(
      `${toJson({ error: { code: "INTERNAL", message, hint: "please report it with GRAFT_DEBUG=1 output" } })}\n`,
    );
  else
    process.stderr.write(
      `graft: error: internal error: ${message} (hint: please report it with GRAFT_DEBUG=1 output)\n`,
    );
  if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  return EXIT.INTERNAL;
}
