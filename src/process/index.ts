/**
 * The process layer: one live Linux x86-64 process through ptrace, procfs and a few system calls
 * (koffi → libc). Stop every thread, read and write memory, map memory inside the target, read
 * its address space. All calls are synchronous and must stay on the OS thread that stopped the
 * process (ptrace(2): a tracee belongs to one tracer thread).
 */
export * from "./free-region.js";
export * from "./maps.js";
export * from "./memory.js";
export * from "./modules.js";
export * from "./private-memory.js";
export * from "./processes-mapping.js";
export {
  cont,
  detach,
  getEventMsg,
  getRegs,
  getSigInfo,
  getSigMask,
  interrupt,
  PTRACE,
  PTRACE_EVENT,
  PTRACE_O,
  peekData,
  pokeData,
  ptraceError,
  SIG,
  seize,
  setRegs,
  setSigInfo,
  setSigMask,
  singleStep,
  type TraceeRef,
  waitThread,
} from "./ptrace.js";
export * from "./registers.js";
export { sendSignal } from "./send-signal.js";
export * from "./step-out.js";
export {
  type HeldSignal,
  type StopOptions,
  StoppedProcess,
  type StoppedThread,
  type StopWindow,
  stopProcess,
} from "./stop-the-world.js";
export { releaseStragglers, stragglerCount } from "./stragglers.js";
export * from "./syscall-inject.js";
export * from "./threads.js";
export * from "./unwind.js";
export * from "./wait-status.js";
