import { closeSync, fsyncSync, openSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Replace `path` with `text` so that a crash of graft (or of the machine) leaves either the old file
 * or the new one, never a torn one: write a temp file beside it, fsync it, rename it over, fsync the
 * folder (the rename itself is then on disk).
 */
export function writeFileDurably(path: string, text: string): void {
  const tmp = `${path}.tmp${process.pid}`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  syncFolder(dirname(path));
}

/** fsync a folder: its entries (a rename, an unlink) reach the disk. */
export function syncFolder(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
