/**
 * `.eh_frame` call frame information: CIE/FDE records, the `.eh_frame_hdr` binary search table, and
 * the CFA program that says, at a given PC, where the caller's frame is (the CFA) and where the
 * caller's registers were saved [LSB 5.0 "Exception Frames"; DWARF5 6.4 "Call Frame Information"].
 * x86-64 DWARF register numbers: 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp, 8–15 r8–r15,
 * 16 the return address [psABI x86-64 3.6.2, figure 3.36]. Pure: bytes in, rules out.
 */
import { FormatError } from "../../core/errors.js";

/** DW_EH_PE_* pointer encodings [LSB 5.0 10.5 "DWARF Exception Header Encoding"]. */
export const DW_EH_PE = {
  absptr: 0x00,
  uleb128: 0x01,
  udata2: 0x02,
  udata4: 0x03,
  udata8: 0x04,
  sleb128: 0x09,
  sdata2: 0x0a,
  sdata4: 0x0b,
  sdata8: 0x0c,
  pcrel: 0x10,
  datarel: 0x30,
  indirect: 0x80,
  omit: 0xff,
} as const;

/** One Common Information Entry: what every FDE that points to it shares. */
export interface Cie {
  readonly offset: number;
  readonly codeAlign: bigint;
  readonly dataAlign: bigint;
  readonly returnRegister: number;
  readonly augmentation: string;
  /** Encoding of the FDE's PC range ('R' augmentation), absptr without. */
  readonly fdeEncoding: number;
  /** 'S': a signal trampoline's frame (the PC is not a return address). */
  readonly signalFrame: boolean;
  readonly instructions: Uint8Array;
}

/** One Frame Description Entry: the CFA program of one PC range. */
export interface Fde {
  readonly offset: number;
  readonly cie: Cie;
  readonly pcBegin: bigint;
  readonly pcEnd: bigint;
  readonly instructions: Uint8Array;
}

/** Where a register of the caller is, at one PC. */
export type RegisterRule =
  | { readonly kind: "undefined" }
  | { readonly kind: "same" }
  /** Saved at CFA + offset. */
  | { readonly kind: "offset"; readonly offset: bigint }
  /** Its value is CFA + offset. */
  | { readonly kind: "val-offset"; readonly offset: bigint }
  /** Held in another register. */
  | { readonly kind: "register"; readonly register: number }
  /** A DWARF expression (not evaluated here: the unwinder stops). */
  | { readonly kind: "expression" };

/** The CFA and register rules in force at one PC (a row of the CFI table). */
export interface CfaRow {
  /** CFA = register + offset, or an expression (unsupported by the unwinder). */
  readonly cfa:
    | { readonly kind: "register"; readonly register: number; readonly offset: bigint }
    | { readonly kind: "expression" };
  readonly registers: ReadonlyMap<number, RegisterRule>;
}

/** Sequential little-endian reader with LEB128 and DW_EH_PE pointers. */
class Cursor {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    private readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(n: number): void {
    if (this.pos + n > this.bytes.length || this.pos < 0)
      throw new FormatError("ELF_CORRUPT", `${this.what}: record runs past the end of the section`, {
        offset: BigInt(this.pos),
      });
  }
  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  uleb(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.u8();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) return result;
      if (shift > 70n) throw new FormatError("ELF_CORRUPT", `${this.what}: LEB128 too long`);
    }
  }
  sleb(): bigint {
    let result = 0n;
    let shift = 0n;
    let b: number;
    do {
      b = this.u8();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (shift > 70n) throw new FormatError("ELF_CORRUPT", `${this.what}: LEB128 too long`);
    } while ((b & 0x80) !== 0);
    if ((b & 0x40) !== 0) result -= 1n << shift;
    return result;
  }
  /** Skip a block (`c.pos += c.uleb()` would add to the position from before the length was read). */
  skip(n: number): void {
    this.pos += n;
  }
  cstring(): string {
    let s = "";
    for (let c = this.u8(); c !== 0; c = this.u8()) s += String.fromCharCode(c);
    return s;
  }
  /** A DW_EH_PE-encoded pointer; `here` is the address of the field's first byte (for pcrel). */
  pointer(encoding: number, sectionAddress: bigint, dataBase: bigint): bigint {
    const fieldAddress = sectionAddress + BigInt(this.pos);
    let v: bigint;
    switch (encoding & 0x0f) {
      case DW_EH_PE.absptr:
        v = this.u64();
        break;
      case DW_EH_PE.uleb128:
        v = this.uleb();
        break;
      case DW_EH_PE.udata2:
        v = BigInt(this.u16());
        break;
      case DW_EH_PE.udata4:
        v = BigInt(this.u32());
        break;
      case DW_EH_PE.udata8:
        v = this.u64();
        break;
      case DW_EH_PE.sleb128:
        v = this.sleb();
        break;
      case DW_EH_PE.sdata2:
        v = BigInt((this.u16() << 16) >> 16);
        break;
      case DW_EH_PE.sdata4:
        v = BigInt(this.i32());
        break;
      case DW_EH_PE.sdata8:
        v = BigInt.asIntN(64, this.u64());
        break;
      default:
        throw new FormatError("ELF_CORRUPT", `${this.what}: pointer encoding 0x${encoding.toString(16)}`);
    }
    const application = encoding & 0x70;
    if (application === DW_EH_PE.pcrel) v += fieldAddress;
    else if (application === DW_EH_PE.datarel) v += dataBase;
    else if (application !== 0)
      throw new FormatError("ELF_CORRUPT", `${this.what}: pointer application 0x${application.toString(16)}`);
    return BigInt.asUintN(64, v);
  }
}

