import { existsSync } from "node:fs";
import { join } from "node:path";

/** The directories the dynamic loader searches by default on Debian/Ubuntu x86-64 (ld.so.conf). */
const SYSTEM_LIBRARY_DIRS = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib64",
  "/usr/lib64",
  "/lib",
  "/usr/lib",
];

/** Path of a DT_NEEDED library as the loader would find it by default, or undefined. */
export function findSystemLibrary(soname: string, extraDirs: readonly string[] = []): string | undefined {
  if (soname.includes("/")) return existsSync(soname) ? soname : undefined;
  for (const dir of [...extraDirs, ...SYSTEM_LIBRARY_DIRS]) {
    const p = join(dir, soname);
    if (existsSync(p)) return p;
  }
  return undefined;
}
