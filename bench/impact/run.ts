/**
 * bench:impact — `graft impact FILE --all --json` (every DIE of every unit, the function model, the
 * closure for every function) and one `graft impact FILE FUNC` against `readelf --debug-dump=info`
 * (binutils decoding and printing the same DIEs), in the same run: wall clock and CPU time (median of
 * 3), peak RSS. Default file: glibc's separate debug file from libc6-dbg (2000+ units, ~600k DIEs,
 * zlib-compressed DWARF 5), found through libc.so.6's build-id; or FILE from argv.
 * readelf runs with -wN: without it, it follows the debug file to itself by build-id and prints
 * everything twice.
 *
 *   npx tsx bench/impact/run.ts [FILE [FUNC]]        (npm run bench:impact -- [FILE [FUNC]])
 */
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import {
  type CommandSample,
  cli,
  ensureCliBuilt,
  measureCommand,
  median,
} from "../support/command-sample.js";

const RUNS = 3;

function libcDebugFile(): string | undefined {
  const libc = "/lib/x86_64-linux-gnu/libc.so.6";
  if (!existsSync(libc)) return undefined;
  const id = readElfFile(libc).buildId();
  const path =
    id === undefined ? undefined : `/usr/lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`;
  return path !== undefined && existsSync(path) ? path : undefined;
}

function main(): void {
  const file = process.argv[2] === undefined ? libcDebugFile() : resolve(process.argv[2]);
  if (file === undefined) throw new Error("no FILE given and no libc debug file (apt-get install libc6-dbg)");
  const func = process.argv[3] ?? "malloc";
  ensureCliBuilt();
  const elf = readElfFile(file);
  const info = elf.findSection(".debug_info");
  process.stderr.write(
    `file: ${file} (${(statSync(file).size / 1e6).toFixed(1)} MB, .debug_info ${info === undefined ? "none" : `${(Number(info.sh_size) / 1e6).toFixed(1)} MB in the file`})\n`,
  );

  const commands: [string, string, string[]][] = [
    ["graft impact --all --json", "node", [cli, "impact", file, "--all", "--json"]],
    [`graft impact ${func}`, "node", [cli, "impact", file, func]],
    ["readelf -wN --debug-dump=info", "readelf", ["-wN", "--debug-dump=info", file]],
  ];
  measureCommand(commands[2]![1], commands[2]![2]); // warm the page cache
  const samples = commands.map(() => [] as CommandSample[]);
  for (let i = 0; i < RUNS; i++)
    for (const [k, [label, cmd, args]] of commands.entries()) {
      process.stderr.write(`run ${i + 1}/${RUNS}: ${label}...`);
      samples[k]!.push(measureCommand(cmd, args));
      process.stderr.write(` ${samples[k]![i]!.wall.toFixed(2)} s\n`);
    }
  const cpu = (xs: CommandSample[]) =>
    xs.some((s) => s.cpu === undefined) ? undefined : median(xs.map((s) => s.cpu!));
  const wall = (xs: CommandSample[]) => median(xs.map((s) => s.wall));
  const rss = (xs: CommandSample[]) =>
    xs.some((s) => s.rssKb === undefined)
      ? "n/a"
      : `${(Math.max(...xs.map((s) => s.rssKb!)) / 1024).toFixed(0)} MB`;
  console.log(`\nfile: ${file}\n`);
  console.log(`| command | wall (median of ${RUNS}) | CPU user+sys | peak RSS |`);
  console.log("|---|---|---|---|");
  for (const [k, [label]] of commands.entries()) {
    const c = cpu(samples[k]!);
    console.log(
      `| ${label} | ${wall(samples[k]!).toFixed(2)} s | ${c === undefined ? "n/a" : `${c.toFixed(2)} s`} | ${rss(samples[k]!)} |`,
    );
  }
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? "n/a" : (a / b).toFixed(2);
  const [all, one, peer] = samples as [CommandSample[], CommandSample[], CommandSample[]];
  console.log(
    `\nratio readelf/graft --all: wall ${ratio(wall(peer), wall(all))}, CPU ${ratio(cpu(peer), cpu(all))} (> 1: graft is faster)`,
  );
  console.log(
    `ratio readelf/graft ${func}: wall ${ratio(wall(peer), wall(one))}, CPU ${ratio(cpu(peer), cpu(one))}`,
  );
}

try {
  main();
} catch (e) {
  process.stderr.write(`bench:impact: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
