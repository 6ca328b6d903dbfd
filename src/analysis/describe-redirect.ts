import type { Arch } from "../arch/arch.js";
import type { RedirectSite } from "./site-types.js";

const hex = (n: bigint): string => `0x${n.toString(16)}`;

/** ±2 GiB, ±128 MiB: a reach in the largest whole binary unit. */
export function formatReach(bytes: bigint): string {
  for (const [unit, size] of [
    ["GiB", 1n << 30n],
    ["MiB", 1n << 20n],
    ["KiB", 1n << 10n],
  ] as const)
    if (bytes >= size && bytes % size === 0n) return `±${bytes / size} ${unit}`;
  return `±${bytes} bytes`;
}

/**
 * For people: what a usable site's redirect writes, where, and how far it reaches, and where the
 * entry's landing pad stays. Sleds with room for the far jump before the entry say so too, since
 * on AArch64 that is the only way past `b`'s ±128 MiB without touching the function's own code:
 * the pre-entry NOPs take `ldr x16, #8; br x16; .quad replacement` and the entry NOP becomes `b`
 * back to them. `[]` for a site with problems.
 */
export function describeRedirect(arch: Arch, site: RedirectSite): string[] {
  if (site.problems.length > 0 || site.writes.length === 0) return [];
  const names = arch.jumpNames;
  const farIsAbsolute = arch.farJumpLength === arch.absoluteJumpLength;
  const farReach = farIsAbsolute ? "any address" : formatReach(arch.nearJumpReach);
  const entry = site.writes[site.writes.length - 1]!;
  const far = site.writes.length > 1 ? site.writes[0] : undefined;
  const d = site.detail;
  const entryWhat =
    d.kind === "sled"
      ? `the sled's first NOP bytes at ${hex(entry.address)} become`
      : d.kind === "fentry"
        ? `the ${d.state === "nop" ? "NOP" : `call to ${d.callee ?? "the profiler"}`} at ${hex(entry.address)} becomes`
        : d.kind === "hotpatch"
          ? `\`${d.firstInstruction}\` at ${hex(entry.address)} becomes`
          : `${d.instructions.map((t) => `\`${t}\``).join(", ")} at ${hex(entry.address)} become${d.instructions.length > 1 ? "" : "s"}`;
  const out: string[] = [];
  if (far === undefined) {
    out.push(`${entryWhat} \`${names.near}\` to the replacement (reach ${formatReach(arch.nearJumpReach)})`);
    for (const alt of site.alternatives ?? [])
      out.push(
        `beyond that reach: \`${names.far} replacement\` in the ${alt[0]!.room} pre-entry NOP bytes at ${hex(alt[0]!.address)} (${farReach}; x16 is free at a call), and the entry NOP at ${hex(alt[alt.length - 1]!.address)} becomes \`${names.short}\` to it`,
      );
  } else {
    const room =
      d.kind === "sled" && far.address < entry.address && d.before > 0 ? "pre-entry NOP" : "padding";
    out.push(
      `\`${names.far} replacement\` at ${hex(far.address)} in ${far.room} bytes of ${room} (${farReach}), and ${entryWhat} \`${names.short}\` to it`,
    );
  }
  if (d.kind === "sled" && d.landingPad === "before-sled")
    out.push(
      "the landing pad at the entry (endbr64/bti c) stays: indirect calls land on it, then take the redirect",
    );
  if (d.kind === "sled" && d.landingPad === "after-sled")
    out.push(
      "the sled comes before the landing pad (bti c): the entry is a NOP, so under BTI an indirect call faults there already; the redirect does not change that, and direct calls are redirected",
    );
  return out;
}
