/**
 * graft as a library: layers 1–5 (formats → arch → analysis → process → live). The CLI in src/cli
 * is a thin shell over these exports.
 */

export { type CflagsAdvice, type CflagsCompiler, type CflagsKind, cflagsAdvice } from "./analysis/cflags.js";
export type { CheckOptions, CheckReport, CheckSummary, FunctionReport, Verdict } from "./analysis/check.js";
export { checkElf } from "./analysis/check.js";
export { ClobberedRegisters } from "./analysis/clobbered-registers.js";
export { type CloneKind, type CloneName, parseCloneName } from "./analysis/clone-name.js";
export {
  type BuildDiff,
  type ChangedData,
  type ChangedFunction,
  type DiffOptions,
  diffBuilds,
  type LineOnlyFunction,
  type OneSidedUnit,
} from "./analysis/diff/diff-builds.js";
export {
  type ImpactedFunction as DiffImpactedFunction,
  type ImpactSource,
  impactedClosure,
  symbolImpactSource,
} from "./analysis/diff/impacted-closure.js";
export { type FunctionInfo, listFunctions } from "./analysis/functions.js";
export {
  type ImpactedFunction,
  ImpactGraph,
  type ImpactMapEntry,
  type ImpactMapReport,
  type ImpactOrigin,
  type ImpactReason,
  type ImpactReport,
  impactMap,
  impactOf,
} from "./analysis/impact.js";
export {
  type CallForm,
  type CallSite,
  type CallSiteOptions,
  type CallSiteReport,
  type CallSiteSummary,
  listCallSites,
} from "./analysis/list-call-sites.js";
export { type ProducerFlags, parseProducer } from "./analysis/producer-flags.js";
export type { RedirectKind, RedirectSite, RedirectWrite, UsdtSite } from "./analysis/site-types.js";
export { type IndexedSymbol, SymbolIndex } from "./analysis/symbol-index.js";
export type {
  Arch,
  BranchRef,
  Instruction,
  InstructionKind,
  RegisterWrites,
  ReturnValueUse,
} from "./arch/arch.js";
export { archForMachine, getArchForMachine, x86_64 } from "./arch/index.js";
export * from "./core/error-codes.js";
export * from "./core/errors.js";
export { hex, hexBytes } from "./core/hex.js";
export * from "./formats/dwarf/index.js";
export * from "./formats/elf/index.js";
export { type ApplyOptions, type ApplyResult, applyPatch } from "./live/apply-patch.js";
export {
  type BuildFromBuildsOptions,
  type BuildFromSourceDiffOptions,
  type BuiltDiffPatch,
  buildPatchFromBuilds,
  buildPatchFromSourceDiff,
} from "./live/build-diff-patch-file.js";
export {
  type BuildPatchOptions,
  type BuiltPatch,
  buildPatchFile,
  packagePatchObject,
} from "./live/build-patch-file.js";
export {
  type CallSiteAction,
  type CallSiteChange,
  type CallSiteRequest,
  type CallSiteResult,
  changeCallSites,
} from "./live/change-call-sites.js";
export type { Consistency } from "./live/consistency.js";
export { type FleetOptions, type FleetResult, runFleet } from "./live/fleet.js";
export type { FleetOperation, FleetOutcome, FleetProcessResult } from "./live/fleet-target.js";
export { type PatchFile, readPatchFile } from "./live/patch-file.js";
export type { ManifestFunction, ManifestWrite, PatchManifest } from "./live/patch-manifest.js";
export { type PatchStatus, patchStatus, type StatusResult } from "./live/patch-status.js";
export { type RevertOptions, type RevertResult, revertPatch } from "./live/revert-patch.js";
export { ModuleCache } from "./live/target-modules.js";
export { type Mapping, parseMaps, readMaps } from "./process/maps.js";
export { openMemory, type ProcessMemory, readMemory, writeMemory } from "./process/memory.js";
export { listModules, type Module } from "./process/modules.js";
export { StoppedProcess, type StopWindow, stopProcess } from "./process/stop-the-world.js";
export { injectMmap, injectMprotect, injectMunmap, injectSyscall } from "./process/syscall-inject.js";
export {
  type Backtrace,
  type ModuleLoader,
  type StackFrame,
  type UnwindEnd,
  Unwinder,
} from "./process/unwind.js";
