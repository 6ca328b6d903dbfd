/**
 * The fuzzer behind bench/fuzz (100,000 cases) and its short form in test/scenarios/fuzz: damaged
 * patches and target files, fed to graft exactly as an operator's mistake or an attacker would:
 *
 * - `bytes`: 1–4 bytes of a real patch file flipped or set to boundary values, anywhere.
 * - `rehashed`: a field of the ELF header, a section header, a symbol or a relocation of the patch set
 *   to a boundary value, then the manifest's sha256 recomputed so the damage gets past the content
 *   hash into layout, linking and placement (the hash is integrity, not authenticity).
 * - `manifest`: one JSON value of the manifest deleted, retyped, emptied or replaced by an extreme
 *   (compact JSON padded to the section's size, so the object stays a valid ELF).
 * - `target`: a damaged copy of the target executable through the ELF reader and `graft check`'s
 *   analysis.
 *
 * Patches go through `applyPatch(pid, file, { dryRun: true })` against a live process. Every case
 * must return or throw a GraftError with a code of the closed set; anything else is a crash of graft.
 * A fixed-seed PRNG makes every run try the same cases.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkElf } from "../../src/analysis/check.js";
import { getArchForMachine } from "../../src/arch/index.js";
import { ERROR_CODES } from "../../src/core/error-codes.js";
import { GraftError } from "../../src/core/errors.js";
import { parseElf } from "../../src/formats/elf/elf.js";
import { applyPatch } from "../../src/live/apply-patch.js";
import { patchContentHash } from "../../src/live/patch-content-hash.js";
import { MANIFEST_SECTION } from "../../src/live/patch-manifest.js";

export const FUZZ_KINDS = ["bytes", "rehashed", "manifest", "target"] as const;
export type FuzzKind = (typeof FUZZ_KINDS)[number];

export interface FuzzTally {
  cases: number;
  perKind: Record<FuzzKind, number>;
  /** Dry runs that planned a full apply from a damaged patch (the damage did not matter). */
  accepted: number;
  /** Error codes seen, with counts. */
  codes: Record<string, number>;
  /** Anything that was not a GraftError with a known code: `kind #case: message`. */
  crashes: string[];
  slowestMs: number;
  totalMs: number;
}

/** mulberry32: small, fast, the same sequence everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BOUNDARY = [
  0n,
  1n,
  2n,
  0x7fn,
  0x80n,
  0xffn,
  0x7fffn,
  0xffffn,
  0x7fffffffn,
  0xffffffffn,
  (1n << 63n) - 1n,
  (1n << 64n) - 1n,
];

function writeUint(bytes: Uint8Array, at: number, width: number, value: bigint): void {
  for (let i = 0; i < width && at + i < bytes.length; i++)
    bytes[at + i] = Number((value >> BigInt(8 * i)) & 0xffn);
}

/** Byte ranges of a patch object worth aiming at: header, section headers, symbols, relocations. */
interface Targets {
  readonly fields: readonly { start: number; size: number; entry: number }[];
  readonly sha256: string;
  readonly manifest: { offset: number; size: number; json: unknown };
}

function aim(patch: Uint8Array): Targets {
  const elf = parseElf(patch);
  const fields: { start: number; size: number; entry: number }[] = [{ start: 0, size: 64, entry: 64 }];
  fields.push({ start: Number(elf.header.e_shoff), size: 64 * elf.header.e_shnum, entry: 64 });
  for (const s of elf.sections) {
    if (s.sh_type === 2 || s.sh_type === 4)
      fields.push({ start: Number(s.sh_offset), size: Number(s.sh_size), entry: 24 });
  }
  const section = elf.findSection(MANIFEST_SECTION)!;
  const text = new TextDecoder().decode(elf.sectionBytes(section));
  const json = JSON.parse(text) as { sha256: string };
  return {
    fields,
    sha256: json.sha256,
    manifest: { offset: Number(section.sh_offset), size: Number(section.sh_size), json },
  };
}

