import { readFileSync } from "node:fs";
import { GraftError } from "../../core/errors.js";
import { type Elf, type ParseElfOptions, parseElf } from "./elf.js";

/** Read and parse an ELF file from disk; missing or unreadable files become one-line errors. */
export function readElfFile(path: string, options: Omit<ParseElfOptions, "file"> = {}): Elf {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new GraftError("FILE_NOT_FOUND", "no such file", { subject: path });
    if (code === "EISDIR") {
      throw new GraftError("FILE_UNREADABLE", "is a directory", {
        subject: path,
        hint: "pass an ELF file, not a directory",
      });
    }
    throw new GraftError("FILE_UNREADABLE", `cannot read file (${code ?? "error"})`, { subject: path });
  }
  return parseElf(bytes, { ...options, file: path });
}
