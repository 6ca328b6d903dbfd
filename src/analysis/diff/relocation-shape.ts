import { EM, R_AARCH64, R_X86_64 } from "../../formats/elf/constants.js";

/** What a relocation of a .o covers, so a diff masks exactly the bits the linker will fill. */
export interface RelocationShape {
  /** Bytes it patches (the whole word for an A64 instruction). */
  readonly size: number;
  /**
   * True when S + A is not the target itself but the CPU adds the end of the instruction (x86-64
   * PC32 and kin); A64 relocations name S + A, the address the instruction reaches.
   */
  readonly pcRelative: boolean;
  /** The bits of the little-endian word it fills, when not every bit (A64 immediates). */
  readonly mask?: number;
}

const X86_PC_RELATIVE = new Set<number>([
  R_X86_64.R_X86_64_PC32,
  R_X86_64.R_X86_64_PLT32,
  R_X86_64.R_X86_64_PC64,
  R_X86_64.R_X86_64_GOTPCREL,
  R_X86_64.R_X86_64_GOTPCRELX,
  R_X86_64.R_X86_64_REX_GOTPCRELX,
  R_X86_64.R_X86_64_TLSGD,
  R_X86_64.R_X86_64_TLSLD,
  R_X86_64.R_X86_64_GOTTPOFF,
]);

function x86Shape(type: number): RelocationShape {
  const pcRelative = X86_PC_RELATIVE.has(type);
  switch (type) {
    case R_X86_64.R_X86_64_64:
    case R_X86_64.R_X86_64_PC64:
    case R_X86_64.R_X86_64_DTPOFF64:
    case R_X86_64.R_X86_64_TPOFF64:
    case R_X86_64.R_X86_64_SIZE64:
    case R_X86_64.R_X86_64_GOTOFF64:
      return { size: 8, pcRelative };
    case R_X86_64.R_X86_64_NONE:
      return { size: 0, pcRelative };
    default:
      return { size: 4, pcRelative };
  }
}

const R = R_AARCH64;
/**
 * A64 instruction relocations by the field they fill [AAELF64 5.7.6–5.7.12]: the opcode, registers
 * and condition of the word stay compared (`b.eq` → `b.ne` next to a CONDBR19 is a change).
 */
const A64_FIELDS = new Map<number, number>([
  [R.R_AARCH64_CALL26, 0x03ffffff],
  [R.R_AARCH64_JUMP26, 0x03ffffff],
  [R.R_AARCH64_CONDBR19, 0x00ffffe0],
  [R.R_AARCH64_LD_PREL_LO19, 0x00ffffe0],
  [R.R_AARCH64_TSTBR14, 0x0007ffe0],
  ...[
    R.R_AARCH64_ADR_PREL_LO21,
    R.R_AARCH64_ADR_PREL_PG_HI21,
    R.R_AARCH64_ADR_PREL_PG_HI21_NC,
    R.R_AARCH64_ADR_GOT_PAGE,
    R.R_AARCH64_TLSGD_ADR_PAGE21,
    R.R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21,
    R.R_AARCH64_TLSDESC_ADR_PAGE21,
  ].map((t): [number, number] => [t, 0x60ffffe0]),
  ...[
    R.R_AARCH64_ADD_ABS_LO12_NC,
    R.R_AARCH64_LDST8_ABS_LO12_NC,
    R.R_AARCH64_LDST16_ABS_LO12_NC,
    R.R_AARCH64_LDST32_ABS_LO12_NC,
    R.R_AARCH64_LDST64_ABS_LO12_NC,
    R.R_AARCH64_LDST128_ABS_LO12_NC,
    R.R_AARCH64_LD64_GOT_LO12_NC,
    R.R_AARCH64_TLSGD_ADD_LO12_NC,
    R.R_AARCH64_TLSIE_LD64_GOTTPREL_LO12_NC,
    R.R_AARCH64_TLSLE_ADD_TPREL_HI12,
    R.R_AARCH64_TLSLE_ADD_TPREL_LO12_NC,
    R.R_AARCH64_TLSDESC_LD64_LO12,
    R.R_AARCH64_TLSDESC_ADD_LO12,
  ].map((t): [number, number] => [t, 0x003ffc00]),
  ...[
    R.R_AARCH64_MOVW_UABS_G0,
    R.R_AARCH64_MOVW_UABS_G0_NC,
    R.R_AARCH64_MOVW_UABS_G1,
    R.R_AARCH64_MOVW_UABS_G1_NC,
    R.R_AARCH64_MOVW_UABS_G2,
    R.R_AARCH64_MOVW_UABS_G2_NC,
    R.R_AARCH64_MOVW_UABS_G3,
  ].map((t): [number, number] => [t, 0x001fffe0]),
  // A marker on the `blr` of a TLS descriptor call: fills nothing.
  [R.R_AARCH64_TLSDESC_CALL, 0],
]);

function aarch64Shape(type: number): RelocationShape {
  const mask = A64_FIELDS.get(type);
  if (mask !== undefined) return { size: 4, pcRelative: false, mask };
  switch (type) {
    case R.R_AARCH64_NONE:
      return { size: 0, pcRelative: false };
    case R.R_AARCH64_ABS64:
    case R.R_AARCH64_PREL64:
      return { size: 8, pcRelative: false };
    case R.R_AARCH64_ABS16:
    case R.R_AARCH64_PREL16:
      return { size: 2, pcRelative: false };
    default:
      return { size: 4, pcRelative: false };
  }
}

/** The shape of relocation `type` of a .o for machine `machine` (EM_*). */
export function relocationShape(machine: number, type: number): RelocationShape {
  return machine === EM.EM_AARCH64 ? aarch64Shape(type) : x86Shape(type);
}

/** Clear the bits of `mask` (every bit when absent) in the little-endian field at `start`. */
export function clearField(bytes: Uint8Array, start: number, size: number, mask?: number): void {
  if (mask === undefined) {
    bytes.fill(0, start, start + size);
    return;
  }
  for (let k = 0; k < size && k < 4; k++) bytes[start + k]! &= ~((mask >>> (8 * k)) & 0xff);
}

/** The value of the bits of `mask` in `raw`, shifted down (an A64 imm12 `#8` reads 8). */
export function fieldValue(raw: bigint, mask?: number): bigint {
  if (mask === undefined) return raw;
  let m = BigInt(mask >>> 0);
  let v = raw & m;
  while (m !== 0n && (m & 1n) === 0n) {
    m >>= 1n;
    v >>= 1n;
  }
  return v;
}