/**
 * The `.eh_frame` of one file, searchable by PC. Addresses are link-time (add the load bias).
 * Lookup uses `.eh_frame_hdr`'s sorted table when given (what the unwinder of libgcc uses), else a
 * table built by walking every record once.
 */
export class EhFrame {
  private readonly cies = new Map<number, Cie>();
  private table: { pc: bigint; fde: number }[] | undefined;

  /**
   * @param bytes the section's contents; `address` its sh_addr.
   * @param hdr `.eh_frame_hdr` contents and address, when the file has one.
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly address: bigint,
    private readonly hdr?: { readonly bytes: Uint8Array; readonly address: bigint },
  ) {}

  /** The FDE whose range holds `pc`, if any. */
  findFde(pc: bigint): Fde | undefined {
    const table = this.searchTable();
    let lo = 0;
    let hi = table.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (table[mid]!.pc <= pc) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return undefined;
    const fde = this.fdeAt(table[found]!.fde);
    return fde !== undefined && pc >= fde.pcBegin && pc < fde.pcEnd ? fde : undefined;
  }

  /** Every FDE, in section order. */
  fdes(): Fde[] {
    const out: Fde[] = [];
    for (let pos = 0; pos + 4 <= this.bytes.length; ) {
      const c = new Cursor(this.bytes, pos, ".eh_frame");
      const length = c.u32();
      if (length === 0) break; // terminator
      if (length === 0xffffffff) throw new FormatError("ELF_CORRUPT", ".eh_frame: 64-bit DWARF record");
      const id = c.u32();
      if (id !== 0) {
        const fde = this.fdeAt(pos);
        if (fde !== undefined) out.push(fde);
      }
      pos += 4 + length;
    }
    return out;
  }

  private searchTable(): { pc: bigint; fde: number }[] {
    if (this.table !== undefined) return this.table;
    this.table = this.hdrTable() ?? this.fdes().map((f) => ({ pc: f.pcBegin, fde: f.offset }));
    this.table.sort((a, b) => (a.pc < b.pc ? -1 : a.pc > b.pc ? 1 : 0));
    return this.table;
  }

  /** `.eh_frame_hdr`: version 1, eh_frame_ptr, fde_count, then (initial PC, FDE address) pairs. */
  private hdrTable(): { pc: bigint; fde: number }[] | undefined {
    if (this.hdr === undefined || this.hdr.bytes.length < 4) return undefined;
    const c = new Cursor(this.hdr.bytes, 0, ".eh_frame_hdr");
    if (c.u8() !== 1) return undefined;
    const ptrEnc = c.u8();
    const countEnc = c.u8();
    const tableEnc = c.u8();
    if (ptrEnc === DW_EH_PE.omit || countEnc === DW_EH_PE.omit || tableEnc === DW_EH_PE.omit)
      return undefined;
    c.pointer(ptrEnc, this.hdr.address, this.hdr.address);
    const count = Number(c.pointer(countEnc, this.hdr.address, this.hdr.address));
    if (!Number.isSafeInteger(count) || count * 8 > this.hdr.bytes.length) return undefined;
    const out: { pc: bigint; fde: number }[] = [];
    for (let i = 0; i < count; i++) {
      const pc = c.pointer(tableEnc, this.hdr.address, this.hdr.address);
      const fde = c.pointer(tableEnc, this.hdr.address, this.hdr.address);
      out.push({ pc, fde: Number(fde - this.address) });
    }
    return out;
  }

