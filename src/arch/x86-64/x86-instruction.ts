import type { Instruction, InstructionKind } from "../arch.js";
import { formatGas } from "./format-gas.js";

/**
 * One decoded x86-64 instruction. Plain data copied out of iced (whose objects live in wasm memory
 * and are reused), except `text`, which is formatted on first read from the bytes it came from:
 * formatting costs more than decoding and most callers never look at it.
 */
export class X86Instruction implements Instruction {
  readonly address: bigint;
  readonly length: number;
  readonly kind: InstructionKind;
  readonly target: bigint | undefined;
  readonly pcRelative: boolean;
  readonly memoryAddress: bigint | undefined;
  readonly relocatable: boolean;
  readonly #bytes: Uint8Array;
  readonly #offset: number;
  #text: string | undefined;

  constructor(
    fields: Omit<Instruction, "text" | "relocatable"> & { relocatable: boolean },
    bytes: Uint8Array,
    offset: number,
  ) {
    this.address = fields.address;
    this.length = fields.length;
    this.kind = fields.kind;
    this.target = fields.target;
    this.pcRelative = fields.pcRelative;
    this.memoryAddress = fields.memoryAddress;
    this.relocatable = fields.relocatable;
    this.#bytes = bytes;
    this.#offset = offset;
  }

  get text(): string {
    if (this.#text === undefined) {
      this.#text = this.kind === "invalid" ? "(bad)" : formatGas(this.#bytes, this.#offset, this.address);
    }
    return this.#text;
  }
}
