import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readelfRelocations } from "../../../test/formats/readelf-oracle.js";
import { buildElf, words } from "../../../test/support/elf-builder.js";
import { SHT } from "./constants.js";
import { parseElf } from "./elf.js";

const tmp = mkdtempSync(join(tmpdir(), "graft-relr-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A file whose only content is one SHT_RELR section holding `entries`. */
function relrFile(name: string, entries: readonly bigint[]): { path: string; bytes: Uint8Array } {
  const { bytes } = buildElf({
    type: 3,
    sections: [
      {
        name: ".relr.dyn",
        type: SHT.SHT_RELR,
        flags: 2n,
        addr: 0x1000n,
        entsize: 8n,
        addralign: 8n,
        data: words(entries),
      },
    ],
  });
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return { path, bytes };
}

describe("relrAddresses", () => {
  test("decodes addresses, full bitmaps and bitmaps that follow bitmaps as readelf -r does", () => {
    const all63 = ((1n << 63n) - 1n) << 1n;
    const { path, bytes } = relrFile("relr.so", [
      0x10000n,
      all63 | 1n, // the next 63 words after 0x10000
      (1n << 1n) | (1n << 63n) | 1n, // then bit 0 and bit 62 of the 63 words after those
      0x20000n,
      0x20008n, // an address right after the last one resets the base
      (0b1001n << 1n) | 1n,
    ]);
    const ours = parseElf(bytes).relrAddresses();
    const theirs = readelfRelocations(path).flatMap((r) => r.relrAddresses);
    expect(ours).toEqual(theirs);
    expect(ours).toHaveLength(1 + 63 + 2 + 2 + 2);
    expect(ours.slice(63, 66)).toEqual([
      0x10000n + 63n * 8n,
      0x10000n + 64n * 8n,
      0x10000n + (64n + 62n) * 8n,
    ]);
  });

  test("reads an empty RELR section as no addresses", () => {
    expect(parseElf(relrFile("empty.so", []).bytes).relrAddresses()).toEqual([]);
  });
});
