import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { checkElf } from "../analysis/check.js";
import { ClobberedRegisters } from "../analysis/clobbered-registers.js";
import { listFunctions } from "../analysis/functions.js";
import { SymbolIndex } from "../analysis/symbol-index.js";
import type { Arch } from "../arch/arch.js";
import { getLiveArchForMachine } from "../arch/index.js";
import { GraftError, RefusedError } from "../core/errors.js";
import { hex, hexString } from "../core/hex.js";
import { R_X86_64, SHN, STB, STT } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import { parseElf } from "../formats/elf/elf.js";
import { readElfFile } from "../formats/elf/elf-file.js";
import { findSystemLibrary } from "./find-library.js";
import { patchContentHash } from "./patch-content-hash.js";
import { readPatchFile } from "./patch-file.js";
import {
  MANIFEST_FORMAT,
  MANIFEST_SECTION,
  type ManifestFunction,
  type PatchManifest,
} from "./patch-manifest.js";

export interface BuildPatchOptions {
  /** The C file holding the fix. */
  readonly fix: string;
  /** The binary (executable or library) that running processes were started from. */
  readonly target: string;
  readonly output: string;
  /** gcc or clang; default: what the target's .comment says it was built with, else gcc. */
  readonly compiler?: string;
  readonly extraFlags?: readonly string[];
  /** Patch files that must be applied before this one. */
  readonly after?: readonly string[];
}

export interface BuiltPatch {
  readonly output: string;
  readonly manifest: PatchManifest;
  /** Undefined symbols of the fix and where they were found at build time. */
  readonly imports: readonly { name: string; from: string }[];
  readonly codeBytes: number;
  /** Risks graft cannot rule out, for the operator to judge (e.g. -fipa-ra register assumptions). */
  readonly warnings: readonly string[];
}

/** Directory of graft.h, shipped with the package. */
const INCLUDE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../include");

/** Flags every fix is compiled with, and why. */
const FIX_FLAGS = [
  "-c",
  "-O2",
  "-fPIC", // globals through the GOT graft builds: the patch may sit anywhere within rel32 of the target
  "-fno-common",
  "-ffunction-sections",
  "-fdata-sections",
  "-fno-asynchronous-unwind-tables", // .eh_frame would need registering with the target's unwinder
  "-fno-unwind-tables",
  "-fno-stack-protector", // the canary read is TLS-relative and fine, but keep the fix's code minimal
  "-g0",
];

function compilerOf(target: Elf): string {
  const comment = target.findSection(".comment");
  const text = comment === undefined ? "" : new TextDecoder().decode(target.sectionBytes(comment));
  // gcc-built crt objects put "GCC: (…)" into every binary; only clang writes "clang version".
  return /clang version/.test(text) ? "clang" : "gcc";
}

/**
 * `graft build fix.c --target BIN`: compile the fix into an ET_REL patch with a `.graft` manifest.
 * Every global function the fix defines replaces the target's function of that name (`name@file.c`
 * for one of several statics); its redirect site, expected bytes and the target build-id go into the
 * manifest. Undefined symbols must exist in the target or a library it links.
 */
