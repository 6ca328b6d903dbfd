/** What a unit's DW_AT_producer says about how it was compiled. */
export interface ProducerFlags {
  readonly compiler: "gcc" | "clang" | "other";
  /** gcc's "GNU GIMPLE" producer: the unit was written by LTO. */
  readonly lto: boolean;
  /** Whether the string carries command-line flags (gcc's -grecord-gcc-switches, on by default). */
  readonly flagsRecorded: boolean;
  /** The recorded flags, in order (what a rebuild of the unit would pass again). */
  readonly flags: readonly string[];
  /** 0 for -O0 or no -O, 1–3, "s", "z", "g", "fast"; undefined when flags were not recorded. */
  readonly optimization: number | "s" | "z" | "g" | "fast" | undefined;
  /** -flive-patching[=inline-clone|inline-only-static], the last one given. */
  readonly livePatching: "inline-clone" | "inline-only-static" | undefined;
}

/**
 * Parse a producer string: `GNU C17 12.2.0 -mtune=generic -O2 -g …` (gcc records its switches),
 * `Debian clang version 14.0.6` (clang records none unless -grecord-command-line).
 */
export function parseProducer(producer: string): ProducerFlags {
  // "GNU AS 2.40" is the assembler (a .S file): no compiler optimisation to speak of.
  const gcc = /^GNU [A-Za-z+0-9]+ \d/.test(producer) && !/^GNU AS /.test(producer);
  const lto = /^GNU GIMPLE/.test(producer);
  const compiler = gcc || lto ? "gcc" : /clang version/.test(producer) ? "clang" : "other";
  const flags = producer.split(/\s+/).filter((t) => t.startsWith("-"));
  let optimization: ProducerFlags["optimization"] = flags.length > 0 ? 0 : undefined;
  let livePatching: ProducerFlags["livePatching"];
  for (const f of flags) {
    const o = /^-O(\d*|s|z|g|fast)$/.exec(f);
    if (o !== null) {
      const v = o[1]!;
      optimization = v === "" ? 1 : /^\d+$/.test(v) ? Number(v) : (v as "s" | "z" | "g" | "fast");
    } else if (f === "-flive-patching" || f === "-flive-patching=inline-clone") livePatching = "inline-clone";
    else if (f === "-flive-patching=inline-only-static") livePatching = "inline-only-static";
  }
  return { compiler, lto, flagsRecorded: flags.length > 0, flags, optimization, livePatching };
}

/** True when the flags mean inlining and IPA passes ran (-O1 and up, -Os/-Oz/-Og/-Ofast). */
export function optimizes(p: ProducerFlags): boolean {
  return p.optimization !== undefined && p.optimization !== 0;
}
