import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { type BuildDiff, diffBuilds } from "../analysis/diff/diff-builds.js";
import { parseProducer } from "../analysis/producer-flags.js";
import { getLiveArchForMachine } from "../arch/index.js";
import { GraftError, RefusedError } from "../core/errors.js";
import { readWithDebugFile } from "../formats/dwarf/debug-link-file.js";
import { readDwarf } from "../formats/dwarf/dwarf.js";
import { readElfFile } from "../formats/elf/elf-file.js";
import { type BuiltPatch, packagePatchObject } from "./build-patch-file.js";
import { diffPatchObject } from "./diff-patch-object.js";

export interface BuildFromBuildsOptions {
  /** The original translation unit, compiled (.o) as the target was. */
  readonly orig: string;
  /** The same translation unit with the fix, compiled with the same flags. */
  readonly patched: string;
  readonly target: string;
  readonly output: string;
  readonly after?: readonly string[];
  /** Leave out functions whose only difference is immediates (a `__LINE__` shift). */
  readonly skipLineOnly?: boolean;
}

/** A patch built from two builds, and what it holds. */
export interface BuiltDiffPatch extends BuiltPatch {
  readonly replaces: readonly { readonly name: string; readonly why: string }[];
  readonly sections: readonly string[];
  readonly binds: readonly string[];
  readonly diff: BuildDiff;
}

/**
 * `graft build --orig A.o --patched B.o --target BIN`: diff the two builds of one translation unit
 * and make the changed and impacted functions (with the new functions and data they need) a patch
 * for BIN, bound to BIN's own symbols for everything else (diff-patch-object.ts).
 */
