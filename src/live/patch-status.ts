import { bytesFromHex, hexString } from "../core/hex.js";
import { findMapping, readMaps } from "../process/maps.js";
import { openMemory } from "../process/memory.js";
import { type JournalPatch, loadJournal, type RetiredMapping } from "./journal.js";

/**
 * What the bytes of a patch's sites say, read from the process (the truth) and compared with the
 * journal (the intent): `applied` all hold the patch's jumps, `reverted` all hold the originals,
 * `partial` some of each (a graft died midway: graft revert finishes the job), `foreign` something else.
 */
export type SiteState = "applied" | "reverted" | "partial" | "foreign";

export interface PatchStatus {
  readonly id: string;
  /** `patch` (graft apply) or `callsite` (graft callsite: a rewritten call, no code mapping). */
  readonly kind: "patch" | "callsite";
  readonly file: string;
  readonly source: string;
  /** What the journal says. */
  readonly journal: JournalPatch["state"];
  /** What the process's bytes say. */
  readonly sites: SiteState;
  readonly codeMapped: boolean;
  readonly mapping: JournalPatch["mapping"];
  readonly functions: JournalPatch["functions"];
  readonly appliedAt: string;
  readonly dependsOn: readonly string[];
}

export interface StatusResult {
  readonly pid: number;
  readonly exe: string;
  readonly patches: readonly PatchStatus[];
  readonly retired: readonly RetiredMapping[];
}

/**
 * What a write of an applied patch holds once the patches applied after it are in place too: a
 * stacked patch rewrites the same site (the far jump of a sled now leads to the later patch).
 */
function withLater(address: string, bytes: string, later: readonly JournalPatch[]): string {
  const out = bytesFromHex(bytes);
  const base = BigInt(address);
  for (const p of later) {
    for (const w of p.writes) {
      const after = bytesFromHex(w.after);
      for (let i = 0; i < after.length; i++) {
        const k = BigInt(w.address) + BigInt(i) - base;
        if (k >= 0n && k < BigInt(out.length)) out[Number(k)] = after[i]!;
      }
    }
  }
  return hexString(out);
}

/** `graft status PID`: every patch graft applied to the process, checked against its memory. */
export function patchStatus(pid: number): StatusResult {
  const journal = loadJournal(pid);
  const maps = readMaps(pid);
  const mem = openMemory(pid);
  try {
    const patches = journal.patches.map((p, index): PatchStatus => {
      const later = journal.patches.slice(index + 1);
      let applied = 0;
      let original = 0;
      for (const w of p.writes) {
        let have = "";
        try {
          have = hexString(mem.read(BigInt(w.address), w.after.length / 2));
        } catch {}
        if (have === w.after || have === withLater(w.address, w.after, later)) applied++;
        else if (have === w.before) original++;
      }
      const n = p.writes.length;
      const sites: SiteState =
        applied === n
          ? "applied"
          : original === n
            ? "reverted"
            : applied + original === n
              ? "partial"
              : "foreign";
      return {
        id: p.id,
        kind: p.kind ?? "patch",
        file: p.file,
        source: p.source,
        journal: p.state,
        sites,
        codeMapped: findMapping(maps, BigInt(p.mapping.address)) !== undefined,
        mapping: p.mapping,
        functions: p.functions,
        appliedAt: p.appliedAt,
        dependsOn: p.dependsOn,
      };
    });
    return { pid, exe: journal.exe, patches, retired: journal.retired };
  } finally {
    mem.close();
  }
}
