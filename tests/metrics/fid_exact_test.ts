/**
 * FID exact at the study's sample sizes: our Fréchet distance equals LAPACK's (pivoted
 * Cholesky dpstrf + eigvalsh, float64) to 1e-9 relative, and pytorch-fid's scipy sqrtm within
 * scipy's own error, for N in {50, 200, 1000, 2048, 5000} and flat and steep spectra, with
 * both eigen solvers. Fixture: tests/fixtures/make_fid_exact_fixtures.py (seeds and expected
 * values; the features are regenerated bit for bit by ./_synthetic_features.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { backendEigvalsh, type FidStatistics, statisticsOf } from "../../src/metrics/fid.ts";
import { fidFromStatistics } from "../../src/metrics/fid.ts";
import type { EigvalshFn } from "../../src/metrics/linalg.ts";
import { testEachBackend } from "../_backends.ts";
import { syntheticFeatures, type SyntheticSide } from "./_synthetic_features.ts";

interface ExactCase {
  name: string;
  n: number;
  dims: number;
  a: SyntheticSide;
  b: SyntheticSide;
  fid_exact: number;
  fid_eigh: number | null;
  fid_scipy: number;
  /** Sum of the singular values of Xa Xbᵀ / (N - 1): a third route, in the newer cases. */
  fid_svd?: number;
  scipy_rel_error: number;
  trace_sigma_a: number;
  mu_a_0: number;
}

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/fid/exact.json", import.meta.url)),
);
const cases: ExactCase[] = fixture.cases;

// The 2048-dim statistics of up to 5,000 samples take seconds each: made once per case.
const cache = new Map<string, [FidStatistics, FidStatistics]>();
function statisticsFor(c: ExactCase): [FidStatistics, FidStatistics] {
  let stats = cache.get(c.name);
  if (!stats) {
    stats = [
      statisticsOf(syntheticFeatures(c.a, c.n, c.dims), c.n, c.dims),
      statisticsOf(syntheticFeatures(c.b, c.n, c.dims), c.n, c.dims),
    ];
    cache.set(c.name, stats);
  }
  return stats;
}

function checkAgainstReferences(c: ExactCase, eigvalsh?: EigvalshFn): void {
  const [a, b] = statisticsFor(c);
  const fid = fidFromStatistics(a, b, { eigvalsh });
  const exactError = Math.abs(fid - c.fid_exact) / c.fid_exact;
  assert.ok(exactError <= 1e-9, `${c.name}: ${fid} vs LAPACK ${c.fid_exact} (${exactError})`);
  // scipy's sqrtm is off the exact value by scipy_rel_error; we may be no further from it.
  const scipyError = Math.abs(fid - c.fid_scipy) / c.fid_exact;
  assert.ok(
    scipyError <= c.scipy_rel_error + 1e-9,
    `${c.name}: ${fid} vs scipy ${c.fid_scipy} (${scipyError} > scipy's ${c.scipy_rel_error})`,
  );
  if (c.fid_eigh !== null) {
    // The eigh route takes sqrt(S1) of a rank-deficient S1, whose rounding-level eigenvalues add
    // their square roots: it is off the exact value by its own error, and we are no further.
    const ownError = Math.abs(c.fid_eigh - c.fid_exact) / c.fid_exact;
    const eighError = Math.abs(fid - c.fid_eigh) / c.fid_exact;
    assert.ok(eighError <= ownError + 1e-9, `${c.name}: ${fid} vs eigh route ${c.fid_eigh}`);
  }
}

Deno.test("the synthetic features are the fixture script's, bit for bit", () => {
  for (const c of cases.filter((c) => c.n <= 200)) {
    const [a] = statisticsFor(c);
    let trace = 0;
    for (let i = 0; i < c.dims; i++) trace += a.sigma[i * c.dims + i];
    assert.ok(Math.abs(a.mu[0] - c.mu_a_0) <= 1e-15 * Math.abs(c.mu_a_0) + 1e-17, c.name);
    assert.ok(Math.abs(trace - c.trace_sigma_a) <= 1e-12 * c.trace_sigma_a, c.name);
  }
});

Deno.test("the fixture's references agree: dpstrf + eigvalsh and the SVD of Xa Xbᵀ", () => {
  for (const c of cases.filter((c) => c.fid_svd !== undefined)) {
    assert.ok(Math.abs(c.fid_svd! - c.fid_exact) <= 1e-12 * c.fid_exact, c.name);
  }
});

// steep_2048 is the hard one: rank(S) = N - 1 = 2047 and the cross term's smallest eigenvalues
// are ~1e-13 of its largest. Both solvers must reduce the graded matrix from its large end
// (symmetricEigenvalues reverses it; the backend's LAPACK computes values without vectors):
// from the small end, or through divide and conquer, it was 2.0e-7 and 7.1e-9 off.
for (const c of cases) {
  Deno.test(
    `frechetDistance() equals LAPACK's to 1e-9 and scipy within its error: ${c.name} (TypeScript eigh)`,
    () => checkAgainstReferences(c),
  );
}

testEachBackend(
  "frechetDistance() equals LAPACK's to 1e-9 at N = 50..5000, flat and steep (backend eigh)",
  (backend) => {
    const eigvalsh = backendEigvalsh(backend);
    assert.ok(eigvalsh, `${backend.name} declares a float64 eigen solver`);
    for (const c of cases) checkAgainstReferences(c, eigvalsh);
  },
  { only: ["torch-cuda", "torch-cpu"] },
);
