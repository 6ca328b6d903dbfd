import type { Arch } from "../arch/arch.js";
import { GraftError } from "../core/errors.js";
import { constantName, EM } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import { aarch64Features } from "../formats/elf/gnu-property.js";
import { readAddressTable } from "./address-table.js";
import { scanCode } from "./branch-scan.js";
import { CallTargets } from "./call-targets.js";
import { describeRedirect } from "./describe-redirect.js";
import { findFentrySite } from "./fentry-site.js";
import { type FunctionInfo, listFunctions } from "./functions.js";
import { globToRegExp } from "./glob.js";
import { findHotpatchSite } from "./hotpatch-site.js";
import { findOverwriteSite } from "./overwrite-site.js";
import type { SiteContext } from "./site-context.js";
import { REDIRECT_KINDS, type RedirectKind, type RedirectSite, type UsdtSite } from "./site-types.js";
import { findSledSite } from "./sled-site.js";

/** Whether and how one function can be redirected at run time. */
export interface Verdict {
  readonly redirectable: boolean;
  /** The best usable kind (sled > fentry > hotpatch > overwrite). */
  readonly best: RedirectKind | undefined;
  /** Every reason a kind is not available, `kind: why`; empty reasons for kinds that work. */
  readonly reasons: readonly string[];
  /**
   * How the best site would be used, for people: what each write becomes, its reach, and where the
   * landing pad stays (see describeRedirect). Empty when not redirectable.
   */
  readonly redirect: readonly string[];
}

export interface FunctionReport {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly address: bigint;
  readonly size: bigint;
  readonly section: string;
  readonly binding: FunctionInfo["binding"];
  readonly endbr: boolean;
  /** Every site found, usable or not, best kind first. */
  readonly sites: readonly RedirectSite[];
  readonly usdt: readonly UsdtSite[];
  readonly verdict: Verdict;
}

export interface CheckSummary {
  readonly functions: number;
  readonly redirectable: number;
  readonly percentRedirectable: number;
  /** Functions whose best kind is each kind (+ `none`). */
  readonly bestKind: Readonly<Record<RedirectKind | "none", number>>;
  /** Functions that have each kind of site at all (usable or not). */
  readonly sitesFound: Readonly<Record<RedirectKind, number>>;
  readonly usdtProbes: number;
  /** Bytes reserved or free for redirects: usable sled NOPs, fentry calls, usable hotpatch padding. */
  readonly roomBytes: number;
}

export interface CheckReport {
  readonly file: string | undefined;
  readonly kind: Elf["kind"];
  readonly machine: string;
  readonly buildId: string | undefined;
  readonly functions: readonly FunctionReport[];
  readonly usdt: readonly UsdtSite[];
  readonly summary: CheckSummary;
  readonly warnings: readonly string[];
}

export interface CheckOptions {
  /** Only report functions whose name (or an alias) matches this glob. */
  readonly functionGlob?: string;
  readonly onWarning?: (message: string) => void;
}

/**
 * `graft check`: every function's patch sites and a verdict with reasons. Pure analysis over a parsed
 * file; the arch supplies decoding. Branch targets come from a linear sweep of every executable section.
 */
