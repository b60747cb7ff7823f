import assert from "node:assert/strict";
import { assertFinite, firstNonFiniteIndex } from "../../src/core/finite.ts";

Deno.test("firstNonFiniteIndex() finds NaN and both infinities, and -1 for finite data", () => {
  assert.equal(firstNonFiniteIndex(new Float32Array([0, -0, 3.4e38, -1e-45])), -1);
  assert.equal(firstNonFiniteIndex(new Float32Array([1, NaN, Infinity])), 1);
  assert.equal(firstNonFiniteIndex(new Float64Array([1, 2, -Infinity])), 2);
  assert.equal(firstNonFiniteIndex([]), -1);
});

Deno.test("assertFinite() counts the bad values and names what holds them", () => {
  assertFinite(new Float32Array([0.5, -1]), "images");
  assert.throws(
    () => assertFinite(new Float32Array([0, NaN, 1, Infinity]), "sampled images"),
    /sampled images hold 2 non-finite value\(s\) \(first: \[1\] = NaN\)/,
  );
});
