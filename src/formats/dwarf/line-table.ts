import type { FormContext } from "./attribute.js";
import { readAttribute } from "./attribute.js";
import { DW_FORM, DW_LNCT, DW_LNE, DW_LNS } from "./constants.js";
import { DwarfCursor, type DwarfSection, dwarfError } from "./dwarf-cursor.js";

/** A file of a line table's header. */
export interface LineFile {
  readonly name: string;
  /** Index into `directories`. */
  readonly directoryIndex: number;
}

/** One row of the line number matrix [DWARF5 6.2.2]. */
export interface LineRow {
  readonly address: bigint;
  /** As the program says it: index into `files` (DWARF 5 from 0, DWARF 2–4 from 1). */
  readonly file: number;
  readonly line: number;
  readonly column: number;
  readonly isStmt: boolean;
  readonly discriminator: number;
  /** The first address after a sequence; the row's other fields mean nothing. */
  readonly endSequence: boolean;
}

/** A line number program [DWARF5 6.2.4]: its header tables and the rows it produces. */
export interface LineTable {
  readonly offset: number;
  readonly version: number;
  /** Index 0 is the compilation directory (DWARF 5 lists it; for 2–4 it is the unit's DW_AT_comp_dir). */
  readonly directories: readonly string[];
  /** Indexed as the program indexes them: for DWARF 2–4 entry 0 is the unit's primary file name. */
  readonly files: readonly LineFile[];
  readonly rows: readonly LineRow[];
}

/** What the unit tells the line table: its DW_AT_name and DW_AT_comp_dir (entry 0 before DWARF 5). */
export interface LineTableUnit {
  readonly name: string;
  readonly compDir: string;
  readonly addressSize: number;
  readonly context: FormContext;
}

const MAX_ROWS = 1 << 26;

