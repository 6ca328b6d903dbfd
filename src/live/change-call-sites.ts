import { createHash } from "node:crypto";
import { readlinkSync } from "node:fs";
import { ClobberedRegisters } from "../analysis/clobbered-registers.js";
import { listFunctions } from "../analysis/functions.js";
import { type CallSite, listCallSites } from "../analysis/list-call-sites.js";
import { SymbolIndex } from "../analysis/symbol-index.js";
import type { Arch } from "../arch/arch.js";
import { getLiveArchForMachine } from "../arch/index.js";
import { GraftError, RefusedError } from "../core/errors.js";
import { hex, hexString } from "../core/hex.js";
import { STT } from "../formats/elf/constants.js";
import { readMaps } from "../process/maps.js";
import { openMemory } from "../process/memory.js";
import { findModule } from "../process/modules.js";
import type { StopWindow } from "../process/stop-the-world.js";
import { type AuditNote, audited } from "./audit-log.js";
import { faultPoint } from "./fault-point.js";
import { type Journal, type JournalPatch, loadJournal, saveJournal } from "./journal.js";
import { journaledBytes, writesWithin } from "./journaled-bytes.js";
import { readPatchFile } from "./patch-file.js";
import { revertPatch } from "./revert-patch.js";
import { lockTarget } from "./target-lock.js";
import { type LoadedModule, TargetModules } from "./target-modules.js";
import { refuseSharedMemory } from "./target-safety.js";
import { writeWhileStopped } from "./write-while-stopped.js";

/** What to do to the selected calls. */
export type CallSiteAction =
  | { readonly kind: "nop" }
  /** `to`: a function of the module (`name`, `name@file.c`) or of an applied patch (`patch-id:function`). */
  | { readonly kind: "retarget"; readonly to: string }
  /** Undo every graft callsite change of the selected sites (their journal entries, last first). */
  | { readonly kind: "restore" };

export interface CallSiteRequest {
  /** One call: its link-time address in the module's file (as `graft calls` prints it). */
  readonly site?: bigint;
  /** Every call to this function (`name`, `name@plt`)… */
  readonly to?: string;
  /** …made by functions matching this glob. */
  readonly from?: string;
  readonly action: CallSiteAction;
  /** The loaded file the sites are in (path or basename); default the main executable (/proc/PID/exe). */
  readonly module?: string;
  /** NOP out a call whose result the caller reads; put a call at the `-pg -mfentry` hook. */
  readonly force?: boolean;
  /** Check and plan, change nothing. */
  readonly dryRun?: boolean;
  /** Give up stopping the threads after this long. */
  readonly stopTimeoutMs?: number;
}

/** One selected call site, before and after. */
export interface CallSiteChange {
  /** Link-time address in the module's file. */
  readonly address: bigint;
  readonly runtime: bigint;
  readonly caller: string;
  /** The callee in the file (what `--restore` brings back). */
  readonly callee: string | undefined;
  /** Bytes at the site before the change, and after it (hex). */
  readonly before: string;
  readonly after: string;
  /** `unchanged`: the site already held those bytes (or had nothing to restore). */
  readonly outcome: "changed" | "unchanged";
  /** Journal entries written (NOP, retarget) or reverted (restore) for this site. */
  readonly entries: readonly string[];
}

export interface CallSiteResult {
  readonly pid: number;
  readonly module: string;
  readonly bias: bigint;
  readonly action: CallSiteAction["kind"];
  /** The new callee of a retarget, at run time. */
  readonly newTarget: { readonly name: string; readonly address: bigint } | undefined;
  readonly dryRun: boolean;
  readonly sites: readonly CallSiteChange[];
  /** Stop-the-world timing; undefined when nothing was changed. */
  readonly pause: StopWindow | undefined;
  /** Instructions single-stepped to move threads out of rewritten bytes. */
  readonly stepped: number;
}

/** The module the sites are in: `name` among the loaded files, else the main executable. */
function pickModule(pid: number, modules: TargetModules, name: string | undefined): LoadedModule {
  let path = name;
  if (path === undefined) {
    try {
      path = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, "");
    } catch {
      throw new GraftError("NO_SUCH_PROCESS", "cannot read /proc/PID/exe", { subject: `pid ${pid}` });
    }
  }
  const m = findModule(modules.modules, path);
  const loaded = m === undefined ? undefined : modules.load(m);
  if (loaded === undefined) {
    throw new GraftError("FILE_NOT_FOUND", `process ${pid} has no readable ELF module ${path} loaded`, {
      subject: `pid ${pid}`,
      hint: "pass --module with the path or name of a loaded library (see /proc/PID/maps)",
    });
  }
  return loaded;
}

