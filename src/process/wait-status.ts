/**
 * Decoding of the `int` status that waitpid(2) reports for a tracee, following the glibc
 * <bits/waitstatus.h> macros and ptrace(2) "Stopped states": for a ptrace event stop the event
 * number sits in bits 16–23 (`status >> 16`), e.g. PTRACE_EVENT_STOP (128) for a group-stop or a
 * PTRACE_INTERRUPT stop of a PTRACE_SEIZEd tracee.
 */

/** What happened to a waited-for thread. */
export type WaitStatus =
  | { readonly kind: "exited"; readonly code: number }
  | { readonly kind: "signaled"; readonly signal: number; readonly coreDumped: boolean }
  | {
      readonly kind: "stopped";
      /** WSTOPSIG: the signal of a signal-delivery-stop, SIGTRAP for most event stops. */
      readonly signal: number;
      /** `status >> 16`: a PTRACE_EVENT_* number, 0 for a signal-delivery-stop. */
      readonly event: number;
    }
  | { readonly kind: "continued" };

/** Decode a raw waitpid status word. */
export function decodeWaitStatus(status: number): WaitStatus {
  const low = status & 0x7f;
  if (low === 0) return { kind: "exited", code: (status >> 8) & 0xff };
  if ((status & 0xff) === 0x7f)
    return { kind: "stopped", signal: (status >> 8) & 0xff, event: (status >>> 16) & 0xff };
  if (status === 0xffff) return { kind: "continued" };
  return { kind: "signaled", signal: low, coreDumped: (status & 0x80) !== 0 };
}
