import { GraftError } from "../core/errors.js";
import { constantName, EM } from "../formats/elf/constants.js";
import { aarch64 } from "./aarch64/aarch64.js";
import type { Arch } from "./arch.js";
import { x86_64 } from "./x86-64/x86-64.js";

export type {
  Arch,
  BranchRef,
  FieldedInstruction,
  Instruction,
  InstructionField,
  InstructionKind,
  RegisterWrites,
  ReturnValueUse,
} from "./arch.js";
export { aarch64, x86_64 };

/** Every arch graft knows, by ELF e_machine. */
const ARCHES: readonly Arch[] = [x86_64, aarch64];

/** The arch for an ELF `e_machine` value, or `undefined` when graft does not support it. */
export function archForMachine(eMachine: number): Arch | undefined {
  return ARCHES.find((arch) => arch.elfMachine === eMachine);
}

/**
 * The arch for an ELF `e_machine` value; throws ELF_UNSUPPORTED naming the machine (and `subject`,
 * the file it came from) when graft does not support it.
 */
export function getArchForMachine(eMachine: number, subject?: string): Arch {
  const arch = archForMachine(eMachine);
  if (arch !== undefined) return arch;
  throw new GraftError("ELF_UNSUPPORTED", `machine ${constantName(EM, eMachine, "EM")} is not supported`, {
    ...(subject === undefined ? {} : { subject }),
    hint: `graft reads ${ARCHES.map((a) => a.name).join(", ")} ELF files`,
  });
}

/** Arches graft can live-patch (AArch64 is analysis only for now). */
const LIVE_ARCHES: readonly Arch[] = [x86_64];

/**
 * The arch for live patching a file of machine `eMachine`: like getArchForMachine, but an arch graft
 * only analyses (AArch64) throws ARCH_UNSUPPORTED, so build/apply/callsite refuse cleanly up front.
 */
export function getLiveArchForMachine(eMachine: number, subject?: string): Arch {
  const arch = getArchForMachine(eMachine, subject);
  if (LIVE_ARCHES.includes(arch)) return arch;
  throw new GraftError("ARCH_UNSUPPORTED", `live patching ${arch.name} is not supported yet`, {
    ...(subject === undefined ? {} : { subject }),
  });
}