  private fdeAt(pos: number): Fde | undefined {
    const c = new Cursor(this.bytes, pos, ".eh_frame");
    const length = c.u32();
    if (length === 0 || length === 0xffffffff) return undefined;
    const end = pos + 4 + length;
    const idPos = c.pos;
    const id = c.u32();
    if (id === 0) return undefined; // a CIE
    const cie = this.cieAt(idPos - id);
    const pcBegin = c.pointer(cie.fdeEncoding, this.address, 0n);
    const range = c.pointer(cie.fdeEncoding & 0x0f, this.address, 0n);
    if (cie.augmentation.startsWith("z")) {
      const skip = Number(c.uleb());
      c.pos += skip;
    }
    if (c.pos > end) throw new FormatError("ELF_CORRUPT", ".eh_frame: FDE header past its end");
    return {
      offset: pos,
      cie,
      pcBegin,
      pcEnd: pcBegin + range,
      instructions: this.bytes.subarray(c.pos, end),
    };
  }

  private cieAt(pos: number): Cie {
    const known = this.cies.get(pos);
    if (known !== undefined) return known;
    const c = new Cursor(this.bytes, pos, ".eh_frame CIE");
    const length = c.u32();
    if (length === 0 || length === 0xffffffff)
      throw new FormatError("ELF_CORRUPT", ".eh_frame: FDE points to no CIE", { offset: BigInt(pos) });
    const end = pos + 4 + length;
    if (c.u32() !== 0)
      throw new FormatError("ELF_CORRUPT", ".eh_frame: FDE points to an FDE", { offset: BigInt(pos) });
    c.u8(); // version 1 or 3
    const augmentation = c.cstring();
    const codeAlign = c.uleb();
    const dataAlign = c.sleb();
    const returnRegister = Number(c.uleb());
    let fdeEncoding: number = DW_EH_PE.absptr;
    let signalFrame = false;
    if (augmentation.startsWith("z")) {
      const dataLength = Number(c.uleb());
      const dataEnd = c.pos + dataLength;
      for (const a of augmentation.slice(1)) {
        if (a === "R") fdeEncoding = c.u8();
        else if (a === "L") c.u8();
        else if (a === "P") {
          const enc = c.u8();
          c.pointer(enc & 0x7f, this.address, 0n);
        } else if (a === "S") signalFrame = true;
        else break; // unknown: the length lets us skip the rest
      }
      c.pos = dataEnd;
    }
    const cie: Cie = {
      offset: pos,
      codeAlign,
      dataAlign,
      returnRegister,
      augmentation,
      fdeEncoding,
      signalFrame,
      instructions: this.bytes.subarray(c.pos, end),
    };
    this.cies.set(pos, cie);
    return cie;
  }
}

interface MutableRow {
  cfa: CfaRow["cfa"];
  registers: Map<number, RegisterRule>;
}

/**
 * Run the CIE's initial instructions and the FDE's program up to `pc` (a link-time address inside the
 * FDE): the rules in force there. Implements the opcodes x86-64 compilers and glibc's hand-written
 * assembly emit: advance_loc*, def_cfa*, offset*, restore*, same_value, undefined, register,
 * remember/restore_state, val_offset, GNU_args_size; expressions are recorded as such.
 */
export function cfaRowAt(fde: Fde, pc: bigint): CfaRow {
  const cie = fde.cie;
  const row: MutableRow = { cfa: { kind: "register", register: 7, offset: 8n }, registers: new Map() };
  run(cie.instructions, cie, row, undefined, fde.pcBegin, pc, undefined);
  const initial = new Map(row.registers);
  run(fde.instructions, cie, row, initial, fde.pcBegin, pc, fde);
  return row;
}

