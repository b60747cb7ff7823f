import assert from "node:assert/strict";
import { multiplyABt } from "../../src/metrics/linalg.ts";
import { pivotedCholesky, traceSqrtProduct } from "../../src/metrics/trace_sqrt.ts";
import { Rng } from "../../src/core/rng.ts";

/** A random symmetric PSD matrix of rank `rank` (G Gᵀ, G [n, rank]). */
function randomPsd(n: number, rank: number, seed: number): Float64Array {
  const g = Float64Array.from(new Rng(seed).normal(n * rank));
  return multiplyABt(g, n, g, n, rank, true);
}

Deno.test("pivotedCholesky() finds the rank of a singular PSD matrix and reproduces it", () => {
  const n = 30;
  const a = randomPsd(n, 7, 3);
  const { lt, rank, perm } = pivotedCholesky(a, n);
  assert.equal(rank, 7);
  for (let j = 0; j < rank; j++) {
    for (let k = 0; k < j; k++) assert.equal(lt[j * n + k], 0, "upper-triangular");
  }
  // A[perm i][perm k] = Σ_j U[j][i] U[j][k]
  let maxDiff = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      let acc = 0;
      for (let j = 0; j < rank; j++) acc += lt[j * n + i] * lt[j * n + k];
      maxDiff = Math.max(maxDiff, Math.abs(acc - a[perm[i] * n + perm[k]]));
    }
  }
  assert.ok(maxDiff < 1e-10, `max |diff| ${maxDiff}`);
  assert.deepEqual([...perm].sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i));
});

Deno.test("traceSqrtProduct() of commuting diagonal matrices is Σ sqrt(a_i b_i)", () => {
  const a = new Float64Array(9);
  const b = new Float64Array(9);
  [1, 4, 0].forEach((v, i) => (a[i * 4] = v));
  [9, 0.25, 5].forEach((v, i) => (b[i * 4] = v));
  assert.ok(Math.abs(traceSqrtProduct(a, b, 3) - (3 + 1 + 0)) < 1e-14);
});

Deno.test("traceSqrtProduct(S, S) = tr(S) for full-rank and rank-deficient S", () => {
  for (const rank of [40, 12]) {
    const s = randomPsd(40, rank, 4 + rank);
    let trace = 0;
    for (let i = 0; i < 40; i++) trace += s[i * 40 + i];
    assert.ok(Math.abs(traceSqrtProduct(s, s, 40) - trace) < 1e-9 * trace, `rank ${rank}`);
  }
});

Deno.test("traceSqrtProduct() is symmetric in its arguments", () => {
  const a = randomPsd(25, 10, 5);
  const b = randomPsd(25, 25, 6);
  const ab = traceSqrtProduct(a, b, 25);
  assert.ok(Math.abs(ab - traceSqrtProduct(b, a, 25)) < 1e-9 * ab);
});

Deno.test("traceSqrtProduct() rejects a buffer that is not n x n", () => {
  assert.throws(() => traceSqrtProduct(new Float64Array(4), new Float64Array(9), 2), /second/);
});