/** The selected call sites of the module's file; refuses when there are none. */
function selectSites(
  loaded: LoadedModule,
  arch: Arch,
  request: CallSiteRequest,
  pid: number,
): readonly CallSite[] {
  const sites = listCallSites(loaded.elf, arch, {
    ...(request.site === undefined ? {} : { at: request.site }),
    ...(request.to === undefined ? {} : { to: request.to }),
    ...(request.from === undefined ? {} : { from: request.from }),
  }).sites;
  if (sites.length > 0) return sites;
  const what =
    request.site !== undefined
      ? `no call instruction starts at ${hex(request.site)} in ${loaded.module.path}`
      : `no call to ${request.to}${request.from === undefined ? "" : ` from ${request.from}`} in ${loaded.module.path}`;
  throw new RefusedError("CALL_SITE_NOT_FOUND", [what], { subject: `pid ${pid}` });
}

/** A retarget's new callee: where it is at run time, what it may clobber, what the change depends on. */
interface NewCallee {
  readonly address: bigint;
  /** Caller-saved registers a call to it may change (all of them when unknown). */
  readonly clobbers: readonly string[];
  readonly dependsOn: readonly string[];
}

/**
 * Resolve a retarget's new callee: `patch-id:function` (the replacement that applied patch loaded for
 * `function`; the change then depends on the patch) or a function of the module.
 */
function resolveCallee(
  to: string,
  loaded: LoadedModule,
  arch: Arch,
  clobbers: ClobberedRegisters,
  journal: Journal,
  pid: number,
): NewCallee {
  const qualified = /^([^:]+):(.+)$/.exec(to);
  if (qualified !== null) {
    const [, id, fn] = qualified as unknown as [string, string, string];
    const patches = journal.patches.filter(
      (p) => (p.kind ?? "patch") === "patch" && (p.id === id || p.id.startsWith(id)),
    );
    if (patches.length !== 1) {
      throw new RefusedError(
        "PATCH_NOT_APPLIED",
        [
          patches.length === 0
            ? `no patch ${id} is applied to process ${pid}`
            : `${id} names ${patches.length} patches`,
        ],
        {
          subject: `pid ${pid}`,
        },
      );
    }
    const patch = patches[0]!;
    const f = patch.functions.find((x) => x.name === fn || x.name.replace(/@.*$/, "") === fn);
    if (f === undefined) {
      throw new RefusedError(
        "UNKNOWN_SYMBOL",
        [`patch ${patch.id} replaces ${patch.functions.map((x) => x.name).join(", ")}, not ${fn}`],
        { subject: to },
      );
    }
    return {
      address: BigInt(f.replacement),
      clobbers: patchFunctionClobbers(arch, patch.file, f.name),
      dependsOn: [patch.id],
    };
  }
  const sym = new SymbolIndex(loaded.elf).find(to);
  if (sym === undefined || sym.type !== STT.STT_FUNC) {
    throw new RefusedError(
      "UNKNOWN_SYMBOL",
      [
        sym === undefined
          ? `${loaded.module.path} defines no function ${to}`
          : `${to} is no plain function (an IFUNC resolver or data)`,
      ],
      { subject: to },
    );
  }
  return { address: sym.address + loaded.bias, clobbers: clobbers.of(sym.address), dependsOn: [] };
}

/**
 * The caller-saved registers the replacement for `name` in a patch file may change: what its code
 * writes when it calls nothing (a leaf), else every one (its callees are in other files).
 */
function patchFunctionClobbers(arch: Arch, patchPath: string, name: string): readonly string[] {
  try {
    const patch = readPatchFile(patchPath);
    const replacement = patch.manifest.functions.find((f) => f.qualifiedName === name)?.replacement;
    const sym = patch.elf
      .symbols()
      .find((s) => s.name === replacement && s.type === STT.STT_FUNC && s.st_shndx !== 0);
    const section = sym === undefined ? undefined : patch.elf.sections[sym.st_shndx];
    if (sym === undefined || section === undefined) return arch.callerSavedRegisters;
    const bytes = patch.elf.sectionBytes(section);
    const code = bytes.subarray(
      Number(sym.st_value),
      Math.min(bytes.length, Number(sym.st_value + sym.st_size)),
    );
    const w = arch.registerWrites(code, 0n);
    return w.opaque || w.callees.length > 0 ? arch.callerSavedRegisters : w.clobbered;
  } catch {
    return arch.callerSavedRegisters; // the patch file moved: assume the worst
  }
}

