import type { Command } from "commander";
import { checkElf } from "../../analysis/check.js";
import { listProbes, type ProbesReport } from "../../analysis/list-probes.js";
import { getArchForMachine } from "../../arch/index.js";
import { hex } from "../../core/hex.js";
import { readElfFile } from "../../formats/elf/elf-file.js";
import type { UsdtLocation } from "../../formats/elf/usdt-location.js";
import { loadMainModule } from "../../live/main-module.js";
import { printResult } from "../output.js";

export function registerProbes(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("probes")
    .summary("list USDT probes (with decoded arguments) and the function hooks graft trace can use")
    .description(
      "Read a file's .note.stapsdt probes (sys/sdt.h) — provider, name, address, semaphore, and each\n" +
        "argument's size, signedness and location — and, per function, the patch site graft trace would\n" +
        "hook (sled, fentry, hotpatch pad, entry overwrite) or why it cannot. Given a PID, the process's main executable is read and\n" +
        "runtime addresses are shown.",
    )
    .argument("<file|pid>", "ELF file, or the PID of a running process")
    .option("-f, --function <glob>", "only functions whose name matches the glob")
    .option("--json", "print the report as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft probes ./server                     probes and traceable functions of a file
  graft probes $(pidof server)              the same, with the running process's addresses
  graft probes ./server --json | jq '.probes[] | {provider, name, arguments}'`,
    )
    .action((target: string, opts: { function?: string; json: boolean }) =>
      run(() => {
        const isPid = /^\d+$/.test(target);
        const loaded = isPid ? loadMainModule(Number(target)) : undefined;
        const elf = loaded?.elf ?? readElfFile(target);
        const arch = getArchForMachine(elf.header.e_machine, target);
        const report = checkElf(
          elf,
          arch,
          opts.function === undefined ? {} : { functionGlob: opts.function },
        );
        const result = listProbes(report, loaded?.bias ?? 0n, isPid ? Number(target) : undefined);
        printResult(result, opts.json, renderProbes);
      }),
    );
}

function locationText(l: UsdtLocation): string {
  switch (l.kind) {
    case "register":
      return `register ${l.register}`;
    case "constant":
      return `constant ${l.value}`;
    case "memory": {
      const disp = `${l.symbol ?? ""}${l.offset === 0n && l.symbol !== undefined ? "" : l.offset < 0n ? `-${hex(-l.offset)}` : `${l.symbol === undefined ? "" : "+"}${hex(l.offset)}`}`;
      const regs = [l.base, l.index].filter((r) => r !== undefined).join("+");
      return `memory [${regs}${l.index === undefined ? "" : `*${l.scale}`}${disp === "" ? "" : ` ${disp}`}]`;
    }
    case "unknown":
      return `unknown ${l.text}`;
  }
}

/** Text: the probes with their arguments, then one line per function with its trace hook. */
export function renderProbes(r: ProbesReport): string {
  let out = `${r.pid === undefined ? (r.file ?? "<bytes>") : `pid ${r.pid} (${r.file ?? "?"})`}: ${r.probes.length} USDT probe(s), ${r.traceable} of ${r.functions.length} function(s) traceable\n`;
  if (r.probes.length > 0) out += "\nUSDT PROBES\n";
  for (const p of r.probes) {
    out += `${hex(p.runtimeAddress)}  ${p.provider}:${p.name}  in ${p.function ?? "?"}${p.semaphore === 0n ? "" : `, semaphore ${hex(p.runtimeSemaphore)}`}${p.nopLength === 0 ? ", NOT A NOP (armed?)" : ""}\n`;
    p.arguments.forEach((a, i) => {
      out += `    arg${i + 1}: ${a.signed ? "signed" : "unsigned"} ${a.size * 8}-bit, ${locationText(a.location)}  (${a.spec})\n`;
    });
  }
  out += "\nFUNCTIONS\n";
  const width = Math.max(10, ...r.functions.map((f) => hex(f.runtimeAddress).length));
  for (const f of r.functions) {
    out += `${hex(f.runtimeAddress).padStart(width)}  ${(f.site ?? "-").padEnd(6)}  ${f.name}${f.site === undefined ? `  (${f.reason})` : `  hook at ${hex(f.siteAddress!)}`}\n`;
  }
  return out;
}
