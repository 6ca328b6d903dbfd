/**
 * Where a USDT argument lives, decoded from its AT&T operand (sys/sdt.h writes the operand the
 * compiler chose for the `"nor"` asm constraint): `%edi` (a register), `-16(%rbp)` / `8(%rax,%rdx,4)`
 * / `foo(%rip)` (memory), `$5` (a constant) [SystemTap wiki "UserSpaceProbeImplementation"].
 */
export type UsdtLocation =
  | { readonly kind: "register"; readonly register: string }
  | {
      readonly kind: "memory";
      /** Base register (without %), e.g. `rbp`, `rip`; undefined for an absolute address. */
      readonly base: string | undefined;
      readonly index: string | undefined;
      readonly scale: number;
      /** Numeric displacement (0 when the displacement is a symbol). */
      readonly offset: bigint;
      /** A symbolic displacement such as `foo` in `foo(%rip)` or `foo+8(%rip)`. */
      readonly symbol: string | undefined;
    }
  | { readonly kind: "constant"; readonly value: bigint }
  | { readonly kind: "unknown"; readonly text: string };

const MEMORY = /^([^(]*)\((%[a-z0-9]+)?(?:,(%[a-z0-9]+)(?:,([1248]))?)?\)$/;
const NUMBER = /^[-+]?(0x[0-9a-f]+|\d+)$/i;

function parseNumber(text: string): bigint {
  const negative = text.startsWith("-");
  const body = text.replace(/^[-+]/, "");
  const v = BigInt(body);
  return negative ? -v : v;
}

/** Decode one USDT operand; never throws (an operand it does not know is `unknown`). */
export function decodeUsdtLocation(location: string): UsdtLocation {
  const text = location.trim();
  if (/^%[a-z0-9]+$/.test(text)) return { kind: "register", register: text.slice(1) };
  if (text.startsWith("$")) {
    const v = text.slice(1);
    return NUMBER.test(v) ? { kind: "constant", value: parseNumber(v) } : { kind: "unknown", text };
  }
  const m = MEMORY.exec(text);
  if (m !== null) {
    const disp = m[1] ?? "";
    let offset = 0n;
    let symbol: string | undefined;
    if (disp === "") offset = 0n;
    else if (NUMBER.test(disp)) offset = parseNumber(disp);
    else {
      const s = /^([A-Za-z_.$][\w.$@]*)([-+](?:0x[0-9a-f]+|\d+))?$/i.exec(disp);
      if (s === null) return { kind: "unknown", text };
      symbol = s[1];
      offset = s[2] === undefined ? 0n : parseNumber(s[2]);
    }
    return {
      kind: "memory",
      base: m[2]?.slice(1),
      index: m[3]?.slice(1),
      scale: m[4] === undefined ? 1 : Number(m[4]),
      offset,
      symbol,
    };
  }
  if (NUMBER.test(text)) {
    return {
      kind: "memory",
      base: undefined,
      index: undefined,
      scale: 1,
      offset: parseNumber(text),
      symbol: undefined,
    };
  }
  return { kind: "unknown", text };
}
