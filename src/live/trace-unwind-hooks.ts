/**
 * Where exceptions start and end in a process, for the tracing runtime. A traced call's return
 * address slot holds a return point in graft's code, where the unwinder (libgcc's, used by C++ and
 * Rust) finds no frame description: an exception thrown through a traced call would end the
 * process (std::terminate). So the runtime sits in front of the functions that start an unwind
 * (_Unwind_RaiseException, _Unwind_Resume_or_Rethrow: give the slots back) and of
 * __cxa_begin_catch (hijack the frames the exception did not reach again), by their GOT slots in
 * every loaded module — a data write, no code patched, and the one way every module's calls go.
 * (A throw goes from libstdc++'s __cxa_throw through its GOT into libgcc_s.)
 */

import type { UnwindHook } from "../arch/x86-64/trace-runtime.js";
import { RefusedError } from "../core/errors.js";
import { R_X86_64, SHN } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import type { LoadedModule, TargetModules } from "./target-modules.js";

const THROW = ["_Unwind_RaiseException", "_Unwind_Resume_or_Rethrow"] as const;
const CATCH = ["__cxa_begin_catch"] as const;

/** A GOT slot to point at a hook. */
export interface UnwindGotSlot {
  readonly address: bigint;
  /** Index into UnwindHookPlan.hooks. */
  readonly hook: number;
  readonly symbol: string;
  readonly module: string;
}

export interface UnwindHookPlan {
  readonly hooks: readonly UnwindHook[];
  readonly slots: readonly UnwindGotSlot[];
}

/** Runtime address of the first loaded module's definition of `name` (its dynamic symbols). */
function definition(modules: readonly LoadedModule[], name: string): bigint | undefined {
  for (const m of modules) {
    const s = m.elf
      .dynamicSymbols()
      .find((x) => x.name === name && x.st_shndx !== SHN.SHN_UNDEF && x.st_value !== 0n);
    if (s !== undefined) return s.st_value + m.bias;
  }
  return undefined;
}

/** GOT slots (GLOB_DAT, JUMP_SLOT) of `elf` that hold one of `names`, by file address. */
function gotSlots(elf: Elf, names: ReadonlySet<string>): { address: bigint; symbol: string }[] {
  const out: { address: bigint; symbol: string }[] = [];
  const dynsym = elf.dynamicSymbols();
  if (dynsym.length === 0) return out;
  for (const rs of elf.relocationSections()) {
    if (rs.symbolTable?.name !== ".dynsym") continue;
    for (const r of rs.entries) {
      if (r.type !== R_X86_64.R_X86_64_GLOB_DAT && r.type !== R_X86_64.R_X86_64_JUMP_SLOT) continue;
      const name = dynsym[r.symbolIndex]?.name;
      if (name !== undefined && names.has(name)) out.push({ address: r.r_offset, symbol: name });
    }
  }
  return out;
}

/**
 * The hooks and GOT slots for `modules`. Refuses when the main program carries its own C++ runtime
 * (static libstdc++: its throws call the unwinder directly, past any GOT) — tracing could not keep an
 * exception from ending the process.
 */
export function planUnwindHooks(
  targets: TargetModules,
  main: LoadedModule,
  readWord: (address: bigint) => bigint | undefined,
): UnwindHookPlan {
  const loaded = targets.modules.map((m) => targets.load(m)).filter((m) => m !== undefined);
  const names = new Set<string>([...THROW, ...CATCH]);
  const hooks: UnwindHook[] = [];
  const slots: UnwindGotSlot[] = [];
  const hookOf = new Map<string, number>();
  for (const m of loaded) {
    for (const slot of gotSlots(m.elf, names)) {
      const address = slot.address + m.bias;
      // Each slot goes on to the function it is bound to (two unwinders can be loaded, say libgcc_s
      // and LLVM's libunwind, each module bound to one); a slot still pointing into its own module
      // is not bound yet (lazy binding, its PLT entry): the first definition, as the loader would.
      const bound = readWord(address);
      const target =
        bound !== undefined && bound !== 0n && (bound < m.module.start || bound >= m.module.end)
          ? bound
          : definition(loaded, slot.symbol);
      if (target === undefined) continue; // not resolvable: nothing calls it through this slot
      const kind = (THROW as readonly string[]).includes(slot.symbol) ? "throw" : "catch";
      const key = `${kind}:${target}`;
      let index = hookOf.get(key);
      if (index === undefined) {
        index = hooks.length;
        hooks.push({ kind, target });
        hookOf.set(key, index);
      }
      slots.push({ address, hook: index, symbol: slot.symbol, module: m.module.path });
    }
  }
  const ownRuntime = main.elf.symbols().some((s) => s.name === "__cxa_throw" && s.st_shndx !== SHN.SHN_UNDEF);
  if (ownRuntime && !slots.some((s) => hooks[s.hook]!.kind === "throw")) {
    throw new RefusedError(
      "TRACE_UNSUPPORTED",
      [
        `${main.module.path} has the C++ runtime linked in statically: an exception thrown through a traced call would end the process`,
      ],
      { subject: `pid ${targets.pid}`, hint: "link libstdc++ and libgcc_s dynamically to trace it" },
    );
  }
  return { hooks, slots };
}
