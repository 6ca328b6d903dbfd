import {
  DECODER_OPTIONS,
  Decoder,
  Formatter,
  FormatterSyntax,
  IcedInstruction,
  MAX_INSTRUCTION_LENGTH,
} from "./iced.js";

let formatter: Formatter | undefined;
let scratch: IcedInstruction | undefined;

/**
 * GNU AT&T text of the instruction at `bytes[offset]`, which sits at `address`, set up to read like
 * `objdump -d` (binutils 2.40 agrees on ~99% of node's code): lowercase hex, `0x0(%rax,%rax,1)`,
 * `0x0(%rip)` rather than the resolved address, operands in column 7. Still apart: branch targets
 * print as `0x…` where objdump prints bare hex and a symbol, segment overrides as `%cs:` (gas input
 * syntax) where objdump prints a `cs` prefix, string operands without the implicit `%ds:`/`%es:`.
 * Decodes again on purpose: formatting costs more than decoding and is rarely wanted, so decode
 * paths keep no iced object alive and call this on demand.
 */
export function formatGas(bytes: Uint8Array, offset: number, address: bigint): string {
  if (formatter === undefined || scratch === undefined) {
    formatter = new Formatter(FormatterSyntax.Gas);
    formatter.uppercaseHex = false;
    formatter.branchLeadingZeros = false;
    formatter.showZeroDisplacements = true;
    formatter.smallHexNumbersInDecimal = false;
    formatter.ripRelativeAddresses = true;
    formatter.firstOperandCharIndex = 7;
    formatter.showUselessPrefixes = true;
    scratch = new IcedInstruction();
  }
  const decoder = new Decoder(64, bytes.subarray(offset, offset + MAX_INSTRUCTION_LENGTH), DECODER_OPTIONS);
  try {
    decoder.ip = address;
    decoder.decodeOut(scratch);
    return (
      formatter
        .format(scratch)
        // objdump 2.40 prints no `q` where iced keeps one on call/jmp/push/pop (keep column 7).
        .replace(/^(call|jmp|push|pop)q( +)/, "$1$2 ")
        // objdump always shows an index's scale; iced's alwaysShowScale also adds one with no index.
        .replace(/\((%\w+)?,(%\w+)\)/, "($1,$2,1)")
    );
  } finally {
    decoder.free(); // wasm memory: iced-x86 registers no finalizer
  }
}
