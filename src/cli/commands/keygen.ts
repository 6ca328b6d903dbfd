import type { Command } from "commander";
import { generateKeyPair } from "../../live/patch-signature.js";
import { printResult } from "../output.js";

export function registerKeygen(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("keygen")
    .summary("make an ed25519 key pair for signing patches")
    .description(
      "Write NAME.key (private, PKCS#8 PEM, mode 0600) and NAME.pub (public, SPKI PEM). Sign patches with\n" +
        "the .key; give the .pub to the hosts that apply them. Never overwrites an existing file.",
    )
    .option("-o, --output <name>", "base name of the two files", "graft")
    .option("--json", "print the result as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft keygen -o release                 → release.key, release.pub
  graft keygen -o /etc/graft/keys/ops --json`,
    )
    .action((opts: { output: string; json: boolean }) =>
      run(() => {
        const r = generateKeyPair(opts.output);
        printResult(r, opts.json, (x) => `key ${x.id}: private ${x.keyFile}, public ${x.pubFile}\n`);
      }),
    );
}
