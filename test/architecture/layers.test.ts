/**
 * The folder is the layer (STYLE.md): core → formats → arch → analysis → process → live → cli, and a
 * lower layer never imports a higher one. Also: formats, arch and analysis stay pure (no fs, no
 * child_process, no console) except in `*-file.ts` edge modules.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../support/fixtures.js";

const LAYERS = ["core", "formats", "arch", "analysis", "process", "live", "cli"] as const;
const src = join(repoRoot, "src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith(".ts") && !name.endsWith(".test.ts") ? [path] : [];
  });
}

function layerOf(file: string): number {
  const top = relative(src, file).split("/")[0]!;
  return LAYERS.indexOf(top as (typeof LAYERS)[number]);
}

const files = sourceFiles(src).filter((f) => relative(src, f) !== "index.ts");

describe("the layer rule", () => {
  it("puts every source file in a known layer", () => {
    expect(files.filter((f) => layerOf(f) < 0).map((f) => relative(repoRoot, f))).toEqual([]);
  });

  it("never lets a lower layer import a higher one", () => {
    const violations: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/from\s+"(\.[^"]+)"/g)) {
        const target = resolve(file, "..", m[1]!);
        if (!target.startsWith(src)) {
          violations.push(`${relative(repoRoot, file)} imports outside src: ${m[1]}`);
          continue;
        }
        if (layerOf(target) > layerOf(file))
          violations.push(
            `${relative(repoRoot, file)} (${LAYERS[layerOf(file)]}) imports ${relative(repoRoot, target)} (${LAYERS[layerOf(target)]})`,
          );
      }
    }
    expect(violations).toEqual([]);
  });

  it("keeps formats, arch and analysis free of I/O outside *-file.ts edge modules", () => {
    const impure: string[] = [];
    for (const file of files) {
      const layer = LAYERS[layerOf(file)];
      if (layer !== "formats" && layer !== "arch" && layer !== "analysis") continue;
      if (file.endsWith("-file.ts")) continue;
      const text = readFileSync(file, "utf8");
      if (/from\s+"node:(fs|child_process|net|os)"|console\.|process\.(env|stdout|stderr)/.test(text))
        impure.push(relative(repoRoot, file));
    }
    expect(impure).toEqual([]);
  });
});