/** Parse the line number program at `offset` of `.debug_line`, header and rows. */
export function parseLineTable(section: DwarfSection, offset: bigint, unit: LineTableUnit): LineTable {
  if (offset < 0n || offset >= BigInt(section.bytes.length))
    throw dwarfError(
      section,
      "DWARF_CORRUPT",
      `line table offset 0x${offset.toString(16)} is outside the section (${section.bytes.length} bytes)`,
      offset,
    );
  const c = new DwarfCursor(section, Number(offset));
  const start = c.pos;
  const { length, offsetSize } = c.initialLength("line table");
  const end = c.pos + length;
  if (end > section.bytes.length)
    throw dwarfError(section, "DWARF_TRUNCATED", `line table of ${length} bytes runs past the end`, start);
  c.end = end;
  const version = c.u16("line table version");
  if (version < 2 || version > 5)
    throw dwarfError(section, "DWARF_UNSUPPORTED", `line table version ${version}`, start + 4);
  if (version >= 5) {
    c.u8("line table address size");
    c.u8("line table segment selector size");
  }
  const headerLength = Number(c.sized(offsetSize, "line table header length"));
  const programStart = c.pos + headerLength;
  if (programStart > end) throw c.corrupt(`line table header length ${headerLength} runs past the table`);
  const minInstLength = c.u8("minimum_instruction_length");
  const maxOps = version >= 4 ? c.u8("maximum_operations_per_instruction") : 1;
  if (maxOps === 0) throw c.corrupt("maximum_operations_per_instruction is 0", c.pos - 1);
  const defaultIsStmt = c.u8("default_is_stmt") !== 0;
  const lineBase = (c.u8("line_base") << 24) >> 24;
  const lineRange = c.u8("line_range");
  if (lineRange === 0) throw c.corrupt("line_range is 0", c.pos - 1);
  const opcodeBase = c.u8("opcode_base");
  const argCounts = [0];
  for (let i = 1; i < opcodeBase; i++) argCounts.push(c.u8("standard_opcode_lengths"));

  const directories: string[] = [];
  const files: LineFile[] = [];
  const ctx: FormContext = { ...unit.context, offsetSize };
  if (version >= 5) {
    for (const entry of entryList(c, ctx, "directory")) directories.push(entry.path);
    for (const entry of entryList(c, ctx, "file"))
      files.push({ name: entry.path, directoryIndex: entry.dir });
  } else {
    directories.push(unit.compDir);
    for (;;) {
      const dir = c.cstring("include_directories entry");
      if (dir === "") break;
      directories.push(dir);
    }
    files.push({ name: unit.name, directoryIndex: 0 });
    for (;;) {
      const name = c.cstring("file_names entry");
      if (name === "") break;
      const dir = c.uleb("file directory index");
      c.skipLeb("file modification time");
      c.skipLeb("file length");
      files.push({ name, directoryIndex: dir });
    }
  }

  c.pos = programStart;
  const rows: LineRow[] = [];
  let address = 0n;
  let opIndex = 0;
  let file = 1;
  let line = 1;
  let column = 0;
  let isStmt = defaultIsStmt;
  let discriminator = 0;
  const reset = (): void => {
    address = 0n;
    opIndex = 0;
    file = 1;
    line = 1;
    column = 0;
    isStmt = defaultIsStmt;
    discriminator = 0;
  };
  const emit = (endSequence: boolean): void => {
    if (rows.length >= MAX_ROWS) throw c.corrupt("line table has implausibly many rows");
    rows.push({ address, file, line, column, isStmt, discriminator, endSequence });
    discriminator = 0;
  };
  // [DWARF5 6.2.5.1]: with maximum_operations_per_instruction 1 (every x86 and Arm producer) the
  // op_index stays 0 and this is plain address arithmetic.
  const advance = (operationAdvance: bigint): void => {
    if (maxOps === 1) address = BigInt.asUintN(64, address + BigInt(minInstLength) * operationAdvance);
    else {
      const total = BigInt(opIndex) + operationAdvance;
      address = BigInt.asUintN(64, address + BigInt(minInstLength) * (total / BigInt(maxOps)));
      opIndex = Number(total % BigInt(maxOps));
    }
  };
  while (c.pos < end) {
    const opcode = c.u8("line program opcode");
    if (opcode >= opcodeBase) {
      const adjusted = opcode - opcodeBase;
      advance(BigInt(Math.floor(adjusted / lineRange)));
      line += lineBase + (adjusted % lineRange);
      emit(false);
      continue;
    }
    switch (opcode) {
      case 0: {
        const len = c.uleb("extended opcode length");
        const after = c.pos + len;
        if (len === 0 || after > end) throw c.corrupt(`extended opcode length ${len}`);
        const sub = c.u8("extended opcode");
        if (sub === DW_LNE.DW_LNE_end_sequence) {
          emit(true);
          reset();
        } else if (sub === DW_LNE.DW_LNE_set_address) {
          address = c.sized(len - 1, "DW_LNE_set_address operand");
          opIndex = 0;
        } else if (sub === DW_LNE.DW_LNE_set_discriminator) discriminator = c.uleb("discriminator");
        // DW_LNE_define_file (DWARF 2–4, unused by current producers) and vendor opcodes are skipped.
        c.pos = after;
        break;
      }
      case DW_LNS.DW_LNS_copy:
        emit(false);
        break;
      case DW_LNS.DW_LNS_advance_pc:
        advance(c.ulebBig("DW_LNS_advance_pc operand"));
        break;
      case DW_LNS.DW_LNS_advance_line:
        line += Number(c.sleb("DW_LNS_advance_line operand"));
        break;
      case DW_LNS.DW_LNS_set_file:
        file = c.uleb("DW_LNS_set_file operand");
        break;
      case DW_LNS.DW_LNS_set_column:
        column = c.uleb("DW_LNS_set_column operand");
        break;
      case DW_LNS.DW_LNS_negate_stmt:
        isStmt = !isStmt;
        break;
      case DW_LNS.DW_LNS_set_basic_block:
      case DW_LNS.DW_LNS_set_prologue_end:
      case DW_LNS.DW_LNS_set_epilogue_begin:
        break;
      case DW_LNS.DW_LNS_const_add_pc:
        advance(BigInt(Math.floor((255 - opcodeBase) / lineRange)));
        break;
      case DW_LNS.DW_LNS_fixed_advance_pc:
        address = BigInt.asUintN(64, address + BigInt(c.u16("DW_LNS_fixed_advance_pc operand")));
        opIndex = 0;
        break;
      default:
        // DW_LNS_set_isa and opcodes newer than this reader: skip the operands the header declares.
        for (let i = 0; i < argCounts[opcode]!; i++) c.skipLeb("standard opcode operand");
    }
  }
  return { offset: start, version, directories, files, rows };
}

/** A DWARF 5 directory or file entry list: a format (content type, form pairs), then the entries. */
function entryList(c: DwarfCursor, ctx: FormContext, what: string): { path: string; dir: number }[] {
  const formatCount = c.u8(`${what}_entry_format_count`);
  const format: [number, number][] = [];
  for (let i = 0; i < formatCount; i++)
    format.push([c.uleb(`${what} entry content type`), c.uleb(`${what} entry form`)]);
  const count = c.uleb(`${what}s_count`);
  if (count > c.remaining) throw c.corrupt(`${what}s_count ${count} exceeds the header`);
  const out: { path: string; dir: number }[] = [];
  for (let i = 0; i < count; i++) {
    let path = "";
    let dir = 0;
    for (const [type, form] of format) {
      if (form === DW_FORM.DW_FORM_implicit_const)
        throw c.corrupt(`${what} entry uses DW_FORM_implicit_const`);
      const v = readAttribute(c, type, form, 0n, ctx);
      if (type === DW_LNCT.DW_LNCT_path && v.class === "string") path = v.value;
      else if (type === DW_LNCT.DW_LNCT_directory_index && v.class === "constant") dir = Number(v.value);
    }
    out.push({ path, dir });
  }
  return out;
}

/** The path of file `index` as the table names it (directory joined unless the name is absolute). */
export function lineFilePath(table: LineTable, index: number): string | undefined {
  const f = table.files[index];
  if (f === undefined) return undefined;
  if (f.name.startsWith("/")) return f.name;
  const dir = table.directories[f.directoryIndex];
  return dir === undefined || dir === "" ? f.name : `${dir}/${f.name}`;
}