function mutateBytes(patch: Uint8Array, rand: () => number): Uint8Array {
  const out = patch.slice();
  const n = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rand() * out.length);
    out[at] =
      rand() < 0.5
        ? out[at]! ^ (1 << Math.floor(rand() * 8))
        : Number(BOUNDARY[Math.floor(rand() * 6)]! & 0xffn);
  }
  return out;
}

function mutateRehashed(patch: Uint8Array, t: Targets, rand: () => number): Uint8Array {
  const out = patch.slice();
  const f = t.fields[Math.floor(rand() * t.fields.length)]!;
  const entries = Math.max(1, Math.floor(f.size / f.entry));
  const widths = [1, 2, 4, 8];
  const width = widths[Math.floor(rand() * widths.length)]!;
  const at =
    f.start + Math.floor(rand() * entries) * f.entry + Math.floor(rand() * Math.max(1, f.entry - width + 1));
  const value =
    rand() < 0.75 ? BOUNDARY[Math.floor(rand() * BOUNDARY.length)]! : BigInt(Math.floor(rand() * 2 ** 32));
  writeUint(out, at, width, value);
  // Recompute the content hash when the damaged object still parses, so the damage reaches the linker.
  try {
    const hash = patchContentHash(parseElf(out));
    const old = Buffer.from(t.sha256);
    const where = Buffer.from(out.buffer, out.byteOffset, out.byteLength).indexOf(old);
    if (where >= 0) out.set(Buffer.from(hash), where);
  } catch {}
  return out;
}

/** Every path to a value in a JSON tree. */
function paths(
  value: unknown,
  prefix: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(value)) for (const [i, v] of value.entries()) paths(v, [...prefix, i], out);
  else if (value !== null && typeof value === "object")
    for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  return out;
}

const REPLACEMENTS: readonly unknown[] = [
  null,
  0,
  -1,
  1.5,
  2 ** 53,
  1e308,
  "",
  "0x",
  "zz",
  "0xffffffffffffffff",
  "0x-1",
  "90",
  "x".repeat(300),
  true,
  [],
  {},
  [{}],
  { address: "0x0" },
  "far",
  "entry",
  "sled",
  "compute",
  "graft-patch/1",
];

function mutateManifest(patch: Uint8Array, t: Targets, rand: () => number): Uint8Array {
  const json = structuredClone(t.manifest.json) as Record<string, unknown>;
  const all = paths(json).filter((p) => p.length > 0);
  const path = all[Math.floor(rand() * all.length)]!;
  // biome-ignore lint/suspicious/noExplicitAny: walking an arbitrary JSON tree to damage it
  let parent: any = json;
  for (const k of path.slice(0, -1)) parent = parent[k];
  const key = path.at(-1)!;
  const r = rand();
  if (r < 0.2) {
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
  } else if (r < 0.3 && Array.isArray(parent)) parent.push(structuredClone(parent[Number(key)]));
  else if (r < 0.5 && typeof parent[key] === "string" && parent[key].length > 0) {
    const s: string = parent[key];
    const i = Math.floor(rand() * s.length);
    parent[key] = s.slice(0, i) + "0123456789abcdefx-"[Math.floor(rand() * 18)] + s.slice(i + 1);
  } else if (r < 0.6 && typeof parent[key] === "number")
    parent[key] = parent[key] + Math.floor(rand() * 33) - 16;
  else parent[key] = structuredClone(REPLACEMENTS[Math.floor(rand() * REPLACEMENTS.length)]);
  let text = JSON.stringify(json);
  if (text.length > t.manifest.size) text = text.slice(0, t.manifest.size); // too long: a cut manifest
  const out = patch.slice();
  out.set(Buffer.from(text.padEnd(t.manifest.size, " ")), t.manifest.offset);
  return out;
}

