import type { ErrorCode } from "../core/error-codes.js";

/** The exit codes of every graft command, in one table. */
export const EXIT = {
  OK: 0,
  /** The operation failed; the target is unchanged. */
  FAILED: 1,
  USAGE: 2,
  /** A safety check refused the operation; nothing was changed. */
  REFUSED: 3,
  /** Some of many processes failed. */
  PARTIAL: 4,
  /** A bug in graft. */
  INTERNAL: 70,
} as const;

const REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "BUILD_ID_MISMATCH",
  "SITE_BYTES_CHANGED",
  "NOT_PATCHABLE",
  "THREAD_IN_PATCH_RANGE",
  "THREAD_NOT_QUIESCENT",
  "TARGET_LOCKED",
  "REVERT_ORDER",
  "UNSUPPORTED_RELOCATION",
  "UNKNOWN_SYMBOL",
  "AMBIGUOUS_SYMBOL",
  "PATCH_ALREADY_APPLIED",
  "PATCH_NOT_APPLIED",
  "JOURNAL_INCOMPLETE",
  "DEPENDENCY_MISSING",
  "CALL_SITE_NOT_FOUND",
  "CALL_SITE_UNSAFE",
  "CALL_RESULT_USED",
  "TARGET_OUT_OF_REACH",
  "SIGNATURE_MISSING",
  "SIGNATURE_INVALID",
  "SIGNATURE_UNTRUSTED",
  "SECCOMP_BLOCKS_SYSCALL",
  "SECCOMP_UNREADABLE",
  "MEMORY_SHARED",
]);

/** Exit code for an error code. */
export function exitCodeFor(code: ErrorCode): number {
  if (code === "USAGE") return EXIT.USAGE;
  if (code === "INTERNAL") return EXIT.INTERNAL;
  if (REFUSALS.has(code)) return EXIT.REFUSED;
  return EXIT.FAILED;
}