function run(
  code: Uint8Array,
  cie: Cie,
  row: MutableRow,
  initial: Map<number, RegisterRule> | undefined,
  start: bigint,
  pc: bigint,
  fde: Fde | undefined,
): void {
  const c = new Cursor(code, 0, ".eh_frame CFA program");
  const stack: MutableRow[] = [];
  let loc = start;
  const restore = (reg: number): void => {
    const r = initial?.get(reg);
    if (r === undefined) row.registers.delete(reg);
    else row.registers.set(reg, r);
  };
  const setCfa = (register: number | undefined, offset: bigint | undefined): void => {
    const old = row.cfa.kind === "register" ? row.cfa : { register: 7, offset: 0n };
    row.cfa = { kind: "register", register: register ?? old.register, offset: offset ?? old.offset };
  };
  while (c.pos < code.length) {
    const op = c.u8();
    const high = op & 0xc0;
    const low = op & 0x3f;
    if (high === 0x40) {
      loc += BigInt(low) * cie.codeAlign;
      if (loc > pc) return;
      continue;
    }
    if (high === 0x80) {
      row.registers.set(low, { kind: "offset", offset: c.uleb() * cie.dataAlign });
      continue;
    }
    if (high === 0xc0) {
      restore(low);
      continue;
    }
    switch (op) {
      case 0x00: // nop
        break;
      case 0x01: // set_loc
        loc = c.pointer(cie.fdeEncoding, 0n, 0n);
        if (loc > pc) return;
        break;
      case 0x02:
        loc += BigInt(c.u8()) * cie.codeAlign;
        if (loc > pc) return;
        break;
      case 0x03:
        loc += BigInt(c.u16()) * cie.codeAlign;
        if (loc > pc) return;
        break;
      case 0x04:
        loc += BigInt(c.u32()) * cie.codeAlign;
        if (loc > pc) return;
        break;
      case 0x05: {
        const reg = Number(c.uleb());
        row.registers.set(reg, { kind: "offset", offset: c.uleb() * cie.dataAlign });
        break;
      }
      case 0x06:
        restore(Number(c.uleb()));
        break;
      case 0x07:
        row.registers.set(Number(c.uleb()), { kind: "undefined" });
        break;
      case 0x08:
        row.registers.set(Number(c.uleb()), { kind: "same" });
        break;
      case 0x09: {
        const reg = Number(c.uleb());
        row.registers.set(reg, { kind: "register", register: Number(c.uleb()) });
        break;
      }
      case 0x0a:
        stack.push({ cfa: row.cfa, registers: new Map(row.registers) });
        break;
      case 0x0b: {
        const saved = stack.pop();
        if (saved === undefined)
          throw new FormatError("ELF_CORRUPT", "DW_CFA_restore_state with nothing remembered");
        // The CFA is not part of the remembered state in GCC's unwinder either way it is emitted; both
        // GCC and LLVM restore it, so do the same.
        row.cfa = saved.cfa;
        row.registers = saved.registers;
        break;
      }
      case 0x0c: {
        const reg = Number(c.uleb());
        setCfa(reg, c.uleb());
        break;
      }
      case 0x0d:
        setCfa(Number(c.uleb()), undefined);
        break;
      case 0x0e:
        setCfa(undefined, c.uleb());
        break;
      case 0x0f: // def_cfa_expression
        c.skip(Number(c.uleb()));
        row.cfa = { kind: "expression" };
        break;
      case 0x10: {
        // expression
        const reg = Number(c.uleb());
        c.skip(Number(c.uleb()));
        row.registers.set(reg, { kind: "expression" });
        break;
      }
      case 0x11: {
        const reg = Number(c.uleb());
        row.registers.set(reg, { kind: "offset", offset: c.sleb() * cie.dataAlign });
        break;
      }
      case 0x12: {
        const reg = Number(c.uleb());
        setCfa(reg, c.sleb() * cie.dataAlign);
        break;
      }
      case 0x13:
        setCfa(undefined, c.sleb() * cie.dataAlign);
        break;
      case 0x14: {
        const reg = Number(c.uleb());
        row.registers.set(reg, { kind: "val-offset", offset: c.uleb() * cie.dataAlign });
        break;
      }
      case 0x15: {
        const reg = Number(c.uleb());
        row.registers.set(reg, { kind: "val-offset", offset: c.sleb() * cie.dataAlign });
        break;
      }
      case 0x16: {
        const reg = Number(c.uleb());
        c.skip(Number(c.uleb()));
        row.registers.set(reg, { kind: "expression" });
        break;
      }
      case 0x2e: // GNU_args_size
        c.uleb();
        break;
      case 0x2f: {
        const reg = Number(c.uleb());
        row.registers.set(reg, { kind: "offset", offset: -c.uleb() * cie.dataAlign });
        break;
      }
      default:
        throw new FormatError(
          "ELF_CORRUPT",
          `unknown CFA instruction 0x${op.toString(16)} in the ${fde === undefined ? "CIE" : "FDE"} at .eh_frame+0x${(fde?.offset ?? cie.offset).toString(16)}`,
        );
    }
  }
}
