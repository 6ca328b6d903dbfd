/**
 * bench:fuzz — 100,000 damaged patches, manifests and target files (test/support/patch-fuzz.ts)
 * through the ELF reader, `graft check`'s analysis and `graft apply --dry-run` against a live process
 * (the hardening target, gcc -O2 PIE, sled 16,14). Prints cases, crashes (must be 0: every failure a
 * GraftError with a code), the codes seen, time per case, and checks that the dry runs wrote nothing
 * to the target (text, mappings, journal). Peer: binutils `readelf -aW` on the first PEER_CASES damaged
 * target files of the same run — how often it crashes (dies by a signal) on the same bytes.
 *
 *   npx tsx bench/fuzz/run.ts [--cases N] [--seed S]   (npm run bench:fuzz)
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildPatchFile } from "../../src/live/build-patch-file.js";
import { buildFixture } from "../../test/support/fixtures.js";
import { killTarget, maps, startTarget, textDiff, textSnapshot } from "../../test/support/live-target.js";
import { fuzzPatches } from "../../test/support/patch-fuzz.js";

const here = dirname(fileURLToPath(import.meta.url));
const hardening = resolve(here, "../../test/scenarios/hardening");
const PEER_CASES = 2000;

function parseArgs(argv: readonly string[]): { cases: number; seed: number } {
  const a = { cases: 100_000, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = Number(argv[++i]);
    if (!Number.isInteger(v)) throw new Error(`${k} needs a whole number`);
    if (k === "--cases") a.cases = v;
    else if (k === "--seed") a.seed = v;
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), "graft-bench-fuzz-"));
  process.env.GRAFT_STATE_DIR = join(dir, "state");
  const exe = buildFixture({
    compiler: "gcc",
    sources: [join(hardening, "target.c")],
    flags: ["-O2", "-fpatchable-function-entry=16,14", "-flive-patching=inline-clone"],
    output: "pie",
  });
  const patch = join(dir, "fix.graft");
  buildPatchFile({ fix: join(hardening, "fix.c"), target: exe, output: patch });
  const target = startTarget(exe, ["2"], dir, "fuzz", { nice: 19 });
  try {
    await new Promise((r) => setTimeout(r, 200));
    const text = textSnapshot(target.pid, exe);
    const mappings = maps(target.pid)
      .map((m) => `${m.start}-${m.end} ${m.perms}`)
      .join("\n");
    const peer = { cases: 0, crashes: 0, errors: 0, ms: 0 };
    const peerFile = join(dir, "peer-case.elf");
    const tally = fuzzPatches({
      pid: target.pid,
      patch,
      exe,
      cases: args.cases,
      seed: args.seed,
      dir,
      onTarget: (bytes) => {
        if (peer.cases >= PEER_CASES) return;
        writeFileSync(peerFile, bytes);
        const t0 = performance.now();
        const r = spawnSync("readelf", ["-aW", peerFile], { stdio: "ignore", timeout: 10_000 });
        peer.ms += performance.now() - t0;
        peer.cases++;
        if (r.signal !== null) peer.crashes++;
        else if (r.status !== 0) peer.errors++;
      },
      onProgress: (t) => {
        if (t.cases % 10_000 === 0) process.stderr.write(`  ${t.cases} cases, ${t.crashes.length} crashes\n`);
      },
    });
    const untouched =
      textDiff(text, textSnapshot(target.pid, exe)).length === 0 &&
      maps(target.pid)
        .map((m) => `${m.start}-${m.end} ${m.perms}`)
        .join("\n") === mappings &&
      (!existsSync(join(dir, "state")) || readdirSync(join(dir, "state")).length === 0);
    const perKind = Object.entries(tally.perKind)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
    console.log(`bench:fuzz — ${tally.cases} cases (${perKind}), seed ${args.seed}`);
    console.log(`  crashes of graft: ${tally.crashes.length}`);
    for (const c of tally.crashes.slice(0, 20)) console.log(`    ${c}`);
    console.log(`  returned normally (damage did not matter): ${tally.accepted}`);
    console.log(`  errors by code: ${JSON.stringify(tally.codes)}`);
    console.log(
      `  time: ${(tally.totalMs / 1000).toFixed(1)} s, ${(tally.totalMs / tally.cases).toFixed(2)} ms/case, slowest case ${tally.slowestMs.toFixed(0)} ms`,
    );
    const graftTargetMs = tally.totalMs / tally.cases; // all kinds; the peer sees target files only
    console.log(
      `  peer readelf -aW on the first ${peer.cases} damaged targets: ${peer.crashes} crashes (killed by a signal), ${peer.errors} error exits, ${(peer.ms / peer.cases).toFixed(2)} ms/case (one process each; graft ${graftTargetMs.toFixed(2)} ms/case in-process, ratio ${(peer.ms / peer.cases / graftTargetMs).toFixed(1)}×)`,
    );
    console.log(
      `  dry runs left the target untouched (text, mappings, no journal): ${untouched ? "yes" : "NO"}`,
    );
    if (tally.crashes.length > 0 || !untouched) process.exitCode = 1;
  } finally {
    killTarget(target);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