export function buildPatchFromBuilds(options: BuildFromBuildsOptions): BuiltDiffPatch {
  const orig = readElfFile(options.orig);
  const patched = readElfFile(options.patched);
  const arch = getLiveArchForMachine(orig.header.e_machine, options.orig);
  const diff = diffBuilds(orig, patched, arch, { origLabel: options.orig, patchedLabel: options.patched });
  const object = diffPatchObject(
    diff,
    options.skipLineOnly === undefined ? {} : { skipLineOnly: options.skipLineOnly },
  );
  const dir = mkdtempSync(join(tmpdir(), "graft-diff-build-"));
  try {
    const path = join(dir, "patch.o");
    writeFileSync(path, object.bytes);
    const built = packagePatchObject({
      object: path,
      target: options.target,
      output: options.output,
      source: `${basename(options.orig)} → ${basename(options.patched)}`,
      subject: options.patched,
      wholeUnit: true,
      compiler: `graft diff ${basename(options.orig)} ${basename(options.patched)}`,
      ...(options.after === undefined ? {} : { after: options.after }),
    });
    return { ...built, replaces: object.replaces, sections: object.sections, binds: object.binds, diff };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface BuildFromSourceDiffOptions {
  /** A unified diff (`git diff`, `diff -u`), applied with `patch -p1`. */
  readonly diff: string;
  /** The source tree the target was built from (left untouched: graft works on copies). */
  readonly src: string;
  readonly target: string;
  readonly output: string;
  /** gcc or clang; default: what built the target. */
  readonly compiler?: string;
  /** Compile flags; default: the ones recorded in the DW_AT_producer of the target's unit for the touched file, else -O2. */
  readonly cflags?: readonly string[];
  readonly after?: readonly string[];
  readonly skipLineOnly?: boolean;
}

/** Translation units a unified diff touches (`+++ b/path` lines of C files). */
export function touchedTranslationUnits(diffText: string): string[] {
  const out = new Set<string>();
  for (const line of diffText.split("\n")) {
    const m = /^\+\+\+ (?:[^/\s]+\/)?(\S+)/.exec(line);
    if (m !== null && /\.c$/.test(m[1]!) && m[1] !== "/dev/null") out.add(m[1]!);
  }
  return [...out];
}

/**
 * The compile flags recorded in the DW_AT_producer of the target's compile unit for `file` (the
 * touched translation unit; any C unit when none matches): gcc records its switches by default
 * (`-grecord-gcc-switches`, on with -g), clang only with -grecord-command-line. Read through the
 * DWARF reader (a stripped target: from its separate debug file). Debug, dependency and output
 * options are dropped; undefined when the target has no DWARF or no compiler's unit.
 */
export function producerFlags(
  targetPath: string,
  file?: string,
): { compiler: "gcc" | "clang"; flags: string[]; unit: string | undefined } | undefined {
  const elf = readElfFile(targetPath);
  const dwarf = readDwarf(readWithDebugFile(elf).debugElf ?? elf);
  if (dwarf === undefined) return undefined;
  const units = dwarf
    .units()
    .filter((u) => !u.isTypeUnit)
    .map((u) => dwarf.compileUnit(u))
    .flatMap((cu) => {
      const p = cu.producer === undefined ? undefined : parseProducer(cu.producer);
      return p === undefined || p.compiler === "other" ? [] : [{ cu, p }];
    });
  const same = (a: string, b: string): boolean => a === b || a.endsWith(`/${b}`) || b.endsWith(`/${a}`);
  const chosen =
    (file === undefined ? undefined : units.find((u) => u.cu.name !== undefined && same(u.cu.name, file))) ??
    units.find((u) => u.cu.name !== undefined && /\.c$/.test(u.cu.name)) ??
    units[0];
  if (chosen === undefined || chosen.p.compiler === "other") return undefined;
  const flags = chosen.p.flags.filter(
    (f) => !/^-(g|M|o$|c$|dump|fdebug-prefix-map|ffile-prefix-map|fmacro-prefix-map)/.test(f),
  );
  return { compiler: chosen.p.compiler, flags, unit: chosen.cu.name };
}

/**
 * `graft build --diff fix.patch --src DIR --target BIN`: copy DIR twice, apply the diff to one copy,
 * rebuild only the C files the diff touches in both (same flags, plus -ffunction-sections
 * -fdata-sections so every function and variable has a section of its own), and build the patch
 * from the one translation unit whose code changed.
 */
export function buildPatchFromSourceDiff(options: BuildFromSourceDiffOptions): BuiltDiffPatch {
  const diffText = readFileSync(options.diff, "utf8");
  const units = touchedTranslationUnits(diffText);
  if (units.length === 0)
    throw new GraftError("USAGE", "the diff touches no C file", {
      subject: options.diff,
      hint: "pass a unified diff of .c files (git diff, diff -u)",
    });
  // Each touched unit is rebuilt as the target's unit of that file was (--cflags overrides).
  const buildOf = (unit: string): { compiler: string; flags: readonly string[] } => {
    const recorded = options.cflags === undefined ? producerFlags(options.target, unit) : undefined;
    return {
      compiler: options.compiler ?? recorded?.compiler ?? "gcc",
      flags:
        options.cflags ?? (recorded !== undefined && recorded.flags.length > 0 ? recorded.flags : ["-O2"]),
    };
  };
  const dir = mkdtempSync(join(tmpdir(), "graft-diff-src-"));
  try {
    const origTree = join(dir, "orig");
    const patchedTree = join(dir, "patched");
    cpSync(options.src, origTree, { recursive: true });
    cpSync(options.src, patchedTree, { recursive: true });
    try {
      execFileSync("patch", ["-p1", "--batch", "--silent", "-i", resolve(options.diff)], {
        cwd: patchedTree,
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (e) {
      const out = String((e as { stdout?: Buffer }).stdout ?? "").trim();
      throw new GraftError(
        "USAGE",
        `the diff does not apply to ${options.src}${out === "" ? "" : `: ${out.split("\n")[0]}`}`,
        {
          subject: options.diff,
          hint: "the diff must apply with patch -p1 in the source directory",
        },
      );
    }
    const candidates: { orig: string; patched: string }[] = [];
    const unchanged: string[] = [];
    for (const unit of units) {
      const { compiler, flags } = buildOf(unit);
      const objects = [origTree, patchedTree].map((tree, k) => {
        const source = join(tree, unit);
        if (!existsSync(source)) return undefined;
        const object = join(dir, `${k === 0 ? "orig" : "patched"}-${unit.replace(/\W/g, "_")}.o`);
        const args = [
          ...flags,
          "-c",
          "-ffunction-sections",
          "-fdata-sections",
          "-I",
          dirname(source),
          "-o",
          object,
          unit,
        ];
        try {
          execFileSync(compiler, args, { cwd: tree, stdio: ["ignore", "ignore", "pipe"] });
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOENT")
            throw new GraftError("NO_COMPILER", `${compiler} is not installed`, { subject: compiler });
          const err =
            String((e as { stderr?: Buffer }).stderr ?? "")
              .split("\n")
              .find((l) => /error/.test(l)) ?? "";
          throw new GraftError(
            "COMPILE_FAILED",
            `${compiler} could not compile the ${k === 0 ? "original" : "patched"} ${unit}${err === "" ? "" : `: ${err}`}`,
            {
              subject: unit,
              hint: "pass the target's compile flags with --cflags or after --",
            },
          );
        }
        return object;
      });
      const [a, b] = objects;
      if (a === undefined || b === undefined)
        throw new RefusedError("NOT_PATCHABLE", [
          `the diff adds or removes the file ${unit}: a patch replaces functions of existing translation units`,
        ]);
      const orig = readElfFile(a);
      const arch = getLiveArchForMachine(orig.header.e_machine, a);
      const d = diffBuilds(orig, readElfFile(b), arch);
      if (d.functions.changed.length + d.functions.lineOnly.length + d.refusals.length === 0) {
        unchanged.push(unit);
        continue;
      }
      candidates.push({ orig: a, patched: b });
    }
    if (candidates.length === 0)
      throw new RefusedError("NOT_PATCHABLE", [
        `the diff changes no code: ${unchanged.join(", ")} compile to the same functions`,
      ]);
    if (candidates.length > 1)
      throw new RefusedError(
        "NOT_PATCHABLE",
        [`the diff changes code in ${candidates.length} translation units; a patch covers one`],
        {
          hint: "split the diff per .c file and build one patch for each (--after to order them)",
        },
      );
    const { orig, patched } = candidates[0]!;
    return buildPatchFromBuilds({
      orig,
      patched,
      target: options.target,
      output: options.output,
      ...(options.after === undefined ? {} : { after: options.after }),
      ...(options.skipLineOnly === undefined ? {} : { skipLineOnly: options.skipLineOnly }),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