export function checkElf(elf: Elf, arch: Arch, options: CheckOptions = {}): CheckReport {
  if (elf.header.e_machine !== arch.elfMachine) {
    throw new GraftError(
      "ELF_UNSUPPORTED",
      `machine ${constantName(EM, elf.header.e_machine, "EM")} is not ${arch.name}`,
      {
        ...(elf.file === undefined ? {} : { subject: elf.file }),
        hint: "pass the arch of the file (getArchForMachine(elf.header.e_machine))",
      },
    );
  }
  const warnings: string[] = [];
  const warn = (m: string): void => {
    warnings.push(m);
    options.onWarning?.(m);
  };
  const functions = listFunctions(elf, arch);
  if (functions.length === 0) warn("no function symbols (stripped?): nothing to judge");
  const callTargets = new CallTargets(elf, arch, functions);
  const { branchesNear, gapBoundaries } = scanCode(elf, arch, functions);

  const sledRecords = groupByFunction(
    functions,
    readAddressTable(elf, sectionsNamed(elf, "__patchable_function_entries")),
    true,
    warn,
    "__patchable_function_entries",
  );
  const mcountRecords = groupByFunction(
    functions,
    readAddressTable(elf, sectionsNamed(elf, "__mcount_loc")),
    false,
    warn,
    "__mcount_loc",
  );
  const usdt = usdtSites(elf, arch, functions);
  const filter = options.functionGlob === undefined ? undefined : globToRegExp(options.functionGlob);
  const guardedCode = elf.header.e_machine === EM.EM_AARCH64 && aarch64Features(elf.notes()).bti;

  const reports: FunctionReport[] = [];
  functions.forEach((fn, i) => {
    if (filter !== undefined && !filter.test(fn.name) && !fn.aliases.some((a) => filter.test(a))) return;
    const ctx = siteContext(
      elf,
      arch,
      fn,
      branchesNear.get(i) ?? [],
      callTargets,
      gapBoundaries.get(i),
      guardedCode,
    );
    const sites: RedirectSite[] = [];
    const sled = sledRecords.get(i);
    if (sled !== undefined) sites.push(findSledSite(ctx, sled));
    const fentry = findFentrySite(ctx, mcountRecords.has(i));
    if (fentry !== undefined) sites.push(fentry);
    sites.push(findHotpatchSite(ctx), findOverwriteSite(ctx));
    reports.push({
      name: fn.name,
      aliases: fn.aliases,
      address: fn.address,
      size: fn.size,
      section: fn.section.name,
      binding: fn.binding,
      endbr: ctx.endbr > 0,
      sites,
      usdt: usdt.filter((u) => u.function === fn.name),
      verdict: judge(arch, sites, sled !== undefined, mcountRecords.has(i)),
    });
  });
  return {
    file: elf.file,
    kind: elf.kind,
    machine: arch.name,
    buildId: elf.buildId(),
    functions: reports,
    usdt,
    summary: summarize(reports, usdt.length),
    warnings,
  };
}

function sectionsNamed(elf: Elf, name: string) {
  return elf.sections.filter((s) => s.name === name);
}

/**
 * Gaps longer than this between a function's end and the next entry hold code no symbol covers
 * (stripped libraries: 36 MB of libLLVM's 53 MB .text); padding is looked for after the last branch
 * the sweep saw in them, rather than by decoding the whole gap again for every function.
 */
const LONG_GAP = 256n;

function siteContext(
  elf: Elf,
  arch: Arch,
  fn: FunctionInfo,
  branchesNear: SiteContext["branchesNear"],
  callTargets: CallTargets,
  gapBoundary: bigint | undefined,
  guardedCode: boolean,
): SiteContext {
  const bytes = elf.sectionBytes(fn.section);
  const sectionStart = elf.sectionAddress(fn.section);
  const off = Number(fn.address - sectionStart);
  const end = Math.min(bytes.length, off + Number(fn.size));
  const padFrom = Number(fn.previousEnd - sectionStart);
  const body = bytes.subarray(off, Math.max(off, end));
  return {
    elf,
    arch,
    fn,
    body,
    padding: bytes.subarray(Math.min(padFrom, off), off),
    ...(gapBoundary !== undefined && fn.address - fn.previousEnd > LONG_GAP && gapBoundary >= fn.previousEnd
      ? { paddingScanFrom: Number(gapBoundary - fn.previousEnd) }
      : {}),
    endbr: arch.endbrLength(body, 0),
    guardedCode,
    branchesNear,
    callTargets,
  };
}

/**
 * Assign each recorded address to its function: inside it (M = 0, at or after endbr64) or in the
 * padding just before its entry (M > 0) when no other record lies between it and the entry. Records
 * that fit no function (a stripped local function's) are reported as warnings.
 */
