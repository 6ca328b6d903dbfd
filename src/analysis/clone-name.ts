/**
 * Suffixes compilers add to a function's name when they make a specialised or split copy of it:
 * gcc `constprop` (IPA-CP), `isra` (IPA-SRA), `part` (partial inlining), `cold` (hot/cold
 * splitting), `localalias` (a local alias of a global, -fno-semantic-interposition), `lto_priv`
 * (LTO privatisation), `llvm.<hash>` (LLVM ThinLTO promoted locals), `specialized` (LLVM function
 * specialisation), `argelim`/`argprom`/`retelim` (LLVM dead-argument passes, PR #105742).
 */
const CLONE_SUFFIX =
  /\.(constprop|isra|part|cold|localalias|lto_priv|llvm|specialized|argelim|argprom|retelim)(?:\.[0-9A-Za-z_]+)?/;

export type CloneKind =
  | "constprop"
  | "isra"
  | "part"
  | "cold"
  | "localalias"
  | "lto_priv"
  | "llvm"
  | "specialized"
  | "argelim"
  | "argprom"
  | "retelim";

/** A function symbol name split into the source function's name and the clone suffixes after it. */
export interface CloneName {
  readonly base: string;
  /** In order of appearance: `f.isra.0.constprop.3` → ["isra", "constprop"]. */
  readonly kinds: readonly CloneKind[];
}

/** `scale.constprop.0` → { base: "scale", kinds: ["constprop"] }; a plain name → { base: name, kinds: [] }. */
export function parseCloneName(name: string): CloneName {
  const m = CLONE_SUFFIX.exec(name);
  if (m === null || m.index === 0) return { base: name, kinds: [] };
  const base = name.slice(0, m.index);
  const kinds: CloneKind[] = [];
  const all = new RegExp(CLONE_SUFFIX.source, "g");
  for (const x of name.slice(m.index).matchAll(all)) kinds.push(x[1] as CloneKind);
  return { base, kinds };
}
