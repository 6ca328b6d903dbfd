import type { Command } from "commander";
import { GraftError } from "../../core/errors.js";
import { hex } from "../../core/hex.js";
import { type BreakHit, breakAt } from "../../live/break-at.js";
import { toJson } from "../output.js";
import { parsePid } from "../parse-pid.js";

const REGISTERS = [
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
  "eflags",
  "fs_base",
] as const;

/** A hit as people read it: registers, arguments, backtrace. */
export function renderHit(h: BreakHit): string {
  let out = `hit ${h.hit}: thread ${h.tid} at ${h.function} (${hex(h.address)})\n`;
  const regs = REGISTERS.map((r) => `${r.padStart(7)} ${hex(h.registers[r]).padStart(18)}`);
  for (let i = 0; i < regs.length; i += 3) out += `${regs.slice(i, i + 3).join("  ")}\n`;
  out += `  args: ${h.args.map((a, i) => `arg${i + 1}=${hex(a)}`).join(" ")}\n`;
  out += "  backtrace:\n";
  h.backtrace.forEach((f, i) => {
    out += `    #${i} ${hex(f.address)} ${f.symbol ?? "?"}\n`;
  });
  return out;
}

function waitForEnter(): Promise<void> {
  return new Promise((resolve) => {
    process.stderr.write("(stopped; press Enter to continue)\n");
    process.stdin.resume();
    process.stdin.once("data", () => {
      process.stdin.pause();
      resolve();
    });
  });
}

export function registerBreak(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("break")
    .summary("stop the thread that reaches a function, show its registers, arguments and backtrace")
    .description(
      "Put a breakpoint (int3) on a function of a running process's main executable — on its patch\n" +
        "site's first byte when it has one — and, each time a thread reaches it, print the thread's\n" +
        "registers, its first six arguments and a backtrace (.eh_frame CFI, else frame pointers), then\n" +
        "let it continue (or wait for Enter with --wait). The other threads keep running. The original byte is restored at the end.",
    )
    .argument("<pid>", "the process")
    .argument("<function>", "the function to stop at")
    .option("--count <n>", "hits to report before detaching", "1")
    .option("--wait", "keep the thread stopped until Enter is pressed", false)
    .option("--json", "print each hit as a JSON line", false)
    .addHelpText(
      "after",
      `
Examples:
  graft break $(pidof server) handle_request             first call: registers, args, backtrace
  graft break $(pidof server) parse_header --count 5     the next five calls
  graft break $(pidof server) handle_request --wait      look around (e.g. graft probes) before it goes on`,
    )
    .action((pidText: string, fn: string, opts: { count: string; wait: boolean; json: boolean }) =>
      run(async () => {
        const pid = parsePid(pidText);
        const count = Number(opts.count);
        if (!Number.isInteger(count) || count < 1)
          throw new GraftError("USAGE", `--count must be ≥ 1, not ${opts.count}`);
        let stop = false;
        const onSignal = () => {
          stop = true;
        };
        process.on("SIGINT", onSignal);
        try {
          const result = await breakAt(pid, fn, {
            count,
            shouldStop: () => stop,
            onArmed: (address, mode) =>
              process.stderr.write(`graft: breakpoint at ${fn} (${hex(address)}, ${mode}); waiting\n`),
            onHit: async (h) => {
              process.stdout.write(opts.json ? `${JSON.stringify(JSON.parse(toJson(h)))}\n` : renderHit(h));
              if (opts.wait) await waitForEnter();
            },
          });
          process.stderr.write(
            `graft: ${result.hits} hit(s) at ${result.function} (${hex(result.address)}, ${result.mode}); breakpoint removed\n`,
          );
        } finally {
          process.off("SIGINT", onSignal);
        }
      }),
    );
}
