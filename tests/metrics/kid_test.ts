import assert from "node:assert/strict";
import { readNpy } from "../../src/io/npy.ts";
import { kernelInceptionDistance, polynomialMmd2 } from "../../src/metrics/kid.ts";
import { testEachBackend } from "../_backends.ts";

// Reference: tests/fixtures/make_fid_fixtures.py stats — numpy float64 unbiased MMD² with
// k(x, y) = (xᵀy / d + 1)³ on 60 x 16 and 70 x 16 features and 5 stored subsets of 25.
const dir = new URL("../fixtures/fid/", import.meta.url);
const { kid: ref } = JSON.parse(await Deno.readTextFile(new URL("stats.json", dir)));
const a = { data: (await readNpy(new URL(ref.a, dir).pathname)).data, n: 60, dims: 16 };
const b = { data: (await readNpy(new URL(ref.b, dir).pathname)).data, n: 70, dims: 16 };
const subsets = ref.subsets.map((s: { a: number[]; b: number[] }) => ({
  a: Int32Array.from(s.a),
  b: Int32Array.from(s.b),
}));

Deno.test("polynomialMmd2() on whole sets matches numpy's unbiased MMD²", () => {
  const got = polynomialMmd2(Float64Array.from(a.data), 60, Float64Array.from(b.data), 70, 16);
  assert.ok(Math.abs(got - ref.full) < 1e-12, `${got} vs ${ref.full}`);
});

Deno.test("kernelInceptionDistance() on given subsets matches numpy: values, mean, std", () => {
  const result = kernelInceptionDistance(a, b, {}, subsets);
  result.values.forEach((v, i) => assert.ok(Math.abs(v - ref.values[i]) < 1e-12, `subset ${i}`));
  assert.ok(Math.abs(result.kid - ref.mean) < 1e-12);
  assert.ok(Math.abs(result.std - ref.std) < 1e-12);
  assert.equal(result.subsetSize, 25);
});

Deno.test("kernelInceptionDistance() draws reproducible subsets capped at the set size", () => {
  const one = kernelInceptionDistance(a, b, { subsets: 4, subsetSize: 1000, seed: 3 });
  const two = kernelInceptionDistance(a, b, { subsets: 4, subsetSize: 1000, seed: 3 });
  assert.equal(one.subsetSize, 60);
  assert.deepEqual(one.values, two.values);
  const other = kernelInceptionDistance(a, b, { subsets: 4, subsetSize: 30, seed: 4 });
  assert.notDeepEqual(other.values, one.values);
});

Deno.test("kernelInceptionDistance() is symmetric when the subsets are swapped", () => {
  const swapped = subsets.map((s: { a: Int32Array; b: Int32Array }) => ({ a: s.b, b: s.a }));
  const ab = kernelInceptionDistance(a, b, {}, subsets);
  const ba = kernelInceptionDistance(b, a, {}, swapped);
  assert.ok(Math.abs(ab.kid - ba.kid) < 1e-12);
});

Deno.test("kernelInceptionDistance() refuses mismatched dims and too few samples", () => {
  const tiny = { data: new Float32Array(16), n: 1, dims: 16 };
  assert.throws(() => kernelInceptionDistance(a, tiny), /at least 2 images/);
  const wide = { data: new Float32Array(40), n: 2, dims: 20 };
  assert.throws(() => kernelInceptionDistance(a, wide), /different dims \(16 vs 20\)/);
});

testEachBackend(
  "kernelInceptionDistance() with backend Gram matrices agrees (float32)",
  (backend) => {
    const result = kernelInceptionDistance(a, b, { backend }, subsets);
    result.values.forEach((v, i) => assert.ok(Math.abs(v - ref.values[i]) < 1e-5, `subset ${i}`));
    assert.equal(backend.liveTensors() <= 1, true);
  },
);
