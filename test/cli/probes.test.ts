/**
 * `graft probes` against `readelf -n`: every stapsdt note's provider, name, location, semaphore and
 * argument string, on gcc and clang builds of a sys/sdt.h fixture (PIE and non-PIE), and the
 * decoded arguments agree with the spec string.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { buildFixture, type Compiler, type OutputKind, run } from "../support/fixtures.js";
import { ensureBuilt, runGraft } from "../support/graft-cli.js";

interface ReadelfProbe {
  provider: string;
  name: string;
  location: bigint;
  semaphore: bigint;
  args: string;
}

function readelfProbes(file: string): ReadelfProbe[] {
  const text = run("readelf", ["-n", file]);
  const out: ReadelfProbe[] = [];
  const re =
    /Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: 0x[0-9a-f]+, Semaphore: (0x[0-9a-f]+)\s+Arguments: ?([^\n]*)/g;
  for (const m of text.matchAll(re)) {
    out.push({
      provider: m[1]!,
      name: m[2]!,
      location: BigInt(m[3]!),
      semaphore: BigInt(m[4]!),
      args: m[5]!.trim(),
    });
  }
  return out;
}

interface JsonProbe {
  provider: string;
  name: string;
  address: string;
  semaphore: string;
  function?: string;
  nopLength: number;
  arguments: { size: number; signed: boolean; spec: string; location: { kind: string; register?: string } }[];
}

beforeAll(() => ensureBuilt());

describe.each<[Compiler, OutputKind]>([
  ["gcc", "pie"],
  ["gcc", "exe"],
  ["clang", "pie"],
  ["clang", "exe"],
])("graft probes on a %s %s build", (compiler, output) => {
  const file = buildFixture({
    compiler,
    sources: ["usdt.c"],
    flags: ["-O2", "-fpatchable-function-entry=5"],
    output,
  });

  it("lists exactly the probes readelf -n shows, with the same addresses, semaphores and arguments", () => {
    const r = runGraft(["probes", file, "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as { probes: JsonProbe[] };
    const expected = readelfProbes(file);
    expect(expected.length).toBe(3);
    expect(
      json.probes.map((p) => ({
        provider: p.provider,
        name: p.name,
        location: BigInt(p.address),
        semaphore: BigInt(p.semaphore),
        args: p.arguments.map((a) => a.spec).join(" "),
      })),
    ).toEqual(expected);
    for (const p of json.probes) {
      expect(p.nopLength).toBeGreaterThan(0);
      for (const a of p.arguments) {
        expect(a.spec.startsWith("-")).toBe(a.signed);
        expect(a.location.kind).not.toBe("unknown");
      }
    }
    expect(json.probes.find((p) => p.name === "start")?.function).toBe("handle");
  });

  it("prints readable text with each argument decoded and the function hooks", () => {
    const r = runGraft(["probes", file]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /graft_test:start {2}in handle, semaphore 0x[0-9a-f]+\n {4}arg1: signed 32-bit, /,
    );
    expect(r.stdout).toMatch(/ sled +handle {2}hook at 0x/);
  });
});
