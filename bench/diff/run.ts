/**
 * bench:diff — `graft diff` on two builds of one program that differ by a one-line change, against
 * what people do by hand: `objdump -d` of both builds plus `diff`, in the same run. Wall clock
 * (median of 3) of each, the ratio, and how much each reports: graft the changed functions, the
 * objdump diff every line that moved (addresses shift after the change).
 *
 * Two programs: a generated one (N translation units of C with statics, switch tables, strings),
 * and, with `--deb`, Lua 5.4 from its Debian source package (`apt-get source lua5.4` at run time into
 * bench/diff/out/, enabling a deb-src entry first if the machine has none). Each is built twice with
 * gcc -O2 (PIE), the second time with a one-line change; graft must report exactly that function.
 * Writes under bench/diff/out/ (gitignored).
 *
 *   npx tsx bench/diff/run.ts [--deb] [UNITS]   (npm run bench:diff -- --deb; default 40 units × 120 functions)
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { diffBuilds } from "../../src/analysis/diff/diff-builds.js";
import { x86_64 } from "../../src/arch/index.js";
import { readElfFile } from "../../src/formats/elf/elf-file.js";
import { median } from "../support/command-sample.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const cli = join(repoRoot, "dist/cli/main.js");
const out = join(repoRoot, "bench/diff/out");
const args = process.argv.slice(2);
const WITH_DEB = args.includes("--deb");
const UNITS = Number(args.find((a) => /^\d+$/.test(a)) ?? 40);
const PER_UNIT = 60;
const RUNS = 3;

function unitSource(u: number, patched: boolean): string {
  let s = `#include <stdio.h>\n#include <string.h>\nstatic int counter_${u};\n`;
  for (let f = 0; f < PER_UNIT; f++) {
    // The one-line fix: one helper gets a little longer, so everything after it moves.
    const body =
      patched && u === Math.floor(UNITS / 2) && f === 7 ? `x * 3 + ${f} + (x >> 3)` : `x * 3 + ${f}`;
    s += `static __attribute__((noinline)) int helper_${u}_${f}(int x) { counter_${u}++; return ${body}; }\n`;
    s += `int fn_${u}_${f}(int x) {\n  switch (x & 7) {\n  case 0: return helper_${u}_${f}(x) + 11; case 1: return x + ${f};\n`;
    s += `  case 2: return (int)strlen("unit ${u} function ${f}") + x; case 3: return x ^ ${f * 7};\n`;
    s += `  case 4: printf("%d ${u}/${f}\\n", x); return 4; case 5: return x - ${u};\n  case 6: return x * x; default: return helper_${u}_${f}(x - 1);\n  }\n}\n`;
  }
  return s;
}

function build(tree: string, patched: boolean): string {
  mkdirSync(tree, { recursive: true });
  const sources: string[] = [];
  for (let u = 0; u < UNITS; u++) {
    const f = join(tree, `unit${u}.c`);
    writeFileSync(f, unitSource(u, patched));
    sources.push(f);
  }
  const main = join(tree, "main.c");
  writeFileSync(
    main,
    `int fn_0_0(int);\nint main(int argc, char **argv) { (void)argv; return fn_0_0(argc); }\n`,
  );
  const exe = join(tree, "prog");
  execFileSync("gcc", ["-O2", "-o", exe, main, ...sources]);
  return exe;
}

function time(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** Time graft diff and objdump -d ×2 + diff on two linked builds; print both and the ratio. */
function compare(title: string, a: string, b: string): void {
  let graftReport = "";
  let objdumpLines = 0;
  const graftMs: number[] = [];
  const objdumpMs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    graftMs.push(
      time(() => {
        graftReport = execFileSync(process.execPath, [cli, "diff", a, b, "--json"], {
          encoding: "utf8",
          maxBuffer: 1 << 28,
        });
      }),
    );
    objdumpMs.push(
      time(() => {
        const da = join(out, "a.dis");
        const db = join(out, "b.dis");
        writeFileSync(da, execFileSync("objdump", ["-d", "--no-show-raw-insn", a], { maxBuffer: 1 << 30 }));
        writeFileSync(db, execFileSync("objdump", ["-d", "--no-show-raw-insn", b], { maxBuffer: 1 << 30 }));
        const d = spawnSync("diff", [da, db], { encoding: "utf8", maxBuffer: 1 << 30 });
        objdumpLines = d.stdout.split("\n").filter((l) => /^[<>]/.test(l)).length;
      }),
    );
  }
  const libraryMs: number[] = [];
  for (let i = 0; i < RUNS; i++)
    libraryMs.push(time(() => diffBuilds(readElfFile(a), readElfFile(b), x86_64)));
  const report = JSON.parse(graftReport);
  const g = median(graftMs);
  const lib = median(libraryMs);
  const o = median(objdumpMs);
  const changed = report.functions.changed.map((f: { name: string }) => f.name);
  console.log(`${title}`);
  console.log(
    `  graft diff:           ${g.toFixed(0)} ms (median of ${RUNS}); ${changed.length} changed function(s): ${changed.join(", ")}; ${report.functions.unchanged} unchanged`,
  );
  console.log(
    `  objdump -d ×2 + diff: ${o.toFixed(0)} ms (median of ${RUNS}); ${objdumpLines} differing lines`,
  );
  console.log(`  diffBuilds (library, no node start-up): ${lib.toFixed(0)} ms (median of ${RUNS})`);
  console.log(`  ratio graft/objdump+diff: ${(g / o).toFixed(2)} (CLI), ${(lib / o).toFixed(2)} (library)`);
}

