/**
 * The one door to iced-x86 (a CommonJS package wrapping WebAssembly): every x86-64 file imports
 * the decoder from here, so the loading style and the decoder options live in one place.
 * iced's objects live in wasm memory with no finalizer: whoever creates one calls `free()`.
 */
import { createRequire } from "node:module";
import type * as Iced from "iced-x86";

// require(), not `import iced from "iced-x86"`: importing a CommonJS module from ESM makes Node lex
// its whole source for named exports first (cjs-module-lexer, ~70 ms for iced's inlined WebAssembly),
// paid at every start of graft and of each --all-of worker; require() skips that step.
const iced: typeof Iced = createRequire(import.meta.url)("iced-x86");

export const {
  Code,
  Decoder,
  DecoderError,
  FlowControl,
  Formatter,
  FormatterSyntax,
  MemorySizeExt,
  InstructionInfoFactory,
  Mnemonic,
  OpAccess,
  OpKind,
  Register,
  RegisterExt,
} = iced;
// iced's types, under the names of the values above (a CommonJS default import carries no types).
export type Decoder = Iced.Decoder;
export type FlowControl = Iced.FlowControl;
export type Formatter = Iced.Formatter;
export type InstructionInfoFactory = Iced.InstructionInfoFactory;
/** iced's decoded instruction, named apart from the contract's `Instruction`. */
export const IcedInstruction = iced.Instruction;
export type IcedInstruction = Iced.Instruction;

/**
 * Decoder options for every decode. `None` keeps iced's validity checks: a LOCK prefix on an
 * instruction that cannot take one decodes as invalid, as on a real CPU (#UD).
 */
export const DECODER_OPTIONS: number = iced.DecoderOptions.None;

/** Longest x86 instruction: the CPU raises #GP beyond 15 bytes [Intel SDM 2.3.11]. */
export const MAX_INSTRUCTION_LENGTH = 15;
