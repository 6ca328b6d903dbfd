import type { Command } from "commander";
import { readPatchFile } from "../../live/patch-file.js";
import { loadTrustedKeys, verifyPatchSignature } from "../../live/patch-signature.js";
import { printResult } from "../output.js";

export function registerVerify(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("verify")
    .summary("check a patch's hash and signature")
    .description(
      "Check that PATCH's code matches its manifest hash and that PATCH.sig is a valid signature of it by\n" +
        "a trusted key: --pubkey, else every .pub in $GRAFT_TRUSTED_KEYS. Exit 3 when refused.",
    )
    .argument("<patch>", "patch file")
    .option(
      "-p, --pubkey <pub>",
      "trusted public key(s) (.pub) (repeatable)",
      (v: string, all: string[] = []) => [...all, v],
    )
    .option("-s, --signature <sig>", "signature file (default: PATCH.sig)")
    .option("--json", "print the result as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft verify fix.graft --pubkey release.pub
  GRAFT_TRUSTED_KEYS=/etc/graft/keys graft verify fix.graft --json`,
    )
    .action((patch: string, opts: { pubkey?: string[]; signature?: string; json: boolean }) =>
      run(() => {
        const r = verifyPatchSignature(readPatchFile(patch), loadTrustedKeys(opts.pubkey), opts.signature);
        printResult(
          r,
          opts.json,
          (x) => `patch ${x.patch}: signature by key ${x.key} (${x.keyFile}) is valid\n`,
        );
      }),
    );
}
