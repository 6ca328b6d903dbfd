import type { Unit } from "../analysis/diff/build-units.js";
import type { BuildDiff } from "../analysis/diff/diff-builds.js";
import { isColdPart } from "../analysis/diff/normalize-name.js";
import { RefusedError } from "../core/errors.js";
import { R_X86_64, SHF, SHN, SHT, STB, STT } from "../formats/elf/constants.js";
import type { Section } from "../formats/elf/sections.js";
import {
  type OutputRelocation,
  type OutputSection,
  type OutputSymbol,
  writeRelocatable,
} from "./relocatable-writer.js";

/** The patch object made from a diff, and what it replaces and carries. */
export interface DiffPatchObject {
  readonly bytes: Uint8Array;
  /** Original functions the patch replaces (name or name@file.c), each with why. */
  readonly replaces: readonly { readonly name: string; readonly why: string }[];
  /** Sections of the patched build copied into the patch. */
  readonly sections: readonly string[];
  /** Symbols of the target that the patch's code binds to. */
  readonly binds: readonly string[];
}

const PC_RELATIVE = new Set<number>([
  R_X86_64.R_X86_64_PC32,
  R_X86_64.R_X86_64_PLT32,
  R_X86_64.R_X86_64_GOTPCREL,
  R_X86_64.R_X86_64_GOTPCRELX,
  R_X86_64.R_X86_64_REX_GOTPCRELX,
]);

/**
 * Turn the patched build of a diff (a .o) into a patch object for `graft apply`: the sections of
 * every function to replace (changed, `__LINE__`-only unless `skipLineOnly`, impacted), plus what
 * they need that the target lacks (new functions and data, string literals, switch tables, a changed
 * constant object, a `.cold` part), each section whole. Every other reference becomes an undefined
 * symbol bound to the running target's own function or variable (`name@file.c` for a static, named
 * as in the original build), so no existing state is ever copied. A replaced function is a global
 * symbol named after the original; everything else in the patch is local.
 */
