import assert from "node:assert/strict";
import {
  multiplyABt,
  sqrtmPsd,
  symmetricEigen,
  symmetricEigenvalues,
} from "../../src/metrics/linalg.ts";
import { Rng } from "../../src/core/rng.ts";

// Reference: tests/fixtures/make_fid_fixtures.py stats (scipy.linalg.sqrtm).
const fixtures = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/fid/stats.json", import.meta.url)),
);

/** A random symmetric PSD matrix of rank `rank` (G Gᵀ, G [n, rank]). */
function randomPsd(n: number, rank: number, seed: number): Float64Array {
  const g = Float64Array.from(new Rng(seed).normal(n * rank));
  return multiplyABt(g, n, g, n, rank, true);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("symmetricEigen() of [[2,1],[1,2]] gives 1 and 3 with (1,-1)/√2 and (1,1)/√2", () => {
  const { values, vectors } = symmetricEigen(new Float64Array([2, 1, 1, 2]), 2);
  assert.ok(maxAbsDiff(values, [1, 3]) < 1e-15);
  const s = Math.SQRT1_2;
  // Columns are eigenvectors; compare up to sign.
  assert.ok(
    Math.abs(Math.abs(vectors[0]) - s) < 1e-15 && Math.abs(vectors[0] + vectors[2]) < 1e-15,
  );
  assert.ok(
    Math.abs(Math.abs(vectors[1]) - s) < 1e-15 && Math.abs(vectors[1] - vectors[3]) < 1e-15,
  );
});

Deno.test("symmetricEigen() reconstructs A = V diag(λ) Vᵀ with orthonormal V (n = 60)", () => {
  const n = 60;
  const a = randomPsd(n, 40, 1);
  for (let i = 0; i < n; i++) a[i * n + i] -= 3; // make it indefinite too
  const { values, vectors } = symmetricEigen(a, n);
  for (let i = 1; i < n; i++) assert.ok(values[i - 1] <= values[i], "values ascending");
  const vt = new Float64Array(n * n); // rows = eigenvectors
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) vt[j * n + i] = vectors[i * n + j];
  const identity = multiplyABt(vt, n, vt, n, n);
  for (let i = 0; i < n; i++) identity[i * n + i] -= 1;
  assert.ok(maxAbsDiff(identity, new Float64Array(n * n)) < 1e-12);
  const vT = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) vT[i * n + j] = vt[j * n + i];
  // A = V Λ Vᵀ = (rows of V)·(rows of V Λ): entry (i, j) = Σ_k V[i][k] λ_k V[j][k]
  const vl = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) vl[i * n + k] = vT[i * n + k] * values[k];
  assert.ok(maxAbsDiff(multiplyABt(vl, n, vT, n, n), a) < 1e-10 * n);
});

Deno.test("symmetricEigenvalues() equals the values of symmetricEigen()", () => {
  const a = randomPsd(50, 50, 2);
  assert.ok(maxAbsDiff(symmetricEigenvalues(a, 50), symmetricEigen(a, 50).values) < 1e-10);
});

Deno.test("symmetricEigen(values) keeps a graded matrix's tiny eigenvalues to 1e-6 relative", () => {
  // M = D C D, D = diag(1, 1e-3, ..., 1e-15): its eigenvalues equal the LDLᵀ pivots of C times
  // d_k² up to relative O((1e-3)²), an independent closed form. Eigenvalues span 30 decades,
  // so only a reduction that starts from the large end gets the small ones (the old one was
  // 7e13 off on the smallest).
  const n = 6;
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) c[i * n + j] = i === j ? 4 : 1 / (1 + Math.abs(i - j));
  }
  const d = Array.from({ length: n }, (_, i) => 10 ** (-3 * i));
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] = d[i] * c[i * n + j] * d[j];
  const w = Float64Array.from(c);
  const pivots: number[] = [];
  for (let k = 0; k < n; k++) {
    const p = w[k * n + k];
    pivots.push(p * d[k] ** 2);
    for (let i = k + 1; i < n; i++) {
      const f = w[i * n + k] / p;
      for (let j = k + 1; j < n; j++) w[i * n + j] -= f * w[k * n + j];
    }
  }
  pivots.sort((x, y) => x - y);
  for (const values of [symmetricEigenvalues(m, n), symmetricEigen(m, n).values]) {
    values.forEach((v, k) => {
      assert.ok(
        Math.abs(v - pivots[k]) <= 1e-6 * pivots[k],
        `eigenvalue ${k}: ${v} vs ${pivots[k]}`,
      );
    });
  }
});

Deno.test("sqrtmPsd() matches scipy.linalg.sqrtm on a 5x5 SPD matrix", () => {
  const { n, a, root } = fixtures.sqrtm;
  assert.ok(maxAbsDiff(sqrtmPsd(Float64Array.from(a), n), root) < 1e-12);
});

Deno.test("linalg functions reject a buffer that is not n x n", () => {
  assert.throws(() => symmetricEigen(new Float64Array(5), 2), /2x2 matrix/);
  assert.throws(() => sqrtmPsd(new Float64Array(3), 2), /2x2 matrix/);
});
