import type { Arch, Instruction, ReturnValueUse } from "../arch/arch.js";
import { GraftError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import { constantName, EM } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import { readAddressTable } from "./address-table.js";
import { objectBranchTargets } from "./branch-scan.js";
import { findBranchesInto } from "./branches-into.js";
import { CallTargets } from "./call-targets.js";
import { PROFILER_HOOKS } from "./fentry-site.js";
import { type FunctionInfo, listFunctions } from "./functions.js";
import { globToRegExp } from "./glob.js";

/**
 * How a call site calls: `direct` is `call rel32` (with any prefix: `addr32 call` is what the linker
 * makes of a relaxed `call *foo@GOTPCREL(%rip)`); `got` is `call *slot(%rip)` through a GOT slot the
 * dynamic linker fills (gcc's -fno-plt, `__fentry__` in a gcc PIE); `nop` is the 5-byte NOP that
 * `-mnop-mcount` leaves at an entry instead of `call __fentry__` (listed in `__mcount_loc`).
 */
export type CallForm = "direct" | "got" | "nop";

/** One call instruction (or fentry NOP) of a file, and whether graft may rewrite it in place. */
export interface CallSite {
  /** Link-time address of the instruction. */
  readonly address: bigint;
  /** Bytes of the instruction: all of them are rewritten (5 for `call rel32`, 6 for `call *slot(%rip)`). */
  readonly length: number;
  /** The function that holds it. */
  readonly caller: string;
  readonly callerAddress: bigint;
  readonly form: CallForm;
  /** Where a direct call goes (link-time); undefined through the GOT, for a NOP, or to another `.o`. */
  readonly target: bigint | undefined;
  /** The GOT slot a `got` call reads its destination from. */
  readonly slot: bigint | undefined;
  /** The callee as objdump names it: `compute`, `puts@plt`, a GOT slot's symbol, `fn+0x10`. */
  readonly targetName: string | undefined;
  /** The site is the `-pg -mfentry` hook at the entry (a call to `__fentry__`/`mcount`, or its NOP). */
  readonly fentry: boolean;
  /**
   * What the caller does with the result, for NOP-ing the call out: undefined for the fentry hook and
   * NOPs, which return nothing anyone reads.
   */
  readonly resultUse: ReturnValueUse | undefined;
  /** Assembly text, for people. */
  readonly text: string;
  /** Why rewriting it would be unsafe; empty when `rewritable`. */
  readonly problems: readonly string[];
  readonly rewritable: boolean;
}

export interface CallSiteSummary {
  readonly sites: number;
  readonly rewritable: number;
  /** Rewritable sites whose result the caller reads: they can be retargeted, not NOP'd out. */
  readonly resultUsed: number;
}

export interface CallSiteReport {
  readonly file: string | undefined;
  readonly kind: Elf["kind"];
  readonly machine: string;
  readonly buildId: string | undefined;
  readonly sites: readonly CallSite[];
  readonly summary: CallSiteSummary;
  readonly warnings: readonly string[];
}

export interface CallSiteOptions {
  /** Only calls from functions whose name (or an alias) matches this glob. */
  readonly from?: string;
  /** Only calls to this function: its name, `name@plt`, or any alias of the function at the target. */
  readonly to?: string;
  /** Only the call at this link-time address (only the function holding it is decoded). */
  readonly at?: bigint;
}

/** `puts@plt` → `puts`, `memcpy@GLIBC_2.14` → `memcpy`, `*x` → `x`. */
function baseName(name: string): string {
  return name.replace(/^\*/, "").replace(/@.*$/, "");
}

/**
 * `graft calls`: every call site of the file, with where it goes and whether graft can rewrite it
 * (NOP it out or point it elsewhere) in a live process. A site is rewritable when:
 * - it is a whole instruction of its function's own decode from the entry, with no undecodable bytes
 *   before it (data in code would leave the boundaries uncertain);
 * - no direct branch anywhere in the file lands inside it (after its first byte): a thread arriving
 *   there would execute half of the new instruction;
 * - the call returns: a call that ends its function or is followed by a trap (`call abort`,
 *   `__stack_chk_fail`) would, NOP'd out or pointed at a function that returns, run into what follows.
 * Whether the caller reads the result is reported apart (`resultUse`): it forbids a NOP, not a retarget.
 */
export function listCallSites(elf: Elf, arch: Arch, options: CallSiteOptions = {}): CallSiteReport {
  if (elf.header.e_machine !== arch.elfMachine) {
    throw new GraftError(
      "ELF_UNSUPPORTED",
      `machine ${constantName(EM, elf.header.e_machine, "EM")} is not ${arch.name}`,
      {
        ...(elf.file === undefined ? {} : { subject: elf.file }),
        hint: "graft calls reads x86-64 files",
      },
    );
  }
  const warnings: string[] = [];
  const functions = listFunctions(elf, arch);
  if (functions.length === 0) warnings.push("no function symbols (stripped?): no callers to list");
  const callTargets = new CallTargets(elf, arch, functions);
  const fixups = elf.isRelocatable ? objectBranchTargets(elf) : undefined;
  const mcount = new Set(
    readAddressTable(
      elf,
      elf.sections.filter((s) => s.name === "__mcount_loc"),
    ),
  );
  const from = options.from === undefined ? undefined : globToRegExp(options.from);
  const toAddresses =
    options.to === undefined
      ? undefined
      : new Set(
          functions
            .filter((f) => f.name === options.to || f.aliases.includes(options.to!))
            .map((f) => f.address),
        );

  type Found = Omit<CallSite, "problems" | "rewritable"> & { problems: string[] };
  const found: Found[] = [];
  for (const fn of functions) {
    if (from !== undefined && !from.test(fn.name) && !fn.aliases.some((a) => from.test(a))) continue;
    if (options.at !== undefined && (options.at < fn.address || options.at >= fn.address + fn.size)) continue;
    const bytes = elf.sectionBytes(fn.section);
    const offset = Number(fn.address - elf.sectionAddress(fn.section));
    if (offset < 0 || offset >= bytes.length) continue;
    const body = bytes.subarray(offset, Math.min(bytes.length, offset + Number(fn.size)));
    const entry = fn.address + BigInt(arch.endbrLength(body, 0));
    const code = arch.decode(body, fn.address);
    let undecodable: bigint | undefined;
    code.forEach((insn, i) => {
      if (insn.kind === "invalid") undecodable ??= insn.address;
      const site = callSite(insn, fn, entry);
      if (site === undefined) return;
      if (toAddresses !== undefined && !matchesCallee(site, options.to!, toAddresses)) return;
      if (options.at !== undefined && site.address !== options.at) return;
      const problems: string[] = [];
      if (undecodable !== undefined) {
        problems.push(
          `bytes at ${hex(undecodable)} in ${fn.name} do not decode (data in code?): instruction boundaries after them are uncertain`,
        );
      }
      const next = code[i + 1];
      if (next === undefined || next.kind === "trap") {
        problems.push(
          `the call does not return (${next === undefined ? `it ends ${fn.name}` : `\`${next.text}\` follows`}): rewritten, execution would run on into what follows`,
        );
      }
      const returns = site.form !== "nop" && !site.fentry;
      found.push({
        ...site,
        resultUse: returns
          ? arch.returnValueUse(body, fn.address, insn.address + BigInt(insn.length))
          : undefined,
        problems,
      });
    });
  }

  /** The call or fentry NOP `insn` of `fn`, named, or undefined when it is none. */
  function callSite(
    insn: Instruction,
    fn: FunctionInfo,
    entry: bigint,
  ): Omit<Found, "problems" | "resultUse"> | undefined {
    const common = { address: insn.address, length: insn.length, caller: fn.name, callerAddress: fn.address };
    if (insn.kind === "call" && insn.length >= arch.nearJumpLength) {
      const name = callTargets.nameOf(insn) ?? undefined;
      let target = insn.target;
      if (fixups !== undefined) {
        const resolved = fixups.get(insn.address + BigInt(insn.length) - 4n);
        target = resolved === null ? undefined : (resolved ?? target);
      }
      const targetName = name ?? (target === undefined ? undefined : nameInside(target));
      const fentry = insn.address === entry && PROFILER_HOOKS.has(baseName(targetName ?? ""));
      return { ...common, form: "direct", target, slot: undefined, targetName, fentry, text: insn.text };
    }
    if (insn.kind === "indirect-call" && insn.memoryAddress !== undefined && !elf.isRelocatable) {
      const targetName = callTargets.nameOf(insn);
      if (targetName === undefined) return undefined; // a function pointer, not a GOT slot
      const fentry = insn.address === entry && PROFILER_HOOKS.has(baseName(targetName));
      return {
        ...common,
        form: "got",
        target: undefined,
        slot: insn.memoryAddress,
        targetName,
        fentry,
        text: insn.text,
      };
    }
    if (
      insn.kind === "nop" &&
      insn.address === entry &&
      insn.length === arch.nearJumpLength &&
      mcount.has(entry)
    ) {
      return {
        ...common,
        form: "nop",
        target: undefined,
        slot: undefined,
        targetName: undefined,
        fentry: true,
        text: insn.text,
      };
    }
    return undefined;
  }

  /** `fn` or `fn+0xoff` for an address inside a function, as objdump prints a branch target. */
  function nameInside(address: bigint): string | undefined {
    let lo = 0;
    let hi = functions.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (functions[mid]!.address <= address) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const f = functions[at];
    if (f === undefined || address >= f.address + (f.size > 0n ? f.size : 1n)) return undefined;
    return address === f.address ? f.name : `${f.name}+${hex(address - f.address)}`;
  }

  const intoRanges = findBranchesInto(
    elf,
    arch,
    found.map((s) => ({ start: s.address, end: s.address + BigInt(s.length) })),
  );
  const sites: CallSite[] = found.map((s, i) => {
    const problems = [...s.problems];
    for (const b of intoRanges.get(i) ?? []) {
      problems.push(`a ${b.kind} at ${hex(b.from)} lands inside the call (${hex(b.to)})`);
    }
    return { ...s, problems, rewritable: problems.length === 0 };
  });
  const rewritable = sites.filter((s) => s.rewritable);
  return {
    file: elf.file,
    kind: elf.kind,
    machine: arch.name,
    buildId: elf.buildId(),
    sites,
    summary: {
      sites: sites.length,
      rewritable: rewritable.length,
      resultUsed: rewritable.filter((s) => s.resultUse?.used === true).length,
    },
    warnings,
  };
}

/** Whether the call goes to `to`: by name (`puts`, `puts@plt`, a GOT slot's symbol) or by address. */
function matchesCallee(
  site: { target: bigint | undefined; targetName: string | undefined },
  to: string,
  addresses: ReadonlySet<bigint>,
): boolean {
  if (site.target !== undefined && addresses.has(site.target)) return true;
  return site.targetName !== undefined && (site.targetName === to || baseName(site.targetName) === to);
}
