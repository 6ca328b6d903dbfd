import { readFileSync, statSync } from "node:fs";
import { SymbolIndex } from "../analysis/symbol-index.js";
import { RefusedError } from "../core/errors.js";
import { R_X86_64, STT } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import { parseElf } from "../formats/elf/elf.js";
import { loadBias } from "../formats/elf/load-bias.js";
import type { Mapping } from "../process/maps.js";
import { readMemory } from "../process/memory.js";
import { listModules, type Module } from "../process/modules.js";

/** One ELF file mapped into the target, parsed, with its load bias. */
export interface LoadedModule {
  readonly module: Module;
  readonly elf: Elf;
  readonly bias: bigint;
  readonly buildId: string | undefined;
}

/**
 * Read a module's ELF through /proc/PID/map_files, which opens the very file mapped — even when it
 * was deleted or replaced on disk since (a package upgrade under a running service).
 */
function readModuleElf(pid: number, m: Module, cache: ModuleCache | undefined): Elf | undefined {
  const base = m.base ?? m.mappings[0];
  if (base === undefined) return undefined;
  const candidates = [
    `/proc/${pid}/map_files/${base.start.toString(16)}-${base.end.toString(16)}`,
    `/proc/${pid}/root${m.path}`,
  ];
  for (const path of candidates) {
    try {
      const key = cache === undefined ? undefined : fileIdentity(path);
      const known = key === undefined ? undefined : cache?.elfs.get(key);
      if (known !== undefined) return known;
      const elf = parseElf(readFileSync(path), { file: m.path });
      if (key !== undefined) cache?.elfs.set(key, elf);
      return elf;
    } catch {}
  }
  return undefined;
}

/** Device, inode, size and modification time of the file behind `path`: the same file, unchanged. */
function fileIdentity(path: string): string {
  const s = statSync(path, { bigint: true });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
}

/**
 * Parsed files and symbol indexes shared between the TargetModules of many processes running the
 * same binaries (graft apply --all-of): each library is read and indexed once, not once per process.
 */
export class ModuleCache {
  readonly elfs = new Map<string, Elf>();
  private readonly indexes = new WeakMap<Elf, SymbolIndex>();

  symbolIndex(elf: Elf): SymbolIndex {
    let index = this.indexes.get(elf);
    if (index === undefined) {
      index = new SymbolIndex(elf);
      this.indexes.set(elf, index);
    }
    return index;
  }
}

/** The process's loaded ELF modules (main executable, ld.so, libc, …) with their biases. */
export class TargetModules {
  readonly modules: readonly Module[];
  private readonly loaded = new Map<Module, LoadedModule | null>();
  private indexes: { module: LoadedModule; index: SymbolIndex }[] | undefined;

  constructor(
    readonly pid: number,
    readonly maps: readonly Mapping[],
    private readonly cache?: ModuleCache,
  ) {
    this.modules = listModules(maps);
  }

  load(m: Module): LoadedModule | undefined {
    if (!this.loaded.has(m)) {
      const elf = readModuleElf(this.pid, m, this.cache);
      const base = m.base;
      const bias =
        elf === undefined || base === undefined ? undefined : loadBias(elf, base.start, base.offset);
      this.loaded.set(
        m,
        elf === undefined || bias === undefined ? null : { module: m, elf, bias, buildId: elf.buildId() },
      );
    }
    return this.loaded.get(m) ?? undefined;
  }

  /**
   * The module with this build-id; `nameHint` (the file the patch was built against) is tried first
   * so a big process is not parsed whole. Refuses with both ids when nothing matches.
   */
  getByBuildId(buildId: string, nameHint: string): LoadedModule {
    const byName = this.modules.filter((m) => m.path.endsWith(`/${nameHint}`));
    const others = this.modules.filter((m) => !byName.includes(m));
    for (const m of [...byName, ...others]) {
      const l = this.load(m);
      if (l?.buildId === buildId) return l;
    }
    const seen = byName.map((m) => `${m.path} has build-id ${this.load(m)?.buildId ?? "none"}`);
    throw new RefusedError(
      "BUILD_ID_MISMATCH",
      [`no module of process ${this.pid} has build-id ${buildId} (the patch is for ${nameHint})`, ...seen],
      {
        subject: `pid ${this.pid}`,
      },
    );
  }

  /**
   * Runtime address of a symbol the fix needs: the patched module first (its statics too, and
   * `name@file.c`), then every other loaded module's exported symbols (libc and friends).
   */
  resolve(target: LoadedModule, name: string): bigint | undefined {
    this.indexes ??= this.modules
      .map((m) => this.load(m))
      .filter((l): l is LoadedModule => l !== undefined)
      .map((module) => ({
        module,
        index: this.cache?.symbolIndex(module.elf) ?? new SymbolIndex(module.elf),
      }));
    const own = this.indexes.find((x) => x.module === target)?.index ?? new SymbolIndex(target.elf);
    const sym = own.find(name);
    if (sym !== undefined && sym.type === STT.STT_GNU_IFUNC)
      return this.resolvedIfunc(target, target, name, sym.address);
    if (sym !== undefined && (sym.address !== 0n || sym.type !== 0)) return sym.address + target.bias;
    for (const { module, index } of this.indexes) {
      if (module === target) continue;
      const s = index.find(name);
      if (s === undefined || s.local) continue;
      return s.type === STT.STT_GNU_IFUNC
        ? this.resolvedIfunc(target, module, name, s.address)
        : s.address + module.bias;
    }
    return undefined;
  }

  /**
   * An IFUNC symbol (memcpy, strlen, … in glibc) names a resolver, not the function: calling it would
   * return an address. The implementation ld.so chose for this CPU is in the GOT slot of the target's
   * own reference to the symbol, once bound, or in the providing library's own R_X86_64_IRELATIVE slot
   * for it (glibc calls strlen internally through one); read it from there. Refused when neither is bound.
   */
  private resolvedIfunc(
    target: LoadedModule,
    provider: LoadedModule,
    name: string,
    resolver: bigint,
  ): bigint {
    const readSlot = (m: LoadedModule, at: bigint): bigint =>
      new DataView(readMemory(this.pid, at + m.bias, 8).buffer).getBigUint64(0, true);
    for (const rs of provider.elf.relocationSections()) {
      for (const r of rs.entries) {
        if (r.type !== R_X86_64.R_X86_64_IRELATIVE || r.addend !== resolver) continue;
        const slot = readSlot(provider, r.r_offset);
        if (slot !== resolver + provider.bias) return slot;
      }
    }
    const dynsym = target.elf.dynamicSymbols();
    for (const rs of target.elf.relocationSections()) {
      for (const r of rs.entries) {
        if (r.type !== R_X86_64.R_X86_64_GLOB_DAT && r.type !== R_X86_64.R_X86_64_JUMP_SLOT) continue;
        if (dynsym[r.symbolIndex]?.name !== name) continue;
        const slot = readSlot(target, r.r_offset);
        if (slot < target.module.start || slot >= target.module.end) return slot;
      }
    }
    throw new RefusedError(
      "UNSUPPORTED_RELOCATION",
      [`${name} is an IFUNC whose implementation the process has not bound yet`],
      {
        subject: name,
        hint: `call ${name} from the target once first (or link it with -z now), or use another function`,
      },
    );
  }
}