/** Lua 5.4 from its Debian source package, built twice: str_reverse changed in the second. */
function buildLua(): [string, string] | undefined {
  const deb = join(out, "deb");
  mkdirSync(deb, { recursive: true });
  const hasDebSrc = readdirSync("/etc/apt/sources.list.d").some((f) =>
    /deb-src/.test(readFileSync(join("/etc/apt/sources.list.d", f), "utf8")),
  );
  if (!hasDebSrc) {
    const list = readFileSync("/etc/apt/sources.list.d/debian.sources", "utf8").split(/\n\s*\n/)[0]!;
    writeFileSync(
      "/etc/apt/sources.list.d/graft-bench-deb-src.sources",
      `${list.replace(/^Types: .*$/m, "Types: deb-src")}\n`,
    );
    execFileSync("apt-get", ["update", "-qq"], { stdio: "ignore" });
  }
  const r = spawnSync("apt-get", ["source", "-qq", "lua5.4"], { cwd: deb, stdio: "ignore" });
  const dir = readdirSync(deb).find((d) => /^lua5\.4-/.test(d) && existsSync(join(deb, d, "src")));
  if (r.status !== 0 || dir === undefined) return undefined;
  return (["orig", "patched"] as const).map((side) => {
    const tree = join(out, `lua-${side}`);
    execFileSync("cp", ["-r", join(deb, dir, "src"), tree]);
    writeFileSync(join(tree, "lua5.4-deb-multiarch.h"), '#define DEB_HOST_MULTIARCH "x86_64-linux-gnu"\n');
    if (side === "patched") {
      const f = join(tree, "lstrlib.c");
      const text = readFileSync(f, "utf8");
      const fixed = text.replace(
        "    p[i] = s[l - i - 1];",
        "    p[i] = s[l - i - 1] == 'x' ? 'y' : s[l - i - 1];",
      );
      if (fixed === text) throw new Error("lstrlib.c: the line to change is not there");
      writeFileSync(f, fixed);
    }
    const sources = readdirSync(tree).filter((f) => f.endsWith(".c") && f !== "luac.c");
    for (const c of sources) execFileSync("gcc", ["-O2", "-DLUA_USE_LINUX", "-c", c], { cwd: tree });
    execFileSync(
      "gcc",
      ["-O2", "-o", "lua", ...sources.map((c) => c.replace(/\.c$/, ".o")), "-lm", "-ldl", "-Wl,-E"],
      { cwd: tree },
    );
    return join(tree, "lua");
  }) as [string, string];
}

rmSync(out, { recursive: true, force: true });
const a = build(join(out, "orig"), false);
const b = build(join(out, "patched"), true);
compare(`generated: ${UNITS} units × ${PER_UNIT * 2} functions, gcc -O2 PIE, one line changed`, a, b);
if (WITH_DEB) {
  const lua = buildLua();
  if (lua === undefined) console.log("lua5.4: apt-get source failed (no deb-src or no network); skipped");
  else
    compare("lua 5.4 (Debian source package), gcc -O2 PIE, one line of str_reverse changed", lua[0], lua[1]);
}
