import { GraftError } from "../../core/errors.js";
import type { Arch } from "../arch.js";
import { decode, decodeOne } from "./decode.js";
import { decodeFields } from "./decode-fields.js";
import {
  ABSOLUTE_JUMP_LENGTH,
  BRANCH_LENGTH,
  BRANCH_REACH,
  encodeAbsoluteJump,
  encodeBranch,
  encodeBranchLink,
} from "./encode-jump.js";
import { endbrLength, isImplicitLandingPad, nopFill, nopLength } from "./nop.js";
import { scanBranches } from "./scan-branches.js";

/** EM_AARCH64 [gABI, e_machine]. */
const EM_AARCH64 = 183;

/**
 * Caller-saved under AAPCS64 ["General-purpose Registers", "SIMD and Floating-Point Registers"]: x0–x18 (x16/x17 are IP0/IP1, x18 the platform register,
 * temporary on Linux), the link register x30 (every call writes it), v0–v7 and v16–v31 (v8–v15 keep
 * only their low 64 bits across calls, so their upper halves are clobbered too), and NZCV.
 */
const CALLER_SAVED: readonly string[] = [
  ...Array.from({ length: 19 }, (_, i) => `x${i}`),
  "x30",
  ...Array.from({ length: 32 }, (_, i) => `v${i}`),
  "nzcv",
];

function liveOnly(what: string): never {
  throw new GraftError(
    "ARCH_UNSUPPORTED",
    `${what} is not supported on aarch64 yet (live patching is x86-64 only)`,
  );
}

/**
 * AArch64 (A64) facts for analysis, decoded by graft's own small decoder. One jump does for short
 * and near (`b`, ±128 MiB); the far jump for pre-entry room is the veneer-style literal load.
 */
export const aarch64: Arch = {
  name: "aarch64",
  elfMachine: EM_AARCH64,
  absoluteJumpLength: ABSOLUTE_JUMP_LENGTH,
  nearJumpLength: BRANCH_LENGTH,
  shortJumpLength: BRANCH_LENGTH,
  shortJumpBackReach: BRANCH_REACH,
  nearJumpReach: BRANCH_REACH,
  farJumpLength: ABSOLUTE_JUMP_LENGTH,
  jumpNames: { short: "b", near: "b", far: "ldr x16, #8; br x16; .quad" },
  callerSavedRegisters: CALLER_SAVED,
  trapByte: undefined, // gas and ld fill code alignment with NOPs
  decode,
  decodeOne,
  decodeFields,
  scanBranches,
  nopLength,
  endbrLength,
  isImplicitLandingPad,
  nopFill,
  encodeShortJump: encodeBranch,
  encodeNearJump: encodeBranch,
  encodeAbsoluteJump,
  encodeNearCall: encodeBranchLink,
  returnValueUse: () => liveOnly("return-value use of a call"),
  registerWrites: () => liveOnly("register-write analysis"),
};
