/** Which compiler a build uses. */
export type CflagsCompiler = "gcc" | "clang" | "rustc";
/** Which kind of patch site the flags reserve. */
export type CflagsKind = "sled" | "fentry" | "hotpatch";

/** One flag (or group of flags that only make sense together) and the one-line reason for it. */
export interface FlagAdvice {
  readonly flags: readonly string[];
  readonly why: string;
}

export interface CflagsAdvice {
  readonly compiler: CflagsCompiler;
  readonly kind: CflagsKind;
  readonly flags: readonly FlagAdvice[];
  /** Caveats: PIE restrictions, nightly-only options. */
  readonly notes: readonly string[];
}

const DIFFABLE_C: FlagAdvice[] = [
  {
    flags: ["-ffunction-sections", "-fdata-sections"],
    why: "one section per function and object, so graft diff compares builds function by function",
  },
  { flags: ["-g"], why: "DWARF lets graft impact find every caller a fixed function was inlined into" },
  {
    flags: ["-fno-omit-frame-pointer"],
    why: "cheap, reliable stack walks for --consistency quiescent (is a patched function on a stack?)",
  },
];

/**
 * `graft cflags`: the flags that make a build patchable by graft, per compiler and site kind, each
 * with why. Pure data: the CLI prints it; build systems may consume the JSON.
 */
export function cflagsAdvice(compiler: CflagsCompiler, kind: CflagsKind): CflagsAdvice {
  const flags: FlagAdvice[] = [];
  const notes: string[] = [];
  if (compiler === "rustc") {
    if (kind === "sled") {
      flags.push({
        flags: ["-Z", "patchable-function-entry=16,14"],
        why: "14 NOP bytes before each entry take a jmp rel32, 2 at the entry an atomic 2-byte jmp",
      });
      notes.push("-Z flags need a nightly toolchain (RUSTFLAGS or .cargo/config.toml)");
    } else if (kind === "fentry") {
      // -Z instrument-mcount calls mcount after the prologue (push %rbp; mov %rsp,%rbp), where a
      // redirect would run the replacement on a half-built frame: not an entry site at all.
      flags.push({
        flags: ["-Z", "patchable-function-entry=16,14"],
        why: "rustc has no fentry call at the entry; a sled gives the same room (NOPs instead of a call)",
      });
      notes.push(
        "-Z instrument-mcount calls mcount after the prologue, which graft cannot redirect from: use the sled",
      );
      notes.push("-Z flags need a nightly toolchain");
    } else {
      flags.push({
        flags: ["-Z", "patchable-function-entry=7,5"],
        why: "rustc has no x86-64 hotpatch prologue; a 5-byte pre-entry sled plus 2 bytes at the entry is the same shape",
      });
      notes.push("-Z hotpatch is only a proposal for now; the sled above has the same shape");
      notes.push("-Z flags need a nightly toolchain");
    }
    flags.push({
      flags: ["-C", "force-frame-pointers=yes"],
      why: "reliable stack walks for --consistency quiescent",
    });
    flags.push({ flags: ["-C", "debuginfo=2"], why: "DWARF lets graft impact find every inlined copy" });
    return { compiler, kind, flags, notes };
  }
  if (kind === "sled") {
    flags.push({
      flags: ["-fpatchable-function-entry=16,14"],
      why: "14 NOP bytes before each entry take a jmp rel32 that no thread executes; 2 at the entry take an atomic 2-byte jmp",
    });
  } else if (kind === "fentry") {
    if (compiler === "gcc") {
      flags.push({
        flags: ["-pg", "-mfentry"],
        why: "a 5-byte call to __fentry__ at every entry that graft can NOP or retarget",
      });
      // Both would be better (NOPs, listed), but not in position-independent code: gcc refuses
      // -mnop-mcount with -fPIC/-fPIE, and __mcount_loc is read-only, so -mrecord-mcount makes the
      // linker emit text relocations (DT_TEXTREL) in a PIE. Distribution compilers default to PIE.
      notes.push(
        "for non-PIE builds (-no-pie) add -mnop-mcount -mrecord-mcount: 5-byte NOPs listed in __mcount_loc instead of calls (gcc rejects -mnop-mcount with -fPIC/-fPIE; -mrecord-mcount makes text relocations in a PIE)",
      );
    } else {
      flags.push({
        flags: ["-pg", "-mfentry"],
        why: "a 5-byte call to __fentry__ at every entry that graft can NOP or retarget",
      });
      notes.push(
        "clang has no -mnop-mcount/-mrecord-mcount on x86-64: the calls run glibc's __fentry__ until patched",
      );
    }
    notes.push(
      "-pg at link time also links gprof's start-up (gcrt1.o): the program profiles itself and writes gmon.out on exit; pass -pg when compiling only",
    );
  } else {
    if (compiler === "clang") {
      flags.push({
        flags: ["-fms-hotpatch"],
        why: "makes every first instruction ≥ 2 bytes, so a 2-byte jmp replaces it whole",
      });
    } else {
      flags.push({
        flags: ["-fpatchable-function-entry=7,5"],
        why: "gcc has no x86-64 hotpatch prologue; a 5-byte pre-entry sled plus 2 bytes at the entry is the same shape",
      });
    }
    flags.push({
      flags: ["-falign-functions=16"],
      why: "padding between functions is where the far jump goes; aligned entries leave some before most functions",
    });
    notes.push("padding is not guaranteed before every function; graft check reports which ones lack it");
  }
  flags.push(...DIFFABLE_C);
  if (compiler === "gcc") {
    flags.push({
      flags: ["-flive-patching=inline-clone"],
      why: "limits IPA to inlining and cloning, which graft impact can see, so impacted sets are complete",
    });
  }
  return { compiler, kind, flags, notes };
}
