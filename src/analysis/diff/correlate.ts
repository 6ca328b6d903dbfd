import type { Unit } from "./build-units.js";

/** A unit of the original build and its twin in the patched build. */
export interface UnitPair {
  readonly orig: Unit;
  readonly patched: Unit;
}

export interface Correlation {
  readonly pairs: readonly UnitPair[];
  /** Units only the original has. */
  readonly removed: readonly Unit[];
  /** Units only the patched build has. */
  readonly added: readonly Unit[];
}

/**
 * Pair the units of two builds. Funnel, most certain first: kind + canonical name (counters and
 * ThinLTO hashes stripped) + source file for locals; inside a group with several candidates, the
 * same referring functions (`referrerKey`: a static local belongs to the function that uses it, a
 * clone to its callers), then equal content (`contentKey`, code normalised with names, so a ThinLTO
 * `f.llvm.<hash>` whose hash changed still finds its twin), then the exact name, then order. Never "first
 * match wins" across groups: a unit that finds no twin in its group is added or removed.
 * `sameFile` says whether the two builds' source files are the same translation unit (one STT_FILE
 * each, perhaps of different names: the local key then ignores the file).
 */
export function correlateUnits(
  orig: readonly Unit[],
  patched: readonly Unit[],
  contentKey: (u: Unit, side: "orig" | "patched") => string,
  sameFile: boolean,
  referrerKey: (u: Unit, side: "orig" | "patched") => string = () => "",
): Correlation {
  const key = (u: Unit): string => `${u.kind}:${u.canonical}:${u.local && !sameFile ? (u.file ?? "") : ""}`;
  const groups = new Map<string, { o: Unit[]; p: Unit[] }>();
  for (const u of orig) {
    const g = groups.get(key(u)) ?? { o: [], p: [] };
    g.o.push(u);
    groups.set(key(u), g);
  }
  for (const u of patched) {
    const g = groups.get(key(u)) ?? { o: [], p: [] };
    g.p.push(u);
    groups.set(key(u), g);
  }
  const pairs: UnitPair[] = [];
  const removed: Unit[] = [];
  const added: Unit[] = [];
  for (const { o, p } of groups.values()) {
    if (o.length === 1 && p.length === 1) {
      pairs.push({ orig: o[0]!, patched: p[0]! });
      continue;
    }
    const left = [...o];
    const right = [...p];
    const take = (match: (a: Unit, b: Unit) => boolean): void => {
      for (let i = 0; i < left.length; i++) {
        const j = right.findIndex((b) => match(left[i]!, b));
        if (j < 0) continue;
        pairs.push({ orig: left[i]!, patched: right[j]! });
        left.splice(i, 1);
        right.splice(j, 1);
        i--;
      }
    };
    // Who refers to it, then content, then the name: counters may be handed out in another order in
    // the other build (f.constprop.1 there is f.constprop.2 here; a static `count` of g is count.1
    // there and count.2 here), and pairing by number would bind one function's static to another's
    // or replace one specialisation with another. Ties on referrers are broken by content.
    const or = new Map(left.map((u) => [u, referrerKey(u, "orig")]));
    const pr = new Map(right.map((u) => [u, referrerKey(u, "patched")]));
    const ok = new Map(left.map((u) => [u, contentKey(u, "orig")]));
    const pk = new Map(right.map((u) => [u, contentKey(u, "patched")]));
    take((a, b) => or.get(a) === pr.get(b) && or.get(a) !== "" && ok.get(a) === pk.get(b));
    take((a, b) => or.get(a) === pr.get(b) && or.get(a) !== "");
    take((a, b) => ok.get(a) === pk.get(b));
    take((a, b) => a.name === b.name && a.file === b.file);
    // Whatever is left pairs by position: the same source order gives the same order of counters.
    while (left.length > 0 && right.length > 0) pairs.push({ orig: left.shift()!, patched: right.shift()! });
    removed.push(...left);
    added.push(...right);
  }
  return { pairs, removed, added };
}