function groupByFunction(
  functions: readonly FunctionInfo[],
  records: readonly bigint[],
  allowBefore: boolean,
  warn: (m: string) => void,
  table: string,
): Map<number, bigint> {
  const out = new Map<number, bigint>();
  const starts = functions.map((f) => f.address);
  const sorted = [...records].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const assign = (i: number, r: bigint): void => {
    const had = out.get(i);
    if (had !== undefined && had !== r)
      warn(
        `${table} entry 0x${had.toString(16)} is a second record for ${functions[i]!.name}; using 0x${r.toString(16)}`,
      );
    out.set(i, r);
  };
  sorted.forEach((r, k) => {
    // First function whose entry is ≥ r.
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! < r) lo = mid + 1;
      else hi = mid;
    }
    const next = functions[lo];
    const prev = functions[lo - 1];
    // A pre-entry record belongs to the next entry only when no other record comes first: in a
    // stripped file the record of a local function that lost its symbol must not be taken for the
    // next symbol's sled (which has its own record).
    const nextRecord = sorted[k + 1];
    if (next !== undefined && next.address === r) assign(lo, r);
    else if (prev !== undefined && r > prev.address && r < prev.address + prev.size) assign(lo - 1, r);
    else if (
      allowBefore &&
      next !== undefined &&
      r >= next.previousEnd &&
      next.address - r < 256n &&
      (nextRecord === undefined || nextRecord > next.address + 4n)
    ) {
      assign(lo, r);
    } else warn(`${table} entry 0x${r.toString(16)} belongs to no function`);
  });
  return out;
}

function judge(arch: Arch, sites: readonly RedirectSite[], hasSled: boolean, hasMcount: boolean): Verdict {
  const usable = sites.filter((s) => s.problems.length === 0);
  const best = REDIRECT_KINDS.find((k) => usable.some((s) => s.kind === k));
  const reasons: string[] = [];
  if (!hasSled) reasons.push("sled: none recorded in __patchable_function_entries");
  if (!sites.some((s) => s.kind === "fentry")) {
    reasons.push(
      hasMcount
        ? "fentry: __mcount_loc lists it but the bytes are no fentry call or NOP"
        : "fentry: no __fentry__/mcount call at the entry",
    );
  }
  for (const s of sites) for (const p of s.problems) reasons.push(`${s.kind}: ${p}`);
  const bestSite = usable.find((s) => s.kind === best);
  const redirect = bestSite === undefined ? [] : describeRedirect(arch, bestSite);
  return { redirectable: best !== undefined, best, reasons, redirect };
}

function usdtSites(elf: Elf, arch: Arch, functions: readonly FunctionInfo[]): UsdtSite[] {
  return elf.usdtProbes().map((p) => {
    const fn = functions.find((f) => p.address >= f.address && p.address < f.address + f.size);
    const bytes =
      elf.findBytesAt(p.address, 1) === undefined
        ? undefined
        : elf.findBytesAt(
            p.address,
            Math.min(15, Number((fn?.address ?? p.address) + (fn?.size ?? 15n) - p.address)),
          );
    return {
      provider: p.provider,
      name: p.name,
      address: p.address,
      semaphore: p.semaphore,
      arguments: p.arguments,
      function: fn?.name,
      nopLength: bytes === undefined ? 0 : arch.nopLength(bytes, 0),
    };
  });
}

function summarize(reports: readonly FunctionReport[], usdtProbes: number): CheckSummary {
  const bestKind = { sled: 0, fentry: 0, hotpatch: 0, overwrite: 0, none: 0 };
  const sitesFound = { sled: 0, fentry: 0, hotpatch: 0, overwrite: 0 };
  let roomBytes = 0;
  for (const r of reports) {
    bestKind[r.verdict.best ?? "none"]++;
    for (const k of REDIRECT_KINDS)
      if (
        r.sites.some(
          (s) => s.kind === k && (k !== "hotpatch" && k !== "overwrite" ? true : s.problems.length === 0),
        )
      )
        sitesFound[k]++;
    for (const s of r.sites) {
      if (s.problems.length > 0 || s.kind === "overwrite") continue;
      roomBytes += s.writes.reduce((n, w) => n + w.room, 0);
    }
  }
  const redirectable = reports.length - bestKind.none;
  return {
    functions: reports.length,
    redirectable,
    percentRedirectable: reports.length === 0 ? 0 : Math.round((1000 * redirectable) / reports.length) / 10,
    bestKind,
    sitesFound,
    usdtProbes,
    roomBytes,
  };
}
