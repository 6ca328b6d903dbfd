import { decodeUsdtLocation, type UsdtLocation } from "../formats/elf/usdt-location.js";
import type { CheckReport } from "./check.js";
import { chooseTraceSite } from "./trace-site.js";

/** One USDT probe argument: size, signedness and where it lives. */
export interface ProbeArgument {
  readonly size: number;
  readonly signed: boolean;
  readonly spec: string;
  readonly location: UsdtLocation;
}

/** One USDT probe site, with link-time and (for a process) runtime addresses. */
export interface ProbeInfo {
  readonly provider: string;
  readonly name: string;
  readonly address: bigint;
  readonly runtimeAddress: bigint;
  /** 0n when the probe has no semaphore. */
  readonly semaphore: bigint;
  readonly runtimeSemaphore: bigint;
  readonly function: string | undefined;
  /** Length of the NOP at the probe (0: not a NOP, the probe is armed or damaged). */
  readonly nopLength: number;
  readonly arguments: readonly ProbeArgument[];
}

/** One function's hook for `graft trace`. */
export interface FunctionProbe {
  readonly name: string;
  readonly address: bigint;
  readonly runtimeAddress: bigint;
  /** The kind of site trace uses, or undefined with `reason`. */
  readonly site: "sled" | "fentry" | "hotpatch" | "overwrite" | undefined;
  readonly siteAddress: bigint | undefined;
  readonly reason: string | undefined;
}

export interface ProbesReport {
  readonly file: string | undefined;
  readonly pid: number | undefined;
  /** Runtime − link-time address (0 for a file, or an ET_EXEC). */
  readonly bias: bigint;
  readonly probes: readonly ProbeInfo[];
  readonly functions: readonly FunctionProbe[];
  readonly traceable: number;
}

/** `graft probes`: the USDT probes of a file and the function hooks trace can use, from a check report. */
export function listProbes(report: CheckReport, bias: bigint, pid?: number): ProbesReport {
  const probes = report.usdt.map((u) => ({
    provider: u.provider,
    name: u.name,
    address: u.address,
    runtimeAddress: u.address + bias,
    semaphore: u.semaphore,
    runtimeSemaphore: u.semaphore === 0n ? 0n : u.semaphore + bias,
    function: u.function,
    nopLength: u.nopLength,
    arguments: u.arguments.map((a) => ({
      size: a.size,
      signed: a.signed,
      spec: `${a.signed ? "-" : ""}${a.size}@${a.location}`,
      location: decodeUsdtLocation(a.location),
    })),
  }));
  const functions = report.functions.map((f) => {
    const c = chooseTraceSite(f);
    return {
      name: f.name,
      address: f.address,
      runtimeAddress: f.address + bias,
      site: c.site?.kind,
      siteAddress: c.site === undefined ? undefined : c.site.entry.address + bias,
      reason: c.reason,
    };
  });
  return {
    file: report.file,
    pid,
    bias,
    probes,
    functions,
    traceable: functions.filter((f) => f.site !== undefined).length,
  };
}