function mutateTarget(exe: Uint8Array, rand: () => number): Uint8Array {
  const out = exe.slice();
  const n = 1 + Math.floor(rand() * 8);
  // Headers and tables sit at the start and the end of a linked file: aim there half the time.
  for (let i = 0; i < n; i++) {
    const r = rand();
    const at =
      r < 0.25
        ? Math.floor(rand() * 4096)
        : r < 0.5
          ? out.length - 1 - Math.floor(rand() * 8192)
          : Math.floor(rand() * out.length);
    if (at < 0 || at >= out.length) continue;
    out[at] = Number(BOUNDARY[Math.floor(rand() * BOUNDARY.length)]! & 0xffn) ^ (rand() < 0.5 ? 0 : out[at]!);
  }
  if (rand() < 0.05) return out.subarray(0, Math.floor(rand() * out.length));
  return out;
}

/** Codes that are clear errors; INTERNAL ("please report") is a bug, so it counts as a crash. */
const KNOWN = new Set(Object.keys(ERROR_CODES).filter((c) => c !== "INTERNAL"));

/**
 * Run `cases` fuzz cases against process `pid`, which runs `exe` and which `patch` is a good patch for.
 * `dir` receives the damaged file of each case.
 */
export function fuzzPatches(options: {
  pid: number;
  patch: string;
  exe: string;
  cases: number;
  seed: number;
  dir: string;
  onProgress?: (tally: FuzzTally) => void;
  /** Sees every damaged target file (a peer can be run on the same bytes). */
  onTarget?: (bytes: Uint8Array) => void;
}): FuzzTally {
  const rand = prng(options.seed);
  const patch = new Uint8Array(readFileSync(options.patch));
  const exe = new Uint8Array(readFileSync(options.exe));
  const targets = aim(patch);
  const arch = getArchForMachine(parseElf(exe).header.e_machine);
  const file = join(options.dir, "fuzz-case.graft");
  const tally: FuzzTally = {
    cases: 0,
    perKind: { bytes: 0, rehashed: 0, manifest: 0, target: 0 },
    accepted: 0,
    codes: {},
    crashes: [],
    slowestMs: 0,
    totalMs: 0,
  };
  const started = performance.now();
  let hooksMs = 0;
  for (let i = 0; i < options.cases; i++) {
    const kind = FUZZ_KINDS[i % FUZZ_KINDS.length]!;
    let hookMs = 0; // the peer's time is not graft's
    const t0 = performance.now();
    try {
      if (kind === "target") {
        const damaged = mutateTarget(exe, rand);
        const h0 = performance.now();
        options.onTarget?.(damaged);
        hookMs = performance.now() - h0;
        const elf = parseElf(damaged, { file: options.exe });
        elf.symbols();
        elf.buildId();
        checkElf(elf, arch);
      } else {
        const bytes =
          kind === "bytes"
            ? mutateBytes(patch, rand)
            : kind === "rehashed"
              ? mutateRehashed(patch, targets, rand)
              : mutateManifest(patch, targets, rand);
        writeFileSync(file, bytes);
        applyPatch(options.pid, file, { dryRun: true });
      }
      tally.accepted++;
    } catch (e) {
      if (e instanceof GraftError && KNOWN.has(e.code)) tally.codes[e.code] = (tally.codes[e.code] ?? 0) + 1;
      else
        tally.crashes.push(
          `${kind} #${i}: ${e instanceof Error ? `${e.name}${e instanceof GraftError ? ` ${e.code}` : ""}: ${e.message} ${e.stack?.split("\n")[1]?.trim() ?? ""}` : String(e)}`,
        );
    }
    const ms = performance.now() - t0 - hookMs;
    hooksMs += hookMs;
    if (ms > tally.slowestMs) tally.slowestMs = ms;
    tally.cases++;
    tally.perKind[kind]++;
    if (options.onProgress !== undefined && tally.cases % 1000 === 0) options.onProgress(tally);
  }
  tally.totalMs = performance.now() - started - hooksMs;
  return tally;
}
