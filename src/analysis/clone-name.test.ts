import { expect, test } from "vitest";
import { parseCloneName } from "./clone-name.js";

test.each([
  ["scale.constprop.0", "scale", ["constprop"]],
  ["sum_field.isra.0", "sum_field", ["isra"]],
  ["lookup.part.0", "lookup", ["part"]],
  ["guarded.cold", "guarded", ["cold"]],
  ["lookup.part.0.cold", "lookup", ["part", "cold"]],
  ["count.isra.17.constprop.23", "count", ["isra", "constprop"]],
  ["f.localalias", "f", ["localalias"]],
  ["bar.llvm.4370158984626747084", "bar", ["llvm"]],
  ["g.lto_priv.0", "g", ["lto_priv"]],
  ["main", "main", []],
  ["x.1234", "x.1234", []],
  [".cold", ".cold", []],
])("%s is %s with suffixes %j", (name, base, kinds) => {
  expect(parseCloneName(name)).toEqual({ base, kinds });
});
