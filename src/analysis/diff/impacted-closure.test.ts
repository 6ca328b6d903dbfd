import { describe, expect, it } from "vitest";
import { type ImpactSource, impactedClosure, symbolImpactSource } from "./impacted-closure.js";
import { canonicalName, cloneOrigin } from "./normalize-name.js";

const fns = (names: string[]) => names.map((name, i) => ({ name, address: BigInt(i * 16), aliases: [] }));

describe("names two builds agree on", () => {
  it("strip clone counters and ThinLTO hashes but keep the clone kind", () => {
    expect(canonicalName("f.constprop.0.isra.3")).toBe("f.constprop.isra");
    expect(canonicalName("helper.llvm.1234567890")).toBe("helper");
    expect(canonicalName("counter.12")).toBe("counter");
    expect(cloneOrigin("f.constprop.0.isra.3")).toBe("f");
    expect(cloneOrigin("f.cold")).toBe("f");
    expect(cloneOrigin("plain")).toBeUndefined();
  });
});

describe("the impacted closure from symbols", () => {
  it("a changed function impacts its clones and parts, not its .cold part", () => {
    const source = symbolImpactSource(fns(["f", "f.constprop.0", "f.part.1", "f.cold", "g"]));
    const got = impactedClosure(["f"], [source]);
    expect(got.map((x) => x.name)).toEqual(["f.cold", "f.constprop.0", "f.part.1"]);
  });
  it("a changed .cold part impacts its parent", () => {
    const source = symbolImpactSource(fns(["f", "f.cold"]));
    expect(impactedClosure(["f.cold"], [source])).toEqual([
      { name: "f", reasons: ["its cold part f.cold changed"] },
    ]);
  });
  it("aliases are impacted, and other sources (the DWARF seam) close transitively", () => {
    const source = symbolImpactSource([{ name: "impl", address: 0n, aliases: ["impl_alias"] }]);
    const inlined: ImpactSource = {
      impactedBy: (n: string) =>
        n === "impl"
          ? [{ name: "caller", reason: "impl inlined into it" }]
          : n === "caller"
            ? [{ name: "top", reason: "caller inlined into it" }]
            : [],
    };
    const got = impactedClosure(["impl"], [source, inlined]);
    expect(got.map((x) => x.name)).toEqual(["caller", "impl_alias", "top"]);
  });
});
