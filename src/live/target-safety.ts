/**
 * Up-front refusals: properties of a target process that make a change unsafe, checked before graft
 * writes anything (journal, memory, registers). Each says why and what to do instead.
 */
import { readFileSync } from "node:fs";
import { GraftError, RefusedError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import { findMemorySharers } from "../process/memory-sharers.js";
import {
  AUDIT_ARCH_X86_64,
  allowsCall,
  BadFilterError,
  describeAction,
  runSeccompFilter,
  strictestAction,
} from "../process/seccomp-bpf.js";
import { readSeccompFilters, readSeccompModes } from "../process/seccomp-filter.js";
import { SYS } from "../process/syscall-inject.js";

/** A system call graft will inject, with its real arguments. */
export interface InjectedCall {
  readonly name: keyof typeof SYS;
  readonly args: readonly bigint[];
}

/**
 * Refuse (MEMORY_SHARED) when another process shares `pid`'s memory: graft stops one process's
 * threads, and the sharer would run on through the bytes being rewritten (memory-sharers.ts).
 */
export function refuseSharedMemory(pid: number): void {
  const sharers = findMemorySharers(pid);
  if (sharers === undefined || sharers.length === 0) return;
  throw new RefusedError(
    "MEMORY_SHARED",
    sharers.map((s) =>
      s.vfork
        ? `process ${s.pid} (${s.name}) is ${s.relation === "child" ? "a vfork child of" : "the vfork parent of"} process ${pid}: they share one address space until the child execs or exits`
        : `process ${s.pid} (${s.name}) shares the address space of process ${pid} (clone with CLONE_VM, ${s.relation === "child" ? "its child" : "its parent"}): graft cannot stop both at once`,
    ),
    {
      subject: `pid ${pid}`,
      hint: sharers.every((s) => s.vfork)
        ? "retry once the vfork child has exec'd or exited (it shares the memory only until then)"
        : "graft stops the threads of one process; a CLONE_VM sharer would run on through the rewritten bytes, so this process cannot be patched live",
    },
  );
}

const PROT_NAMES: readonly [number, string][] = [
  [1, "PROT_READ"],
  [2, "PROT_WRITE"],
  [4, "PROT_EXEC"],
];
const MAP_NAMES: readonly [number, string][] = [
  [0x02, "MAP_PRIVATE"],
  [0x20, "MAP_ANONYMOUS"],
  [0x100000, "MAP_FIXED_NOREPLACE"],
];

function flagNames(value: bigint, names: readonly [number, string][]): string {
  const set = names.filter(([bit]) => (value & BigInt(bit)) !== 0n).map(([, name]) => name);
  const rest = names.reduce((v, [bit]) => v & ~BigInt(bit), value);
  if (rest !== 0n) set.push(hex(rest));
  return set.join("|") || "0";
}

/** `mmap(0x7f…, 0x2000, PROT_READ|PROT_EXEC, MAP_PRIVATE|…, -1, 0)`, as strace would print it. */
function describeCall(c: InjectedCall): string {
  const a = c.args.map((x) => hex(x));
  if (c.name === "mmap")
    return `mmap(${a[0]}, ${a[1]}, ${flagNames(c.args[2]!, PROT_NAMES)}, ${flagNames(c.args[3]!, MAP_NAMES)}, -1, 0)`;
  if (c.name === "mprotect") return `mprotect(${a[0]}, ${a[1]}, ${flagNames(c.args[2]!, PROT_NAMES)})`;
  return `${c.name}(${a.join(", ")})`;
}

function threadList(tids: readonly number[]): string {
  const shown = tids.slice(0, 8).join(", ");
  return `thread${tids.length > 1 ? "s" : ""} ${shown}${tids.length > 8 ? ` and ${tids.length - 8} more` : ""}`;
}

/**
 * Why the process's seccomp state would block or punish each of `calls` (empty: all allowed). Runs
 * every thread's own filters (any thread may be the one graft injects into) on exactly these calls.
 * Throws SECCOMP_UNREADABLE when a filter is there but cannot be read or understood.
 */
export function findSeccompBlocks(pid: number, calls: readonly InjectedCall[]): string[] {
  const modes = readSeccompModes(pid);
  const strict = modes.filter((m) => m.mode === 1);
  if (strict.length > 0)
    return [
      `thread ${strict[0]!.tid} runs in seccomp strict mode: any system call but read, write, _exit and sigreturn kills it`,
    ];
  const filtered = modes.filter((m) => m.mode === 2).map((m) => m.tid);
  if (filtered.length === 0) return [];
  let filters: ReturnType<typeof readSeccompFilters>;
  try {
    filters = readSeccompFilters(pid, filtered);
  } catch (e) {
    if (!(e instanceof GraftError)) throw e;
    throw new RefusedError(
      "SECCOMP_UNREADABLE",
      [`threads of process ${pid} run under a seccomp filter graft cannot read (${e.message})`],
      { subject: `pid ${pid}` },
    );
  }
  const blocks = new Map<string, number[]>();
  for (const [tid, programs] of filters) {
    for (const call of calls) {
      const data = { nr: SYS[call.name], arch: AUDIT_ARCH_X86_64, instructionPointer: 0n, args: call.args };
      let verdict: string | undefined;
      try {
        const outcomes = programs.map((p) => runSeccompFilter(p, data));
        const action = strictestAction(outcomes.map((o) => o.value));
        if (outcomes.some((o) => o.readInstructionPointer))
          verdict = `${describeCall(call)}: the filter decides by the calling address, which graft cannot predict`;
        else if (!allowsCall(action))
          verdict = `${describeCall(call)} would get ${describeAction(action)} from the seccomp filter`;
      } catch (e) {
        if (!(e instanceof BadFilterError)) throw e;
        throw new RefusedError("SECCOMP_UNREADABLE", [`a seccomp filter of thread ${tid}: ${e.message}`], {
          subject: `pid ${pid}`,
        });
      }
      if (verdict !== undefined) blocks.set(verdict, [...(blocks.get(verdict) ?? []), tid]);
    }
  }
  return [...blocks].map(([v, tids]) => `${v} (${threadList(tids)})`);
}

/** Refuse (SECCOMP_BLOCKS_SYSCALL) unless every thread's seccomp filter lets every call in `calls` run. */
export function refuseSeccompBlocks(pid: number, calls: readonly InjectedCall[]): void {
  const blocks = findSeccompBlocks(pid, calls);
  if (blocks.length > 0) throw new RefusedError("SECCOMP_BLOCKS_SYSCALL", blocks, { subject: `pid ${pid}` });
}

/**
 * Notes on a target graft can change but that people may ask about. A CET shadow stack
 * (`x86_Thread_features: shstk` in /proc/PID/status) checks every `ret` against a copy of the return
 * address: graft's redirects are jumps, injected system calls restore the registers and involve no
 * call or return, and graft never writes a return address, so shadow-stack processes are patched
 * as any other.
 */
export function targetNotes(pid: number): string[] {
  let status = "";
  try {
    status = readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {}
  const features = /^x86_Thread_features:\s*(.*)$/m.exec(status)?.[1] ?? "";
  return /\bshstk\b/.test(features)
    ? ["CET shadow stack enabled: allowed (graft writes only jumps and never a return address)"]
    : [];
}
