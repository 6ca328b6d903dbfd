/**
 * Symbol names as two builds of the same source agree on them. Compilers number what they invent:
 * GCC clones (`f.constprop.0`, `f.isra.1`, `f.part.2`), static locals (`count.3`), switch tables
 * (`CSWTCH.8`); clang ThinLTO promotes locals to `f.llvm.<module hash>` and the hash changes with any
 * change to the module (LLVM review D128863). The numbers carry no identity: strip them, as kpatch's
 * `kpatch_mangled_strcmp` does, and correlate what is left.
 */

/** `.llvm.<decimal hash>` anywhere in a ThinLTO-promoted name. */
const LLVM_PROMOTED = /\.llvm\.\d+/g;
/** A `.<digits>` run: clone and static-local counters. */
const NUMBER_SUFFIX = /\.\d+/g;

/** The name with ThinLTO hashes and compiler counters removed: `f.isra.3` → `f.isra`, `x.llvm.99` → `x`. */
export function canonicalName(name: string): string {
  return name.replace(LLVM_PROMOTED, "").replace(NUMBER_SUFFIX, "");
}

/** Suffixes GCC and clang give a function derived from another one (a clone or a split part). */
const CLONE_SUFFIX =
  /\.(constprop|isra|part|cold|specialized|argelim|argprom|retelim|lto_priv|localalias)(\.\d+)?/;

/**
 * The function a clone or part was made from: `f.constprop.0.isra.1` → `f`, `f.cold` → `f`;
 * `undefined` for a name that is not a clone.
 */
export function cloneOrigin(name: string): string | undefined {
  const plain = name.replace(LLVM_PROMOTED, "");
  const m = CLONE_SUFFIX.exec(plain);
  if (m === null || m.index === 0) return undefined;
  return plain.slice(0, m.index);
}

/** True for `f.cold` (GCC's hot/cold split): entered only by jumps from its parent, and jumping back. */
export function isColdPart(name: string): boolean {
  return /\.cold(\.\d+)?$/.test(name.replace(LLVM_PROMOTED, ""));
}

/**
 * Labels the assembler or compiler makes for anonymous data (`.LC0`, `.L.str.1`, clang's
 * `__unnamed_3`): never correlated by name, compared by content.
 */
export function isAnonymousLabel(name: string): boolean {
  return name === "" || name.startsWith(".L") || /^__unnamed_\d+$/.test(name);
}
