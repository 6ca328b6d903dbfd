import { closeSync, openSync, writeSync } from "node:fs";
import type { Command } from "commander";
import { readPatchFile } from "../../live/patch-file.js";
import { defaultSignaturePath, signPatch } from "../../live/patch-signature.js";
import { printResult } from "../output.js";

export function registerSign(
  program: Command,
  run: (action: () => void | Promise<void>) => Promise<void>,
): void {
  program
    .command("sign")
    .summary("sign a patch with an ed25519 key")
    .description(
      "Check PATCH's content hash, then sign its hash and manifest with KEY into a detached signature,\n" +
        "PATCH.sig (the patch itself is not changed, so its id and hash stay the same).",
    )
    .argument("<patch>", "patch file from graft build")
    .requiredOption("-k, --key <key>", "private key from graft keygen (.key)")
    .option("-o, --output <sig>", "signature file (default: PATCH.sig)")
    .option("--json", "print the signature as JSON", false)
    .addHelpText(
      "after",
      `
Examples:
  graft sign fix.graft --key release.key          → fix.graft.sig
  graft apply --require-signature --pubkey release.pub $(pidof server) fix.graft`,
    )
    .action((patch: string, opts: { key: string; output?: string; json: boolean }) =>
      run(() => {
        const sig = signPatch(readPatchFile(patch), opts.key);
        const file = opts.output ?? defaultSignaturePath(patch);
        const fd = openSync(file, "w", 0o644);
        try {
          writeSync(fd, `${JSON.stringify(sig, null, 2)}\n`);
        } finally {
          closeSync(fd);
        }
        printResult(
          { ...sig, file },
          opts.json,
          (s) => `signed patch ${s.patch} with key ${s.key}: ${s.file}\n`,
        );
      }),
    );
}
