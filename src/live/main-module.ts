import { readlinkSync } from "node:fs";
import { GraftError } from "../core/errors.js";
import { readMaps } from "../process/maps.js";
import { findModule } from "../process/modules.js";
import { type LoadedModule, TargetModules } from "./target-modules.js";

/** The process's main executable (/proc/PID/exe) as loaded: its ELF and load bias. */
export function loadMainModule(pid: number): LoadedModule {
  let path: string;
  try {
    path = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, "");
  } catch {
    throw new GraftError("NO_SUCH_PROCESS", "cannot read /proc/PID/exe", { subject: `pid ${pid}` });
  }
  const modules = new TargetModules(pid, readMaps(pid));
  const m = findModule(modules.modules, path);
  const loaded = m === undefined ? undefined : modules.load(m);
  if (loaded === undefined) {
    throw new GraftError("FILE_NOT_FOUND", `process ${pid} has no readable ELF module ${path} loaded`, {
      subject: `pid ${pid}`,
    });
  }
  return loaded;
}
