import type { Arch } from "../arch.js";
import { decode, decodeOne } from "./decode.js";
import { decodeFields } from "./decode-fields.js";
import {
  ABSOLUTE_JUMP_LENGTH,
  encodeAbsoluteJump,
  encodeNearCall,
  encodeNearJump,
  encodeShortJump,
  NEAR_JUMP_LENGTH,
  SHORT_JUMP_LENGTH,
} from "./encode-jump.js";
import { endbrLength } from "./endbr.js";
import { nopFill, nopLength } from "./nop.js";
import { CALLER_SAVED, registerWrites } from "./register-writes.js";
import { returnValueUse } from "./return-value-use.js";
import { scanBranches } from "./scan-branches.js";

/** EM_X86_64 [gABI, e_machine]. */
const EM_X86_64 = 62;

/** x86-64 (AMD64) facts, decoding through iced-x86. */
export const x86_64: Arch = {
  name: "x86-64",
  elfMachine: EM_X86_64,
  absoluteJumpLength: ABSOLUTE_JUMP_LENGTH,
  nearJumpLength: NEAR_JUMP_LENGTH,
  shortJumpLength: SHORT_JUMP_LENGTH,
  shortJumpBackReach: BigInt(128 - SHORT_JUMP_LENGTH), // rel8 counts from the jump's end
  nearJumpReach: 1n << 31n,
  farJumpLength: NEAR_JUMP_LENGTH,
  jumpNames: { short: "jmp rel8", near: "jmp rel32", far: "jmp rel32" },
  callerSavedRegisters: CALLER_SAVED,
  trapByte: 0xcc, // int3: GCC/LLD fill between functions with it (lld -z, `-mpad` off) or NOPs
  decode,
  decodeOne,
  decodeFields,
  scanBranches,
  nopLength,
  endbrLength,
  isImplicitLandingPad: () => false,
  nopFill,
  encodeShortJump,
  encodeNearJump,
  encodeAbsoluteJump,
  encodeNearCall,
  returnValueUse,
  registerWrites,
};
