import { REDIRECT_KINDS, type RedirectKind, type RedirectWrite } from "../analysis/site-types.js";
import { GraftError } from "../core/errors.js";

/** Version tag of the manifest format; bump on incompatible change. */
export const MANIFEST_FORMAT = "graft-patch/1";
/** Name of the ELF section in a patch object that carries the manifest. */
export const MANIFEST_SECTION = ".graft";

/** One planned write at a site, with the bytes that must be there before it (hex). */
export interface ManifestWrite {
  readonly role: RedirectWrite["role"];
  /** Link-time address in the target file (add the load bias at apply time). */
  readonly address: string;
  readonly room: number;
  /** The original bytes at [address, address+room) in the target file, lowercase hex. */
  readonly expected: string;
}

/** One function the patch replaces. */
export interface ManifestFunction {
  /** The target's function, as named in its symbol table. */
  readonly name: string;
  /** `name@file.c` when the target has several locals of that name. */
  readonly qualifiedName: string;
  /** The replacement's symbol in the patch object. */
  readonly replacement: string;
  /** Link-time address of the target's function. */
  readonly address: string;
  readonly kind: RedirectKind;
  readonly writes: readonly ManifestWrite[];
  /** Whether the original starts with endbr64 (the redirect is written after it, keeping it). */
  readonly endbr: boolean;
}

/** The `.graft` manifest: what a patch is for, what it replaces, and what it expects to find. */
export interface PatchManifest {
  readonly format: typeof MANIFEST_FORMAT;
  /** Short stable id of the patch: the first 16 hex digits of `sha256`. */
  readonly id: string;
  /** sha256 of the patch code (every section but the manifest), see patchContentHash. */
  readonly sha256: string;
  readonly target: { readonly file: string; readonly buildId: string };
  readonly functions: readonly ManifestFunction[];
  /** Ids of patches that must be applied before this one. */
  readonly dependsOn: readonly string[];
  /** The fix source file name and the compile command, for people. */
  readonly source: string;
  readonly compiler: string;
  readonly created: string;
}

/** A link-time address: hex, at most 16 digits (a 64-bit value). */
const HEX_ADDRESS = /^0x[0-9a-f]{1,16}$/;
/** No redirect needs more room than this (a 14-byte pre-entry sled is the largest). */
const MAX_ROOM = 64;

/** Parse and validate a manifest's JSON; a damaged one is PATCH_CORRUPT naming what is wrong. */
export function parseManifest(text: string, file?: string): PatchManifest {
  const fail = (what: string): GraftError =>
    new GraftError("PATCH_CORRUPT", `manifest ${what}`, file === undefined ? {} : { subject: file });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw fail("is not valid JSON");
  }
  if (typeof raw !== "object" || raw === null) throw fail("is not an object");
  const m = raw as Record<string, unknown>;
  if (m.format !== MANIFEST_FORMAT)
    throw fail(`format is ${JSON.stringify(m.format)}, expected ${MANIFEST_FORMAT}`);
  for (const key of ["id", "sha256", "source", "compiler", "created"]) {
    if (typeof m[key] !== "string") throw fail(`lacks a string "${key}"`);
  }
  const target = m.target as Record<string, unknown> | undefined;
  if (
    typeof target !== "object" ||
    target === null ||
    typeof target.buildId !== "string" ||
    typeof target.file !== "string"
  ) {
    throw fail("lacks target.file/target.buildId");
  }
  if (!Array.isArray(m.dependsOn) || !m.dependsOn.every((d) => typeof d === "string"))
    throw fail("dependsOn is not a list of ids");
  if (!/^[0-9a-f]{64}$/.test(m.sha256 as string)) throw fail("sha256 is not 64 hex digits");
  if (!/^[0-9a-f]*$/.test(target.buildId)) throw fail("target.buildId is not hex");
  if (!Array.isArray(m.functions) || m.functions.length === 0) throw fail("lists no functions");
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
  for (const f of m.functions as unknown[]) {
    if (
      !isObject(f) ||
      typeof f.name !== "string" ||
      typeof f.qualifiedName !== "string" ||
      typeof f.replacement !== "string" ||
      typeof f.address !== "string" ||
      !HEX_ADDRESS.test(f.address) ||
      !(REDIRECT_KINDS as readonly unknown[]).includes(f.kind) ||
      typeof f.endbr !== "boolean" ||
      !Array.isArray(f.writes) ||
      f.writes.length === 0
    ) {
      throw fail("has a malformed function entry");
    }
    for (const w of f.writes as unknown[]) {
      if (
        !isObject(w) ||
        (w.role !== "far" && w.role !== "entry") ||
        typeof w.address !== "string" ||
        !HEX_ADDRESS.test(w.address) ||
        typeof w.room !== "number" ||
        !Number.isInteger(w.room) ||
        w.room < 1 ||
        w.room > MAX_ROOM ||
        typeof w.expected !== "string" ||
        !/^([0-9a-f]{2})*$/.test(w.expected) ||
        w.expected.length !== 2 * w.room
      ) {
        throw fail(`has a malformed write for ${f.name}`);
      }
    }
  }
  return raw as PatchManifest;
}
