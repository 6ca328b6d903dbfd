/**
 * DWARF oracles: `readelf --debug-dump=info` (binutils 2.40) and `llvm-dwarfdump` (LLVM 14) parsed
 * back into records, so graft's reader can be compared with two independent implementations: the
 * DIE tree, abbreviation codes and attribute values from readelf; resolved code ranges (low/high pc
 * and range lists) and the decoded line-number matrix from llvm-dwarfdump.
 */
import { execFileSync } from "node:child_process";

function tool(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    maxBuffer: 1 << 30,
    stdio: ["ignore", "pipe", "ignore"],
  });
}

export interface ReadelfDie {
  readonly offset: number;
  readonly depth: number;
  readonly abbrev: number;
  readonly tag: string;
  /** DW_AT_* name → the value text as readelf prints it, stripped of the form prefix. */
  readonly attributes: ReadonlyMap<string, string>;
  readonly attributeCount: number;
}

export interface ReadelfUnit {
  readonly offset: number;
  readonly version: number;
  readonly dies: ReadelfDie[];
}

/** Strip `(indirect string, offset: 0x…): `, `(indexed string: 0x…): `, `(addr_index: 0x…): ` and the like. */
function valueText(text: string): string {
  // With -W readelf names the form first: "(data1) 7", "(strx1) (indexed string: 0x1): main".
  const raw = text.replace(/^\([a-z_0-9]+\)\s+/, "");
  const m =
    /^\((?:indirect (?:line )?string|indexed string|alt indirect string|addr_index|index|offset)[^)]*\):\s?(.*)$/.exec(
      raw,
    );
  return (m === null ? raw : m[1]!).trimEnd();
}

/** Every unit and DIE (null entries left out) of `readelf --debug-dump=info`, first copy only. */
export function readelfInfo(file: string, depth?: number): ReadelfUnit[] {
  const text = tool("readelf", [
    "--debug-dump=info",
    "-W",
    ...(depth === undefined ? [] : [`--dwarf-depth=${depth}`]),
    file,
  ]);
  // readelf goes on to a separate debug file it finds (a .dwo, or the file itself as its own link).
  const marker = "Contents of the .debug_info";
  const second = text.indexOf(marker, text.indexOf(marker) + 1);
  const lines = (second > 0 ? text.slice(0, second) : text).split("\n");
  const units: ReadelfUnit[] = [];
  let unit: { offset: number; version: number; dies: ReadelfDie[] } | undefined;
  let die:
    | {
        offset: number;
        depth: number;
        abbrev: number;
        tag: string;
        attributes: Map<string, string>;
        attributeCount: number;
      }
    | undefined;
  for (const line of lines) {
    const u = /^\s+Compilation Unit @ offset (0x[0-9a-f]+|\d+):/.exec(line);
    if (u !== null) {
      unit = { offset: Number(u[1]), version: 0, dies: [] };
      units.push(unit);
      continue;
    }
    const v = /^\s+Version:\s+(\d+)/.exec(line);
    if (v !== null && unit !== undefined && unit.version === 0) {
      unit.version = Number(v[1]);
      continue;
    }
    const d = /^\s*<(\d+)><([0-9a-f]+)>: Abbrev Number: (\d+)(?: \((\S+)\))?/.exec(line);
    if (d !== null) {
      if (d[3] === "0") {
        die = undefined;
        continue;
      }
      die = {
        depth: Number(d[1]),
        offset: Number.parseInt(d[2]!, 16),
        abbrev: Number(d[3]),
        tag: d[4] ?? "",
        attributes: new Map(),
        attributeCount: 0,
      };
      unit!.dies.push(die);
      continue;
    }
    const a = /^\s*<[0-9a-f]+>\s+(DW_AT_\w+|DW_AT_<[^>]*>)\s*:\s?(.*)$/.exec(line);
    if (a !== null && die !== undefined) {
      die.attributeCount++;
      if (!die.attributes.has(a[1]!)) die.attributes.set(a[1]!, valueText(a[2]!));
    }
  }
  return units;
}

export interface DumpRanges {
  /** DIE offset → its non-empty code ranges, for DIEs with low/high pc or DW_AT_ranges. */
  readonly ranges: ReadonlyMap<number, { low: bigint; high: bigint }[]>;
}

/** Code ranges per DIE from `llvm-dwarfdump --debug-info` (it resolves high_pc lengths and range lists). */
export function dwarfdumpRanges(file: string): Map<number, { low: bigint; high: bigint }[]> {
  const text = tool("llvm-dwarfdump", ["--debug-info", file]);
  const out = new Map<number, { low: bigint; high: bigint }[]>();
  let offset = -1;
  let low: bigint | undefined;
  let inRanges = false;
  for (const line of text.split("\n")) {
    const d = /^0x([0-9a-f]+):\s+(DW_TAG_\w+|NULL)/.exec(line);
    if (d !== null) {
      offset = Number.parseInt(d[1]!, 16);
      low = undefined;
      inRanges = false;
      continue;
    }
    const list = (): { low: bigint; high: bigint }[] => {
      const known = out.get(offset);
      if (known !== undefined) return known;
      const fresh: { low: bigint; high: bigint }[] = [];
      out.set(offset, fresh);
      return fresh;
    };
    const lp = /DW_AT_low_pc\s+\(0x([0-9a-f]+)\)/.exec(line);
    if (lp !== null) {
      low = BigInt(`0x${lp[1]}`);
      continue;
    }
    const hp = /DW_AT_high_pc\s+\(0x([0-9a-f]+)\)/.exec(line);
    if (hp !== null && low !== undefined) {
      const high = BigInt(`0x${hp[1]}`);
      if (high > low) list().push({ low, high });
      else list();
      continue;
    }
    if (/DW_AT_ranges\s+\(/.test(line)) {
      inRanges = true;
      list();
    }
    if (inRanges) {
      const r = /\[0x([0-9a-f]+), 0x([0-9a-f]+)\)/.exec(line);
      if (r !== null) {
        const a = BigInt(`0x${r[1]}`);
        const b = BigInt(`0x${r[2]}`);
        if (b > a) list().push({ low: a, high: b });
      }
      if (/\)\)\s*$/.test(line) || /DW_AT_ranges\s+\(0x[0-9a-f]+\)\s*$/.test(line)) inRanges = false;
    }
  }
  return out;
}

export interface DumpLineRow {
  readonly address: bigint;
  readonly line: number;
  readonly column: number;
  readonly file: number;
  readonly isStmt: boolean;
  readonly endSequence: boolean;
}

/** Line table offset → its rows, from `llvm-dwarfdump --debug-line`. */
export function dwarfdumpLines(file: string): Map<number, DumpLineRow[]> {
  const text = tool("llvm-dwarfdump", ["--debug-line", file]);
  const out = new Map<number, DumpLineRow[]>();
  let rows: DumpLineRow[] | undefined;
  for (const line of text.split("\n")) {
    const t = /^debug_line\[0x([0-9a-f]+)\]/.exec(line);
    if (t !== null) {
      rows = [];
      out.set(Number.parseInt(t[1]!, 16), rows);
      continue;
    }
    const r = /^0x([0-9a-f]{16})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*(.*)$/.exec(line);
    if (r !== null && rows !== undefined) {
      const flags = r[7]!.split(/\s+/);
      rows.push({
        address: BigInt(`0x${r[1]}`),
        line: Number(r[2]),
        column: Number(r[3]),
        file: Number(r[4]),
        isStmt: flags.includes("is_stmt"),
        endSequence: flags.includes("end_sequence"),
      });
    }
  }
  return out;
}
