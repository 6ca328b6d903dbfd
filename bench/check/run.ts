/**
 * bench:check — `graft check FILE --json` against `objdump -d FILE` on the largest ELF executable or
 * shared library on this machine (or FILE from argv), in the same run: wall clock (median of 3),
 * peak RSS (GNU time's %M) and functions analysed. Goal: graft no slower than objdump, which decodes
 * the same bytes but judges nothing.
 *
 * An AArch64 FILE (e.g. /usr/aarch64-linux-gnu/lib/libc.so.6) is compared with
 * aarch64-linux-gnu-objdump, since the host's objdump does not disassemble it.
 *
 *   npx tsx bench/check/run.ts [FILE]        (npm run bench:check -- [FILE])
 */
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  type CommandSample,
  cli,
  ensureCliBuilt,
  measureCommand,
  median,
} from "../support/command-sample.js";

const SCAN_ROOTS = ["/usr/bin", "/usr/lib", "/usr/local", "/opt", "/root/.cargo", "/root/.rustup"];
const RUNS = 3;

const ET_EXEC = 2;
const ET_DYN = 3;
const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;

const EM_AARCH64 = 183;

/** The objdump that disassembles `path`'s machine. */
function objdumpFor(path: string): string {
  const fd = openSync(path, "r");
  try {
    const h = Buffer.alloc(20);
    readSync(fd, h, 0, 20, 0);
    return h.readUInt16LE(18) === EM_AARCH64 ? "aarch64-linux-gnu-objdump" : "objdump";
  } finally {
    closeSync(fd);
  }
}

/** ELF64 little-endian executable or shared object with a .symtab or .dynsym, read from its headers only. */
function isCandidate(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const h = Buffer.alloc(64);
    if (readSync(fd, h, 0, 64, 0) < 64) return false;
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return false;
    const type = h.readUInt16LE(16);
    if (type !== ET_EXEC && type !== ET_DYN) return false;
    const shoff = Number(h.readBigUInt64LE(0x28));
    const shentsize = h.readUInt16LE(0x3a);
    const shnum = h.readUInt16LE(0x3c);
    if (shoff === 0 || shnum === 0 || shentsize < 64 || shnum > 65_000) return false;
    const table = Buffer.alloc(shnum * shentsize);
    if (readSync(fd, table, 0, table.length, shoff) < table.length) return false;
    for (let i = 0; i < shnum; i++) {
      const t = table.readUInt32LE(i * shentsize + 4);
      if (t === SHT_SYMTAB || t === SHT_DYNSYM) return true;
    }
    return false;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Regular files (no symlinks followed), biggest first. */
function scan(roots: readonly string[]): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  const walk = (dir: string): void => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          const size = statSync(p).size;
          if (size >= 1 << 20) out.push({ path: p, size });
        } catch {
          // vanished or unreadable: not a candidate
        }
      }
    }
  };
  for (const r of roots) if (existsSync(r)) walk(r);
  return out.sort((a, b) => b.size - a.size);
}

function mb(kb: number | undefined): string {
  return kb === undefined ? "n/a" : `${(kb / 1024).toFixed(0)} MB`;
}

function main(): void {
  const override = process.argv[2];
  let file: string;
  if (override !== undefined) {
    file = resolve(override);
    if (!isCandidate(file))
      throw new Error(`${file}: not an ELF64 executable/shared library with .symtab or .dynsym`);
  } else {
    process.stderr.write(`scanning ${SCAN_ROOTS.join(" ")} for ELF files...\n`);
    const found = scan(SCAN_ROOTS).find((f) => isCandidate(f.path));
    if (found === undefined) throw new Error("no ELF executable or shared library with symbols found");
    file = found.path;
  }
  const size = statSync(file).size;

  ensureCliBuilt();

  process.stderr.write(`file: ${file} (${(size / 1e6).toFixed(1)} MB)\n`);
  // Warm the page cache and learn the function count (untimed).
  const summary = spawnSync("node", [cli, "check", file, "--summary"], {
    encoding: "utf8",
    maxBuffer: 1 << 26,
  });
  if (summary.status !== 0) throw new Error(`graft check --summary failed: ${summary.stderr}`);
  const functions = /functions: (\d+), redirectable: (\d+) \(([\d.]+)%\)/.exec(summary.stdout);

  const graft: CommandSample[] = [];
  const objdump: CommandSample[] = [];
  for (let i = 0; i < RUNS; i++) {
    process.stderr.write(`run ${i + 1}/${RUNS}: graft check...`);
    graft.push(measureCommand("node", [cli, "check", file, "--json"]));
    process.stderr.write(` ${graft[i]!.wall.toFixed(2)} s; objdump -d...`);
    objdump.push(measureCommand(objdumpFor(file), ["-d", file]));
    process.stderr.write(` ${objdump[i]!.wall.toFixed(2)} s\n`);
  }
  const g = median(graft.map((s) => s.wall));
  const o = median(objdump.map((s) => s.wall));
  const peak = (xs: CommandSample[]): number | undefined =>
    xs.some((s) => s.rssKb === undefined) ? undefined : Math.max(...xs.map((s) => s.rssKb!));

  const rows = [
    ["command", `wall (median of ${RUNS})`, "runs", "peak RSS"],
    [
      `graft check --json > /dev/null`,
      `${g.toFixed(2)} s`,
      graft.map((s) => s.wall.toFixed(2)).join(" "),
      mb(peak(graft)),
    ],
    [
      `${objdumpFor(file)} -d > /dev/null`,
      `${o.toFixed(2)} s`,
      objdump.map((s) => s.wall.toFixed(2)).join(" "),
      mb(peak(objdump)),
    ],
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]): string => `| ${r.map((x, c) => x.padEnd(widths[c]!)).join(" | ")} |`;
  console.log(`\nfile: ${file} (${(size / 1e6).toFixed(1)} MB)`);
  console.log(
    `functions analysed: ${functions?.[1] ?? "?"} (redirectable ${functions?.[2] ?? "?"}, ${functions?.[3] ?? "?"}%)\n`,
  );
  console.log(line(rows[0]!));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows.slice(1)) console.log(line(r));
  console.log(
    `\nratio objdump/graft: ${(o / g).toFixed(2)} (${o >= g ? "graft is no slower than objdump" : "graft is SLOWER than objdump"})`,
  );
}

try {
  main();
} catch (e) {
  process.stderr.write(`bench:check: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
