import type { Unit } from "./build-units.js";
import type { BuildView } from "./build-view.js";

/** Who refers to whom in one build. */
export interface References {
  /** For each function, the functions that call or jump to its entry. */
  readonly callers: ReadonlyMap<Unit, readonly Unit[]>;
  /** For each unit, every function whose code refers to it (call, jump, load, address taken). */
  readonly referrers: ReadonlyMap<Unit, readonly Unit[]>;
}

/**
 * Every reference from the code of each function to another unit: through the relocation on an
 * operand in a .o (its PC adjustment taken from the instruction's end), or the decoded branch
 * target, RIP-relative operand or absolute address in a linked file.
 */
export function findReferences(view: BuildView): References {
  const callers = new Map<Unit, Unit[]>();
  const referrers = new Map<Unit, Unit[]>();
  const add = (map: Map<Unit, Unit[]>, to: Unit, from: Unit): void => {
    const list = map.get(to);
    if (list === undefined) map.set(to, [from]);
    else if (!list.includes(from)) list.push(from);
  };
  for (const u of view.units) {
    if (u.kind !== "function") continue;
    for (const ins of view.arch.decodeFields(view.unitBytes(u), u.address)) {
      const at = u.address + BigInt(ins.offset);
      const end = at + BigInt(ins.length);
      for (const f of ins.fields) {
        const place = at + BigInt(f.offset);
        const r = view.relocations.get(place);
        let to: bigint | undefined;
        if (r !== undefined)
          to = r.target === undefined ? undefined : r.target + (r.pcRelative ? end - place : 0n);
        else if (f.role === "branch") to = ins.target;
        else if (f.role === "pc-relative") to = ins.memoryAddress;
        if (to === undefined) continue;
        const target = view.unitAt(to);
        if (target === undefined || target === u) continue;
        add(referrers, target, u);
        const branch = ins.kind === "call" || ins.kind === "jump" || ins.kind === "cond-jump";
        if (branch && f.role !== "pc-relative" && target.address === to) add(callers, target, u);
      }
    }
  }
  return { callers, referrers };
}
