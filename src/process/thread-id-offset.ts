import { ProcessError } from "../core/errors.js";
import { readMemory } from "./memory.js";
import type { StoppedProcess } from "./stop-the-world.js";

/** glibc x86-64: `struct pthread` starts at %fs:0 and its `pid_t tid` is at 0x2d0 (glibc 2.25+). */
const GLIBC_TID_OFFSET = 0x2d0;
const SEARCH_BYTES = 0x1000;

/**
 * The offset from %fs of the 32-bit kernel thread id the C library keeps per thread (glibc's
 * `struct pthread.tid`, set by the kernel through CLONE_CHILD_SETTID before the thread runs), found
 * in the stopped threads: the offsets where every thread's block holds its own tid. With several
 * threads one offset remains; with one, glibc's known offset is preferred when it matches.
 * Refused when no offset fits (no TLS, or a C library that keeps no tid).
 */
export function findThreadIdOffset(stopped: StoppedProcess): number {
  let candidates: number[] | undefined;
  for (const t of stopped.threads) {
    const base = t.regs.fs_base;
    if (base === 0n) continue;
    let bytes: Uint8Array;
    try {
      bytes = readMemory(stopped.memoryPid, base, SEARCH_BYTES);
    } catch {
      continue;
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const here: number[] = [];
    for (let off = 0x10; off + 4 <= SEARCH_BYTES; off += 4) {
      if (view.getUint32(off, true) === t.tid) here.push(off);
    }
    candidates = candidates === undefined ? here : candidates.filter((o) => here.includes(o));
  }
  if (candidates === undefined || candidates.length === 0) {
    throw new ProcessError("TRACE_UNSUPPORTED", "no thread-control-block field holds each thread's id", {
      pid: stopped.pid,
      op: "find the thread id in %fs",
      hint: "tracing needs a C library that keeps the thread id in its thread control block (glibc)",
    });
  }
  return candidates.includes(GLIBC_TID_OFFSET) ? GLIBC_TID_OFFSET : candidates[0]!;
}
