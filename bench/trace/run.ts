/**
 * bench:trace — per-call cost of tracing, graft against uftrace, on the same call-heavy program
 * (bench/trace/bench.c: fib(30) + 10^7 leaf calls = 12.7 M calls), in one run:
 *   plain           gcc -O2, no patch sites
 *   sled, untraced  gcc -O2 -fpatchable-function-entry=5 (sites present, nothing hooked)
 *   uftrace         `uftrace record -P .` on the sled build (its dynamic patching of the same sites)
 *   graft           `graft trace --format summary -- ./bench` on the sled build, event buffer big
 *                   enough for the whole run and prefaulted (no event lost, no page fault)
 *   graft, live     the same with the default 16 MiB buffers drained while the program runs
 * Each program times its own call-heavy part (wall and thread CPU time), so start-up and tear-down
 * of either tracer are left out alike. Per-call overhead = (traced − plain) / calls, from the median
 * of R runs; CPU time is the primary figure (on a shared, loaded machine wall time mostly measures
 * waiting for a CPU). Then callgrind instruction counts for the disabled case: the sled build vs the
 * plain build (gcc and clang), per call.
 *
 *   npx tsx bench/trace/run.ts [--runs R] [--n N] [--iters I]     (npm run bench:trace)
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { median } from "../support/command-sample.js";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../..");
const cli = join(repoRoot, "dist/cli/main.js");

function parseArgs(argv: readonly string[]): { runs: number; n: number; iters: number } {
  const a = { runs: 5, n: 30, iters: 10_000_000 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = Number(argv[++i]);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${k} needs a positive whole number`);
    if (k === "--runs") a.runs = v;
    else if (k === "--n") a.n = v;
    else if (k === "--iters") a.iters = v;
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

interface Sample {
  calls: number;
  wallNs: number;
  cpuNs: number;
  result: string;
}

function parseSample(text: string, what: string): Sample {
  const m = /calls (\d+) elapsed_ns (\d+) cpu_ns (\d+) result (.*)$/m.exec(text);
  if (m === null) throw new Error(`${what}: no result line in:\n${text}`);
  return { calls: Number(m[1]), wallNs: Number(m[2]), cpuNs: Number(m[3]), result: m[4]! };
}

function build(dir: string, name: string, compiler: string, flags: string[]): string {
  const out = join(dir, name);
  execFileSync(compiler, ["-O2", ...flags, "-o", out, join(here, "bench.c")]);
  return out;
}

function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  if (!hasCommand("uftrace")) throw new Error("uftrace is not installed (apt-get install -y uftrace)");
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: repoRoot, stdio: "ignore" });
  const dir = mkdtempSync(join(tmpdir(), "graft-bench-trace-"));
  const env = { ...process.env, GRAFT_STATE_DIR: dir };
  try {
    const plain = build(dir, "plain", "gcc", []);
    const sled = build(dir, "sled", "gcc", ["-fpatchable-function-entry=5"]);
    const progArgs = [String(args.n), String(args.iters)];
    const runners: Record<string, () => Sample> = {
      plain: () => parseSample(execFileSync(plain, progArgs, { encoding: "utf8" }), "plain"),
      "sled, untraced": () => parseSample(execFileSync(sled, progArgs, { encoding: "utf8" }), "sled"),
      uftrace: () => {
        const data = join(dir, "uftrace.data");
        rmSync(data, { recursive: true, force: true });
        const r = spawnSync("uftrace", ["record", "-P", ".", "-d", data, sled, ...progArgs], {
          encoding: "utf8",
          cwd: dir,
        });
        return parseSample(r.stdout, `uftrace: ${r.stderr}`);
      },
      graft: () => {
        const r = spawnSync(
          "node",
          [
            cli,
            "trace",
            "--format",
            "summary",
            "--buffer-size",
            "512M",
            "--max-threads",
            "1",
            "--prefault",
            "--",
            sled,
            ...progArgs,
          ],
          { encoding: "utf8", cwd: dir, env },
        );
        if (!r.stdout.includes("# no events lost"))
          throw new Error(`graft lost events:\n${r.stdout}\n${r.stderr}`);
        return parseSample(r.stdout, `graft: ${r.stderr}`);
      },
      "graft, live": () => {
        const r = spawnSync("node", [cli, "trace", "--format", "summary", "--", sled, ...progArgs], {
          encoding: "utf8",
          cwd: dir,
          env,
        });
        const lost = /# LOST: (\d+) record/.exec(r.stdout);
        liveLost.push(lost === null ? 0 : Number(lost[1]));
        return parseSample(r.stdout, `graft live: ${r.stderr}`);
      },
    };
    const liveLost: number[] = [];
    const samples: Record<string, Sample[]> = {};
    // Interleave the configurations, so a change in machine load hits them alike.
    for (let round = 0; round < args.runs; round++) {
      for (const [name, run] of Object.entries(runners)) {
        samples[name] ??= [];
        samples[name].push(run());
      }
    }
    const calls = samples.plain![0]!.calls;
    const results = new Set(Object.values(samples).flatMap((s) => s.map((x) => x.result)));
    if (results.size !== 1)
      throw new Error(`the traced runs computed different results: ${[...results].join(", ")}`);
    const plainCpu = median(samples.plain!.map((s) => s.cpuNs));
    const plainWall = median(samples.plain!.map((s) => s.wallNs));
    console.log(
      `bench:trace — ${calls.toLocaleString("en")} calls per run, ${args.runs} runs each, ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(1)}`,
    );
    console.log(
      `${"configuration".padEnd(16)} ${"cpu ms".padStart(9)} ${"wall ms".padStart(9)} ${"ns/call cpu".padStart(12)} ${"ns/call wall".padStart(13)}`,
    );
    const perCall: Record<string, { cpu: number; wall: number }> = {};
    for (const [name, list] of Object.entries(samples)) {
      const cpu = median(list.map((s) => s.cpuNs));
      const wall = median(list.map((s) => s.wallNs));
      perCall[name] = { cpu: (cpu - plainCpu) / calls, wall: (wall - plainWall) / calls };
      console.log(
        `${name.padEnd(16)} ${(cpu / 1e6).toFixed(1).padStart(9)} ${(wall / 1e6).toFixed(1).padStart(9)} ${perCall[name]!.cpu.toFixed(1).padStart(12)} ${perCall[name]!.wall.toFixed(1).padStart(13)}`,
      );
    }
    const u = perCall.uftrace!;
    const g = perCall.graft!;
    console.log(
      `uftrace / graft per-call overhead: ${(u.cpu / g.cpu).toFixed(2)}× (CPU time), ${(u.wall / g.wall).toFixed(2)}× (wall)`,
    );
    console.log(
      `graft, live (16 MiB buffers drained while running): events lost per run ${liveLost.join(", ")}`,
    );

    // Disabled sites: instructions executed, callgrind (small input: the count is exact, not timed).
    if (hasCommand("valgrind")) {
      const small = ["25", "100000"];
      const ir = (exe: string): number => {
        const out = join(dir, `cg.${exe.split("/").pop()}.out`);
        execFileSync("valgrind", ["--tool=callgrind", `--callgrind-out-file=${out}`, exe, ...small], {
          stdio: "ignore",
        });
        const m = /^summary: (\d+)/m.exec(readFileSync(out, "utf8"));
        if (m === null) throw new Error(`no callgrind summary for ${exe}`);
        return Number(m[1]);
      };
      const smallCalls = parseSample(execFileSync(plain, small, { encoding: "utf8" }), "plain").calls;
      console.log(`\ncallgrind, disabled sites (${smallCalls.toLocaleString("en")} calls):`);
      for (const compiler of ["gcc", "clang"]) {
        if (!hasCommand(compiler)) continue;
        const p = ir(build(dir, `${compiler}-plain`, compiler, []));
        const s = ir(build(dir, `${compiler}-sled`, compiler, ["-fpatchable-function-entry=5"]));
        console.log(
          `  ${compiler.padEnd(6)} plain ${p.toLocaleString("en")} Ir, sled ${s.toLocaleString("en")} Ir: +${((s - p) / smallCalls).toFixed(2)} Ir per call`,
        );
      }
    } else console.log("\n(valgrind not installed: callgrind figures skipped)");
  } finally {
    for (const f of readdirSync(dir)) rmSync(join(dir, f), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