export function diffPatchObject(diff: BuildDiff, options: { skipLineOnly?: boolean } = {}): DiffPatchObject {
  const p = diff.views.patched;
  const o = diff.views.orig;
  const elf = p.elf;
  if (!elf.isRelocatable || !o.elf.isRelocatable)
    throw new RefusedError(
      "NOT_PATCHABLE",
      [
        "a patch is built from two .o files (the original and patched translation unit), not from linked files",
      ],
      { hint: "pass the .o files of the changed translation unit, or use graft build --diff" },
    );
  if (diff.refusals.length > 0)
    throw new RefusedError("NOT_PATCHABLE", [...diff.refusals], {
      hint: "graft diff lists them; see docs/architecture.md",
    });

  const twin = new Map<Unit, Unit>(); // patched → orig
  const twinOfOrig = new Map<Unit, Unit>();
  for (const pair of diff.pairs) {
    twin.set(pair.patched, pair.orig);
    twinOfOrig.set(pair.orig, pair.patched);
  }
  const origFile = o.files.length === 1 ? o.files[0] : undefined;
  const bindName = (u: Unit): string => {
    const file = u.file ?? origFile;
    return u.local && file !== undefined ? `${u.name}@${file}` : u.name;
  };

  // What to replace: by original name, with why.
  const replace = new Map<Unit, string>(); // patched unit → why
  const wanted: [string, string][] = [
    ...diff.functions.changed.map((f): [string, string] => [f.name, "changed"]),
    ...(options.skipLineOnly === true
      ? []
      : diff.functions.lineOnly.map((f): [string, string] => [
          f.name,
          "only immediates changed (__LINE__?)",
        ])),
    ...diff.impacted.map((f): [string, string] => [f.name, f.reasons.join("; ")]),
  ];
  for (const [name, why] of wanted) {
    if (isColdPart(name)) continue;
    const orig = o.units.find((u) => u.kind === "function" && (u.name === name || u.aliases.includes(name)));
    const patched = orig === undefined ? undefined : twinOfOrig.get(orig);
    if (patched !== undefined && !replace.has(patched)) replace.set(patched, why);
  }
  if (replace.size === 0) {
    const skipped = options.skipLineOnly === true && diff.functions.lineOnly.length > 0;
    throw new RefusedError(
      "NOT_PATCHABLE",
      [
        skipped
          ? `only immediates changed (${diff.functions.lineOnly.map((f) => f.name).join(", ")}) and --skip-line-only leaves them out: nothing to replace`
          : "the two builds have no function to replace: nothing changed",
      ],
      { hint: "graft diff shows what differs" },
    );
  }
  // Instruction ends, for section-relative PC-relative references (`.bss.x - 5` is x + 0).
  const insnEnd = new Map<bigint, bigint>();
  const decoded = new Set<number>();
  const decodeSection = (s: Section): void => {
    if (decoded.has(s.index) || (s.sh_flags & BigInt(SHF.SHF_EXECINSTR)) === 0n) return;
    decoded.add(s.index);
    const base = elf.sectionAddress(s);
    for (const ins of p.arch.decodeFields(elf.sectionBytes(s), base))
      for (let i = 0; i < ins.length; i++)
        insnEnd.set(base + BigInt(ins.offset + i), base + BigInt(ins.offset + ins.length));
  };

  const symbols = elf.symbols();
  const kept = new Set<number>();
  const queue: Section[] = [];
  const keep = (s: Section): void => {
    if (kept.has(s.index)) return;
    kept.add(s.index);
    queue.push(s);
  };
  for (const u of replace.keys()) keep(u.section);

  const unitsIn = (s: Section): Unit[] => p.units.filter((u) => u.section.index === s.index);
  const copiable = (s: Section): boolean => {
    // A writable section may be copied only when it holds nothing the target already has.
    if ((s.sh_flags & BigInt(SHF.SHF_WRITE)) === 0n) return true;
    return unitsIn(s).every((u) => !twin.has(u));
  };
  const changedData = new Set(diff.data.changed.map((d) => d.patchedName));
  const bindings = new Map<string, number>(); // name → output symbol index
  const outSymbols: OutputSymbol[] = [];
  type Pending = {
    section: Section;
    r: { r_offset: bigint; type: number; symbolIndex: number; addend: bigint };
  };
  const pending: Pending[] = [];
  const refusals: string[] = [];
  const rels = elf.relocationSections();

  // Decide, reference by reference, what is copied and what binds to the target.
  type Decision = { kind: "internal" } | { kind: "bind"; name: string; addend: bigint };
  const decisions = new Map<Pending, Decision>();
  while (queue.length > 0) {
    const s = queue.shift()!;
    decodeSection(s);
    for (const rs of rels) {
      if (rs.target?.index !== s.index) continue;
      for (const r of rs.entries) {
        const item: Pending = { section: s, r };
        pending.push(item);
        const sym = symbols[r.symbolIndex];
        if (sym === undefined || sym.st_shndx === SHN.SHN_UNDEF || sym.st_shndx >= SHN.SHN_LORESERVE) {
          decisions.set(item, { kind: "internal" });
          continue;
        }
        const symSection = elf.sections[sym.st_shndx]!;
        const inSection = (sym.type === STT.STT_SECTION ? 0n : sym.st_value) + r.addend;
        const place = elf.sectionAddress(s) + r.r_offset;
        const adjust = PC_RELATIVE.has(r.type) ? (insnEnd.get(place) ?? place + 4n) - place : 0n;
        const address = elf.sectionAddress(symSection) + inSection + adjust;
        const named =
          sym.type === STT.STT_SECTION
            ? undefined
            : p.units.find((u) => u.address === elf.sectionAddress(symSection) + sym.st_value);
        const u = named ?? p.unitAt(address);
        if (kept.has(symSection.index)) {
          decisions.set(item, { kind: "internal" });
          continue;
        }
        const existing = u === undefined ? undefined : twin.get(u);
        const mustCopy =
          u === undefined ||
          existing === undefined ||
          isColdPart(u.name) ||
          (u.kind === "data" && changedData.has(u.name) && !u.writable);
        if (mustCopy) {
          if (!copiable(symSection)) {
            refusals.push(
              u === undefined
                ? `the patched code refers to unnamed data in ${symSection.name}, a writable section that also holds existing variables`
                : `new ${u.name} shares the writable section ${symSection.name} with existing variables`,
            );
            continue;
          }
          keep(symSection);
          decisions.set(item, { kind: "internal" });
          continue;
        }
        decisions.set(item, { kind: "bind", name: bindName(existing), addend: inSection - u.offset });
      }
    }
  }
  if (refusals.length > 0)
    throw new RefusedError("NOT_PATCHABLE", refusals, {
      hint: "compile the patched translation unit with -ffunction-sections -fdata-sections",
    });

  // Output sections, in input order.
  const keptSections = elf.sections.filter((s) => kept.has(s.index));
  const outIndex = new Map<number, number>();
  const outSections: OutputSection[] = keptSections.map((s, k) => {
    outIndex.set(s.index, k + 1);
    return {
      name: s.name,
      type: s.sh_type === SHT.SHT_NOBITS ? SHT.SHT_NOBITS : SHT.SHT_PROGBITS,
      flags: s.sh_flags & ~BigInt(SHF.SHF_GROUP),
      align: s.sh_addralign,
      bytes: s.sh_type === SHT.SHT_NOBITS ? new Uint8Array(0) : elf.sectionBytes(s),
      size: s.sh_size,
      entsize: s.sh_entsize,
    };
  });

  // Symbols: the file, a section symbol per section, the input's symbols in kept sections (replaced
  // functions global under the original's name, the rest local), then the bindings.
  const fileName = origFile ?? p.files[0];
  if (fileName !== undefined)
    outSymbols.push({
      name: fileName,
      type: STT.STT_FILE,
      bind: STB.STB_LOCAL,
      section: SHN.SHN_ABS,
      value: 0n,
      size: 0n,
    });
  const sectionSymbol = new Map<number, number>();
  for (const s of keptSections) {
    sectionSymbol.set(s.index, outSymbols.length);
    outSymbols.push({
      name: "",
      type: STT.STT_SECTION,
      bind: STB.STB_LOCAL,
      section: outIndex.get(s.index)!,
      value: 0n,
      size: 0n,
    });
  }
  const symbolMap = new Map<number, number>();
  const replaces: { name: string; why: string }[] = [];
  for (const sym of symbols) {
    if (sym.index === 0 || sym.type === STT.STT_SECTION || sym.type === STT.STT_FILE) continue;
    if (sym.st_shndx === SHN.SHN_UNDEF || !kept.has(sym.st_shndx)) continue;
    const address = elf.sectionAddress(elf.sections[sym.st_shndx]!) + sym.st_value;
    const u = [...replace.keys()].find(
      (x) => x.address === address && (x.name === sym.name || x.aliases.includes(sym.name)),
    );
    if (u !== undefined && sym.name === u.name) {
      const orig = twin.get(u)!;
      const name = bindName(orig);
      replaces.push({ name, why: replace.get(u)! });
      symbolMap.set(sym.index, outSymbols.length);
      outSymbols.push({
        name,
        type: STT.STT_FUNC,
        bind: STB.STB_GLOBAL,
        section: outIndex.get(sym.st_shndx)!,
        value: sym.st_value,
        size: sym.st_size,
      });
      continue;
    }
    symbolMap.set(sym.index, outSymbols.length);
    outSymbols.push({
      // Locals keep their names, apart from any target symbol the patch binds to (`name@file`).
      name: sym.name === "" ? "" : `${sym.name}.graft`,
      type: sym.type,
      bind: STB.STB_LOCAL,
      section: outIndex.get(sym.st_shndx)!,
      value: sym.st_value,
      size: sym.st_size,
    });
  }
  const undefinedSymbol = (name: string): number => {
    const have = bindings.get(name);
    if (have !== undefined) return have;
    const at = outSymbols.length;
    outSymbols.push({
      name,
      type: STT.STT_NOTYPE,
      bind: STB.STB_GLOBAL,
      section: SHN.SHN_UNDEF,
      value: 0n,
      size: 0n,
    });
    bindings.set(name, at);
    return at;
  };

  const outRelocations = new Map<number, OutputRelocation[]>();
  for (const item of pending) {
    const { r, section } = item;
    const d = decisions.get(item)!;
    const sym = symbols[r.symbolIndex]!;
    let symbol: number;
    let addend = r.addend;
    if (d.kind === "bind") {
      symbol = undefinedSymbol(d.name);
      addend = d.addend;
    } else if (sym.st_shndx === SHN.SHN_UNDEF) symbol = undefinedSymbol(sym.name);
    else if (sym.type === STT.STT_SECTION) symbol = sectionSymbol.get(sym.st_shndx)!;
    else symbol = symbolMap.get(sym.index) ?? sectionSymbol.get(sym.st_shndx)!;
    if (
      d.kind === "internal" &&
      sym.type !== STT.STT_SECTION &&
      !symbolMap.has(sym.index) &&
      sym.st_shndx !== SHN.SHN_UNDEF
    )
      addend += sym.st_value;
    const list = outRelocations.get(outIndex.get(section.index)!) ?? [];
    list.push({ offset: r.r_offset, type: r.type, symbol, addend });
    outRelocations.set(outIndex.get(section.index)!, list);
  }
  const bytes = writeRelocatable(elf.header.e_machine, outSections, outSymbols, outRelocations);
  return {
    bytes,
    replaces,
    sections: keptSections.map((s) => s.name),
    binds: [...bindings.keys()].sort(),
  };
}
