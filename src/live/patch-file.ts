import { GraftError } from "../core/errors.js";
import { ET } from "../formats/elf/constants.js";
import type { Elf } from "../formats/elf/elf.js";
import { readElfFile } from "../formats/elf/elf-file.js";
import { patchContentHash } from "./patch-content-hash.js";
import { MANIFEST_SECTION, type PatchManifest, parseManifest } from "./patch-manifest.js";

/** A patch read from disk: the object and its verified manifest. */
export interface PatchFile {
  readonly path: string;
  readonly elf: Elf;
  readonly manifest: PatchManifest;
}

/** Read a `.graft` patch; refuses a file that is not one, or whose code does not match its sha256. */
export function readPatchFile(path: string): PatchFile {
  const elf = readElfFile(path);
  if (elf.header.e_type !== ET.ET_REL) {
    throw new GraftError("PATCH_CORRUPT", "not a patch: the file is not a relocatable object", {
      subject: path,
    });
  }
  const section = elf.findSection(MANIFEST_SECTION);
  if (section === undefined) {
    throw new GraftError("PATCH_CORRUPT", `not a patch: no ${MANIFEST_SECTION} manifest section`, {
      subject: path,
      hint: "build patches with graft build",
    });
  }
  const manifest = parseManifest(new TextDecoder().decode(elf.sectionBytes(section)), path);
  const actual = patchContentHash(elf);
  if (actual !== manifest.sha256) {
    throw new GraftError(
      "PATCH_CORRUPT",
      `patch code does not match its manifest (sha256 ${actual.slice(0, 16)}…, manifest says ${manifest.sha256.slice(0, 16)}…)`,
      {
        subject: path,
        hint: "the file was modified after graft build; rebuild it",
      },
    );
  }
  return { path, elf, manifest };
}
