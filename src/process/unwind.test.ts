import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildFixture, type Compiler } from "../../test/support/fixtures.js";
import { killTarget, type LiveTarget, output, sleep, startTarget } from "../../test/support/live-target.js";
import { readMaps } from "./maps.js";
import { stopProcess } from "./stop-the-world.js";
import { Unwinder } from "./unwind.js";

async function waitForOutput(t: LiveTarget, re: RegExp): Promise<void> {
  for (let i = 0; i < 500 && !re.test(output(t)); i++) await sleep(10);
  expect(output(t)).toMatch(re);
}

let dir: string;
const started: LiveTarget[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "graft-unwind-"));
});
afterAll(() => {
  for (const t of started) killTarget(t);
  rmSync(dir, { recursive: true, force: true });
});

/** The function (from the file's own symbol table, via nm as oracle) a link-time address is in. */
function nmFunctions(exe: string): { name: string; start: bigint; end: bigint }[] {
  return execFileSync("nm", ["-S", "--defined-only", exe], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.split(" "))
    .filter((p) => p.length === 4 && /[tT]/.test(p[2]!))
    .map((p) => ({
      name: p[3]!,
      start: BigInt(`0x${p[0]}`),
      end: BigInt(`0x${p[0]}`) + BigInt(`0x${p[1]}`),
    }));
}

const BUILDS: { compiler: Compiler; flags: string[] }[] = [
  { compiler: "gcc", flags: ["-O0"] },
  { compiler: "gcc", flags: ["-O2", "-fomit-frame-pointer"] },
  { compiler: "gcc", flags: ["-O2", "-fno-omit-frame-pointer"] },
  { compiler: "clang", flags: ["-O0"] },
  { compiler: "clang", flags: ["-O2", "-fomit-frame-pointer"] },
];

describe("Unwinder", () => {
  for (const b of BUILDS) {
    it(`walks read → chain_inner → chain_middle → chain_outer → worker to the thread's start (${b.compiler} ${b.flags.join(" ")})`, async () => {
      const exe = buildFixture({
        compiler: b.compiler,
        sources: ["call-chain.c"],
        flags: b.flags,
        output: "pie",
      });
      const fifo = join(dir, `fifo-${started.length}`);
      execFileSync("mkfifo", [fifo]);
      const t = startTarget(exe, [fifo], dir, "chain");
      started.push(t);
      // The worker is blocked in open() until a writer comes, then in read() once it printed.
      const w = openSync(fifo, "w");
      try {
        await waitForOutput(t, /blocked/);
        // And main is in pause() (x86-64 system call 34), not still on its way there.
        for (let i = 0; i < 500 && !/^34 /.test(readFileSync(`/proc/${t.pid}/syscall`, "utf8")); i++)
          await sleep(10);
        const maps = readMaps(t.pid);
        const stopped = stopProcess(t.pid);
        const unwinder = new Unwinder(t.pid, maps);
        let names: string[][];
        let ends: string[];
        let pcs: Map<number, bigint[]>;
        try {
          const fns = nmFunctions(exe);
          const bts = stopped.threads.map((th) => unwinder.unwind(th.regs));
          pcs = new Map(stopped.threads.map((th, i) => [th.tid, bts[i]!.frames.map((f) => f.pc)]));
          ends = bts.map((bt) => bt.end);
          names = bts.map((bt) =>
            bt.frames.map((f, i) => {
              if (f.module !== exe || f.fileAddress === undefined)
                return f.module?.includes("libc") ? "libc" : "?";
              const at = i === 0 ? f.fileAddress : f.fileAddress - 1n;
              return fns.find((fn) => fn.start <= at && at < fn.end)?.name ?? "?";
            }),
          );
        } finally {
          unwinder.close();
          stopped.resume();
        }
        const worker = names.find((n) => n.includes("chain_inner"));
        expect(worker, JSON.stringify(names)).toBeDefined();
        const own = worker!.filter((n) => n !== "libc");
        expect(own.slice(0, 4)).toEqual(["chain_inner", "chain_middle", "chain_outer", "worker"]);
        // Frame 0 is read() in libc, and the walk goes on through libc's thread start to the end.
        expect(worker![0]).toBe("libc");
        expect(worker!.at(-1)).toBe("libc");
        expect(ends[names.indexOf(worker!)]).toBe("outermost");
        // main waits in pause(): libc → main → libc start code.
        expect(names.some((n) => n.includes("main"))).toBe(true);
        // gdb, the oracle, on the same stopped state (the worker is still blocked in read()): every
        // caller's PC it prints is ours, in the same order.
        const workerTid = [...pcs!.keys()][names.indexOf(worker!)]!;
        const bt = execFileSync(
          "gdb",
          [
            "-nx",
            "-batch",
            "-p",
            String(t.pid),
            "-ex",
            "set backtrace past-main on",
            "-ex",
            "thread apply all bt",
          ],
          { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
        );
        const section = bt.split(/^Thread /m).find((x) => x.includes(`(LWP ${workerTid})`));
        expect(section, bt).toBeDefined();
        const gdbPcs = [...section!.matchAll(/^#[1-9]\d*\s+0x([0-9a-f]+) in /gm)].map((m) =>
          BigInt(`0x${m[1]}`),
        );
        expect(gdbPcs.length).toBeGreaterThanOrEqual(5);
        const ours = pcs!.get(workerTid)!;
        expect(ours.filter((pc) => gdbPcs.includes(pc))).toEqual(gdbPcs);
      } finally {
        closeSync(w);
      }
    });
  }

  it("finds no frames past a PC outside executable memory", () => {
    // A fake register set: the walk stops at once, cleanly.
    const maps = readMaps(process.pid);
    const u = new Unwinder(process.pid, maps);
    try {
      const regs = Object.fromEntries(
        [
          "rip",
          "rsp",
          "rbp",
          "rax",
          "rbx",
          "rcx",
          "rdx",
          "rsi",
          "rdi",
          "r8",
          "r9",
          "r10",
          "r11",
          "r12",
          "r13",
          "r14",
          "r15",
        ].map((k) => [k, 0x10n]),
      ) as never;
      expect(u.unwind(regs).end).toBe("bad-frame");
    } finally {
      u.close();
    }
  });
});