export function buildPatchFile(options: BuildPatchOptions): BuiltPatch {
  const target = readElfFile(options.target);
  const compiler = options.compiler ?? compilerOf(target);
  const dir = mkdtempSync(join(tmpdir(), "graft-build-"));
  try {
    const object = join(dir, "fix.o");
    const args = [...FIX_FLAGS, "-I", INCLUDE_DIR, ...(options.extraFlags ?? []), "-o", object, options.fix];
    try {
      execFileSync(compiler, args, { stdio: ["ignore", "inherit", "inherit"] });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT")
        throw new GraftError("NO_COMPILER", `${compiler} is not installed`, { subject: compiler });
      throw new GraftError("COMPILE_FAILED", `${compiler} could not compile the fix`, {
        subject: options.fix,
      });
    }
    const compilerLine = `${compiler} ${args.filter((a) => a !== object && a !== options.fix && a !== INCLUDE_DIR && a !== "-I" && a !== "-o").join(" ")}`;
    return packagePatchObject({
      object,
      target: options.target,
      output: options.output,
      source: basename(options.fix),
      subject: options.fix,
      compiler: compilerLine,
      ...(options.after === undefined ? {} : { after: options.after }),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What packagePatchObject needs: a compiled patch object and what it is for. */
export interface PackagePatchOptions {
  /** The ET_REL holding the replacement functions (global symbols named after the target's). */
  readonly object: string;
  readonly target: string;
  readonly output: string;
  /** For the manifest and messages: the fix's file name and the compile command. */
  readonly source: string;
  readonly subject: string;
  readonly compiler: string;
  readonly after?: readonly string[];
  /**
   * Skip the -fipa-ra register warnings: a patch cut from a rebuild of the whole translation unit
   * already holds every caller whose code depends on what the new callee clobbers (the compiler
   * rebuilt them, graft diff saw them change, the patch replaces them).
   */
  readonly wholeUnit?: boolean;
}

/**
 * Turn a patch object into a patch file: every global function replaces the target's function of
 * that name (its site and expected bytes go into the manifest), undefined symbols are checked
 * against the target and its libraries, and the `.graft` manifest is attached. Shared by
 * `graft build FIX.c` and the patches built from two builds (build-diff-patch-file.ts).
 */
export function packagePatchObject(options: PackagePatchOptions): BuiltPatch {
  const target = readElfFile(options.target);
  const buildId = target.buildId();
  if (buildId === undefined) {
    throw new GraftError(
      "ELF_UNSUPPORTED",
      "the target has no GNU build-id, so a patch could not be matched to processes",
      { subject: options.target, hint: "link the target with -Wl,--build-id" },
    );
  }
  const arch = getLiveArchForMachine(target.header.e_machine, options.target);
  const dir = mkdtempSync(join(tmpdir(), "graft-package-"));
  try {
    // Hash the object as objcopy writes it, not as the compiler did: clang shares one string table
    // between section and symbol names and objcopy splits it in two, which changes what the hash
    // covers. A plain copy first makes attaching the manifest below leave the hashed sections alone.
    const normalized = join(dir, "fix.copy.o");
    objcopy([options.object, normalized], normalized, "objcopy failed to copy the compiled fix");
    const fixElf = parseElf(readFileSync(normalized), { file: options.subject });
    const functions = replacedFunctions(fixElf, target, arch, options.subject);
    const imports = checkImports(fixElf, target, options.target);
    const dependsOn = (options.after ?? []).map((p) => readPatchFile(p).manifest.id);
    const sha256 = patchContentHash(fixElf);
    const manifest: PatchManifest = {
      format: MANIFEST_FORMAT,
      id: sha256.slice(0, 16),
      sha256,
      target: { file: basename(options.target), buildId },
      functions,
      dependsOn,
      source: options.source,
      compiler: options.compiler,
      created: new Date().toISOString(),
    };
    const manifestPath = join(dir, "manifest.json");
    writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
    objcopy(
      [
        "--add-section",
        `${MANIFEST_SECTION}=${manifestPath}`,
        "--set-section-flags",
        `${MANIFEST_SECTION}=readonly,contents`,
        normalized,
        options.output,
      ],
      options.output,
      "objcopy failed to attach the manifest",
    );
    // The hash must survive attaching the manifest; check now rather than at apply time.
    const written = readPatchFile(options.output);
    if (written.manifest.sha256 !== sha256)
      throw new GraftError("INTERNAL", "patch hash changed when the manifest was attached");
    const codeBytes = fixElf.sections
      .filter((s) => (s.sh_flags & 2n) !== 0n)
      .reduce((n, s) => n + Number(s.sh_size), 0);
    const warnings = options.wholeUnit === true ? [] : registerWarnings(fixElf, target, arch, functions);
    return { output: options.output, manifest, imports, codeBytes, warnings };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Run objcopy (binutils); a missing or failing objcopy is reported against `subject`. */
function objcopy(args: readonly string[], subject: string, failure: string): void {
  try {
    execFileSync("objcopy", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new GraftError("NO_COMPILER", code === "ENOENT" ? "objcopy is not installed" : failure, {
      subject,
      hint: "install binutils",
    });
  }
}

function replacedFunctions(fix: Elf, target: Elf, arch: Arch, subject: string): ManifestFunction[] {
  const index = new SymbolIndex(target);
  const names = fix
    .symbols()
    .filter((s) => s.type === STT.STT_FUNC && s.bind !== STB.STB_LOCAL && s.st_shndx !== SHN.SHN_UNDEF)
    .map((s) => s.name);
  if (names.length === 0) {
    throw new GraftError("USAGE", "the fix defines no global function, so it replaces nothing", {
      subject,
      hint: "define the fixed function with the same name as in the target (not static)",
    });
  }
  let report: ReturnType<typeof checkElf> | undefined;
  return names.map((name) => {
    const sym = index.find(name);
    if (sym?.type === STT.STT_GNU_IFUNC) {
      // Calls reach an IFUNC's implementation through GOT/IRELATIVE slots, never its resolver; and
      // redirecting the resolver would hand ld.so the fix as a resolver the next time it binds.
      throw new RefusedError(
        "NOT_PATCHABLE",
        [`${name} is an IFUNC: its symbol is the resolver, not the code that runs`],
        {
          subject: name,
          hint: "replace the implementation the resolver picks (e.g. __strlen_avx2) instead",
        },
      );
    }
    if (sym === undefined || sym.type !== STT.STT_FUNC) {
      throw new RefusedError(
        "UNKNOWN_SYMBOL",
        [`the fix defines ${name}, but the target has no function of that name`],
        {
          subject: name,
          hint: "make new helper functions static; name replaced statics as name@file.c",
        },
      );
    }
    report ??= checkElf(target, arch);
    const fn = report.functions.find((f) => f.address === sym.address);
    if (fn === undefined) throw new GraftError("INTERNAL", `no analysis for ${name} at ${hex(sym.address)}`);
    const site = fn.sites.find((s) => s.kind === fn.verdict.best && s.problems.length === 0);
    if (site === undefined) {
      throw new RefusedError("NOT_PATCHABLE", [`${name} has no usable patch site`, ...fn.verdict.reasons], {
        subject: name,
        hint: "rebuild the target with the flags from graft cflags",
      });
    }
    const plain = name.includes("@") ? name.slice(0, name.lastIndexOf("@")) : name;
    return {
      name: plain,
      qualifiedName: sym.local && sym.file !== undefined ? `${plain}@${sym.file}` : plain,
      replacement: name,
      address: hex(sym.address),
      kind: site.kind,
      endbr: fn.endbr,
      writes: site.writes.map((w) => {
        const bytes = target.findBytesAt(w.address, w.room);
        if (bytes === undefined)
          throw new GraftError("INTERNAL", `site bytes at ${hex(w.address)} are not in the file`);
        return { role: w.role, address: hex(w.address), room: w.room, expected: hexString(bytes) };
      }),
    };
  });
}

/** Where each undefined symbol of the fix would come from; refuses the ones found nowhere. */
function checkImports(fix: Elf, target: Elf, targetPath: string): { name: string; from: string }[] {
  const index = new SymbolIndex(target);
  const libraries: { path: string; index: SymbolIndex }[] = [];
  for (const soname of target.neededLibraries()) {
    const path = findSystemLibrary(soname);
    if (path !== undefined) libraries.push({ path, index: new SymbolIndex(readElfFile(path)) });
  }
  const out: { name: string; from: string }[] = [];
  const missing: string[] = [];
  for (const s of fix.symbols()) {
    if (s.st_shndx !== SHN.SHN_UNDEF || s.name === "" || s.name === "_GLOBAL_OFFSET_TABLE_") continue;
    const inTarget = index.find(s.name);
    if (inTarget !== undefined) {
      out.push({ name: s.name, from: basename(targetPath) });
      continue;
    }
    const lib = libraries.find((l) => l.index.find(s.name) !== undefined);
    if (lib !== undefined) out.push({ name: s.name, from: basename(lib.path) });
    else missing.push(s.name);
  }
  if (missing.length > 0) {
    throw new RefusedError(
      "UNKNOWN_SYMBOL",
      missing.map(
        (n) => `${n} is not defined by the fix, ${basename(targetPath)}, or the libraries it links`,
      ),
      {
        subject: missing.join(", "),
      },
    );
  }
  return out;
}

/**
 * gcc -O2 (-fipa-ra) lets a caller keep values in caller-saved registers across a call to a function
 * that it knows leaves them alone. A replacement compiled on its own may change them and corrupt such
 * callers. -flive-patching=inline-clone (or -fno-ipa-ra) turns that off, and clang does not do it; the
 * producer strings in .debug_str tell. Otherwise warn for each register the fix changes that the
 * original (and everything it calls) never did.
 */
function registerWarnings(
  fix: Elf,
  target: Elf,
  arch: Arch,
  functions: readonly ManifestFunction[],
): string[] {
  const text = (name: string): string => {
    const s = target.findSection(name);
    return s === undefined ? "" : new TextDecoder("latin1").decode(target.sectionBytes(s));
  };
  if (/clang version/.test(text(".comment"))) return [];
  if (/-flive-patching|-fno-ipa-ra/.test(text(".debug_str"))) return [];
  const clobbers = new ClobberedRegisters(target, arch, listFunctions(target, arch));
  const index = new SymbolIndex(target);
  const warnings: string[] = [];
  for (const fn of functions) {
    const original = new Set(clobbers.of(BigInt(fn.address)));
    if (original.size === arch.callerSavedRegisters.length) continue;
    const sym = fix.symbols().find((x) => x.name === fn.replacement && x.st_shndx !== SHN.SHN_UNDEF);
    const section = sym === undefined ? undefined : fix.sections[sym.st_shndx];
    if (sym === undefined || section === undefined) continue;
    const code = fix.sectionBytes(section).subarray(Number(sym.st_value), Number(sym.st_value + sym.st_size));
    const w = arch.registerWrites(code, 0n);
    const changed = new Set(w.clobbered);
    // Calls out of the fix: to a target function, what it changes; to anything else, everything.
    const calls = fixCallees(fix, sym.st_shndx, sym.st_value, sym.st_value + sym.st_size);
    if (w.opaque || w.callees.length > calls.length)
      for (const r of arch.callerSavedRegisters) changed.add(r);
    for (const name of calls) {
      const callee = index.find(name);
      const set =
        callee !== undefined && callee.type === STT.STT_FUNC
          ? clobbers.of(callee.address)
          : arch.callerSavedRegisters;
      for (const r of set) changed.add(r);
    }
    const extra = arch.callerSavedRegisters.filter((r) => changed.has(r) && !original.has(r));
    if (extra.length > 0) {
      const shown = extra.filter((r) => !/^(xmm|k$|st$)/.test(r)).map((r) => `%${r}`);
      if (extra.some((r) => /^(xmm|k$|st$)/.test(r))) shown.push("vector/x87 registers");
      warnings.push(
        `${fn.qualifiedName}: the fix may change ${shown.join(", ")}, which the original never does; gcc -fipa-ra callers may keep values there (rebuild the target with -flive-patching=inline-clone, or check the callers)`,
      );
    }
  }
  return warnings;
}

/** Names of the symbols that PLT32/PC32 relocations in [start, end) of section `shndx` call or reach. */
function fixCallees(fix: Elf, shndx: number, start: bigint, end: bigint): string[] {
  const names: string[] = [];
  const symbols = fix.symbols();
  for (const rs of fix.relocationSections()) {
    if (rs.target?.index !== shndx) continue;
    for (const r of rs.entries) {
      if (r.r_offset < start || r.r_offset >= end || r.type !== R_X86_64.R_X86_64_PLT32) continue;
      const name = symbols[r.symbolIndex]?.name;
      if (name) names.push(name);
    }
  }
  return names;
}