/** `%rcx, %rdx` (the first few of a long list, then how many more). */
function registerList(registers: readonly string[]): string {
  const shown = registers
    .slice(0, 6)
    .map((r) => `%${r}`)
    .join(", ");
  return registers.length > 6 ? `${shown} and ${registers.length - 6} more` : shown;
}

/** The callee as people read it. */
function calleeName(site: CallSite): string {
  return site.form === "nop"
    ? "(fentry NOP)"
    : (site.targetName ?? (site.target === undefined ? "?" : hex(site.target)));
}

/** A journal id for a change, unique in the journal: `callsite-` and 12 hex digits of its content. */
function entryId(journal: Journal, content: string): string {
  const base = `callsite-${createHash("sha256").update(content).digest("hex").slice(0, 12)}`;
  let id = base;
  for (let n = 2; journal.patches.some((p) => p.id === id); n++) id = `${base}-${n}`;
  return id;
}

/**
 * `graft callsite PID SITE|--to FUNC (--nop | --retarget F | --restore)`: rewrite call instructions of
 * a running process in one transaction, as `graft apply` does [DESIGN "safe code-modification
 * protocol"]: check every site (`graft calls`'s rules, the result-use rule for a NOP, reach for a
 * retarget), verify the bytes there (the file's, with earlier journaled writes laid over them), journal
 * the plan, stop every thread once, step threads out of the sites, write, read back, resume. Each
 * changed site becomes one journal entry (`callsite-…`), so `graft status` lists it and `graft revert`
 * (or `--restore`) undoes it. A NOP is the arch's one NOP of the call's length, never a run of short
 * ones; a retarget is a `call rel32` to the new callee that ends where the old call ended, so every
 * return address on a stack stays an instruction boundary.
 */
export function changeCallSites(pid: number, request: CallSiteRequest): CallSiteResult {
  if ((request.site === undefined) === (request.to === undefined)) {
    throw new GraftError("USAGE", "give a call site address or --to FUNC, not both or neither");
  }
  if (request.action.kind === "restore") return restoreCallSites(pid, request);
  if (request.dryRun) return changeOnce(pid, request, {});
  return audited("callsite", pid, (note) => changeOnce(pid, request, note));
}

function changeOnce(pid: number, request: CallSiteRequest, note: AuditNote): CallSiteResult {
  if (request.action.kind === "restore") return restoreCallSites(pid, request);
  refuseSharedMemory(pid);
  const lock = request.dryRun ? undefined : lockTarget(pid);
  const mem = openMemory(pid);
  try {
    const journal = loadJournal(pid);
    const unfinished = journal.patches.find((p) => p.state !== "applied");
    if (unfinished !== undefined) {
      throw new RefusedError(
        "JOURNAL_INCOMPLETE",
        [`${unfinished.id} (${unfinished.source}) was left ${unfinished.state}`],
        { subject: `pid ${pid}` },
      );
    }
    const modules = new TargetModules(pid, readMaps(pid));
    const loaded = pickModule(pid, modules, request.module);
    const arch = getLiveArchForMachine(loaded.elf.header.e_machine, loaded.module.path);
    const sites = selectSites(loaded, arch, request, pid);
    const action = request.action;
    // Only a retarget needs what functions clobber (a second listFunctions: not worth it for a NOP).
    const clobbers =
      action.kind === "retarget"
        ? new ClobberedRegisters(loaded.elf, arch, listFunctions(loaded.elf, arch))
        : undefined;
    const callee =
      action.kind === "retarget" && clobbers !== undefined
        ? resolveCallee(action.to, loaded, arch, clobbers, journal, pid)
        : undefined;
    const callLength = arch.encodeNearCall(0n, 0n)!.length;

    const unsafe: string[] = [];
    const resultUsed: string[] = [];
    const outOfReach: string[] = [];
    const changed: string[] = [];
    const planned: { site: CallSite; runtime: bigint; before: Uint8Array; after: Uint8Array }[] = [];
    for (const site of sites) {
      const where = `${site.caller} → ${calleeName(site)} at ${hex(site.address)}`;
      for (const p of site.problems) unsafe.push(`${where}: ${p}`);
      if (action.kind === "nop" && site.resultUse?.used === true && !request.force)
        resultUsed.push(`${where}: ${site.resultUse.reason}`);
      if (action.kind === "retarget" && site.fentry && !request.force) {
        unsafe.push(
          `${where}: the -pg -mfentry hook runs before the prologue; the new callee must keep every argument register as __fentry__ does (--force if it does)`,
        );
      } else if (
        action.kind === "retarget" &&
        clobbers !== undefined &&
        callee !== undefined &&
        !request.force
      ) {
        // gcc's -fipa-ra: a caller may keep its values in caller-saved registers the old callee
        // leaves alone, so the new callee may change no register the old one does not.
        const old =
          site.form === "direct" && site.target !== undefined
            ? clobbers.of(site.target)
            : site.form === "nop"
              ? []
              : arch.callerSavedRegisters;
        const extra = callee.clobbers.filter((r) => !old.includes(r));
        if (extra.length > 0) {
          unsafe.push(
            `${where}: ${action.to} may change ${registerList(extra)}, which ${calleeName(site)} leaves alone; gcc (-fipa-ra) may keep the caller's values there across the call (--force if it does not: a -fno-ipa-ra or -flive-patching=inline-clone build never does)`,
          );
        }
      }
      const runtime = site.address + loaded.bias;
      const end = runtime + BigInt(site.length);
      const original = loaded.elf.findBytesAt(site.address, site.length);
      if (original === undefined)
        throw new GraftError("INTERNAL", `no file bytes at ${hex(site.address)}`, {
          subject: loaded.module.path,
        });
      const patch = journal.patches.find(
        (p) => (p.kind ?? "patch") === "patch" && writesWithin(p, runtime, end),
      );
      if (patch !== undefined)
        changed.push(`${where}: patch ${patch.id} (${patch.source}) rewrites these bytes; revert it first`);
      const want = journaledBytes(journal.patches, runtime, original);
      const have = mem.read(runtime, site.length);
      if (hexString(have) !== hexString(want))
        changed.push(`${where}: expected ${hexString(want)}, found ${hexString(have)}`);
      let after: Uint8Array;
      if (action.kind === "nop") after = arch.nopFill(site.length);
      else {
        const call = arch.encodeNearCall(end - BigInt(callLength), callee!.address);
        if (call === undefined) {
          outOfReach.push(`${where}: ${hex(callee!.address)} is beyond ±2 GiB of ${hex(runtime)}`);
          continue;
        }
        after = new Uint8Array(site.length);
        after.set(arch.nopFill(site.length - call.length));
        after.set(call, site.length - call.length);
      }
      planned.push({ site, runtime, before: have, after });
    }
    const subject = { subject: `pid ${pid}` };
    if (changed.length > 0) throw new RefusedError("SITE_BYTES_CHANGED", changed, subject);
    if (unsafe.length > 0) throw new RefusedError("CALL_SITE_UNSAFE", unsafe, subject);
    if (resultUsed.length > 0) throw new RefusedError("CALL_RESULT_USED", resultUsed, subject);
    if (outOfReach.length > 0) throw new RefusedError("TARGET_OUT_OF_REACH", outOfReach, subject);

    const writes = planned.filter((p) => hexString(p.before) !== hexString(p.after));
    const entries = new Map<(typeof planned)[number], JournalPatch>();
    for (const w of writes) {
      const before = hexString(w.before);
      const after = hexString(w.after);
      const verb = action.kind === "nop" ? "nop" : `retarget to ${action.to}`;
      const entry: JournalPatch = {
        id: entryId(
          journal,
          `${loaded.buildId ?? loaded.module.path}\0${w.site.address}\0${before}\0${after}`,
        ),
        kind: "callsite",
        file: loaded.module.path,
        source: `${verb}: ${w.site.caller} → ${calleeName(w.site)} at ${hex(w.site.address)}`,
        state: "applying",
        mapping: { address: "0x0", size: "0x0" },
        writes: [{ address: hex(w.runtime), before, after, function: w.site.caller, role: "call" }],
        functions: [
          {
            name: w.site.caller,
            replacement: callee === undefined ? "" : hex(callee.address),
            address: hex(w.runtime),
            kind: action.kind === "nop" ? "callsite-nop" : "callsite-retarget",
          },
        ],
        dependsOn: callee?.dependsOn ?? [],
        appliedAt: new Date().toISOString(),
        by: { pid: process.pid, uid: process.getuid?.() },
      };
      entries.set(w, entry);
      if (!request.dryRun) journal.patches.push(entry);
    }
    const result = (pause: StopWindow | undefined, stepped: number): CallSiteResult => ({
      pid,
      module: loaded.module.path,
      bias: loaded.bias,
      action: action.kind,
      newTarget:
        callee === undefined || action.kind !== "retarget"
          ? undefined
          : { name: action.to, address: callee.address },
      dryRun: request.dryRun === true,
      sites: planned.map((p) => ({
        address: p.site.address,
        runtime: p.runtime,
        caller: p.site.caller,
        callee: p.site.targetName,
        before: hexString(p.before),
        after: hexString(p.after),
        outcome: entries.has(p) ? "changed" : "unchanged",
        entries: entries.has(p) && !request.dryRun ? [entries.get(p)!.id] : [],
      })),
      pause,
      stepped,
    });
    if (request.dryRun || writes.length === 0) return result(undefined, 0);

    note.entries = [...entries.values()].map((e) => e.id);
    saveJournal(journal);
    faultPoint("callsite:journaled");
    let outcome: { pause: StopWindow; stepped: number };
    try {
      outcome = writeWhileStopped(
        pid,
        mem,
        writes.map((w) => ({
          address: w.runtime,
          bytes: w.after,
          room: w.after.length,
          faultPoint: "callsite:wrote",
        })),
        request.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: request.stopTimeoutMs },
      );
    } catch (e) {
      if (!(e instanceof GraftError && /rollback incomplete/.test(e.message))) {
        journal.patches = journal.patches.filter((p) => ![...entries.values()].includes(p));
        saveJournal(journal);
      }
      throw e;
    }
    faultPoint("callsite:resumed");
    for (const entry of entries.values()) entry.state = "applied";
    saveJournal(journal);
    return result(outcome.pause, outcome.stepped);
  } finally {
    mem.close();
    lock?.release();
  }
}

/**
 * `--restore`: revert, in one stop, every call-site journal entry that wrote the selected sites (last
 * first; `graft revert` does the checking, the stop and the journal). A site graft never changed
 * is left as it is.
 */
function restoreCallSites(pid: number, request: CallSiteRequest): CallSiteResult {
  const mem = openMemory(pid);
  try {
    const journal = loadJournal(pid);
    const modules = new TargetModules(pid, readMaps(pid));
    const loaded = pickModule(pid, modules, request.module);
    const arch = getLiveArchForMachine(loaded.elf.header.e_machine, loaded.module.path);
    const sites = selectSites(loaded, arch, request, pid);
    const perSite = sites.map((site) => {
      const runtime = site.address + loaded.bias;
      const entries = journal.patches.filter(
        (p) => p.kind === "callsite" && writesWithin(p, runtime, runtime + BigInt(site.length)),
      );
      return { site, runtime, entries, before: hexString(mem.read(runtime, site.length)) };
    });
    const ids = [...new Set(perSite.flatMap((s) => s.entries.map((e) => e.id)))];
    let pause: StopWindow | undefined;
    if (ids.length > 0 && !request.dryRun) pause = revertPatch(pid, { ids }).pauses[0];
    return {
      pid,
      module: loaded.module.path,
      bias: loaded.bias,
      action: "restore",
      newTarget: undefined,
      dryRun: request.dryRun === true,
      sites: perSite.map((s) => {
        const original = s.entries.length === 0 ? s.before : s.entries[0]!.writes[0]!.before;
        const after = request.dryRun ? original : hexString(mem.read(s.runtime, s.site.length));
        return {
          address: s.site.address,
          runtime: s.runtime,
          caller: s.site.caller,
          callee: s.site.targetName,
          before: s.before,
          after,
          outcome: s.entries.length === 0 ? "unchanged" : "changed",
          entries: s.entries.map((e) => e.id),
        };
      }),
      pause,
      stepped: 0,
    };
  } finally {
    mem.close();
  }
}
