import assert from "node:assert/strict";
import { readNpy } from "../../src/io/npy.ts";
import {
  backendEigvalsh,
  checkStatistics,
  fidFromStatistics,
  frechetDistance,
  statisticsOf,
} from "../../src/metrics/fid.ts";
import { testEachBackend } from "../_backends.ts";

// Reference values: tests/fixtures/make_fid_fixtures.py stats — pytorch-fid's
// calculate_frechet_distance (scipy.linalg.sqrtm) and an eigh-based float64 value.
const dir = new URL("../fixtures/fid/", import.meta.url);
const fixtures = JSON.parse(await Deno.readTextFile(new URL("stats.json", dir)));
const npy = async (name: string) => (await readNpy(new URL(name, dir).pathname)).data;
const caseNamed = (name: string) => fixtures.cases.find((c: { name: string }) => c.name === name);

async function featureStats(c: { a: string; b: string; n_a: number; n_b: number; dims: number }) {
  return [
    statisticsOf(await npy(c.a), c.n_a, c.dims),
    statisticsOf(await npy(c.b), c.n_b, c.dims),
  ];
}

/** sigma = F Fᵀ / k + diag(D) in float64, as the fixture script builds it. */
function sigmaFromFactors(f: ArrayLike<number>, diag: ArrayLike<number>, d: number, k: number) {
  const s = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let acc = 0;
      for (let t = 0; t < k; t++) acc += f[i * k + t] * f[j * k + t];
      s[i * d + j] = s[j * d + i] = acc / k + (i === j ? diag[i] : 0);
    }
  }
  return s;
}

Deno.test("statisticsOf() matches numpy's mean and np.cov (N - 1)", async () => {
  const c = caseNamed("small");
  const [a] = await featureStats(c);
  assert.ok(Math.abs(a.mu[0] - c.mu_a_0) < 1e-12);
  assert.ok(Math.abs(a.sigma[0] - c.sigma_a_00) < 1e-12);
  assert.ok(Math.abs(a.sigma[1] - c.sigma_a_01) < 1e-12);
  let trace = 0;
  for (let i = 0; i < c.dims; i++) trace += a.sigma[i * c.dims + i];
  assert.ok(Math.abs(trace - c.trace_sigma_a) < 1e-11);
});

for (const name of ["small", "small_singular"]) {
  Deno.test(`frechetDistance() matches pytorch-fid/scipy on the '${name}' features`, async () => {
    const c = caseNamed(name);
    const [a, b] = await featureStats(c);
    const fid = fidFromStatistics(a, b);
    // Rank-deficient products: both references add sqrt(rounding noise) for each numerically
    // zero eigenvalue, which we count as zero; the three agree to ~3e-8 relative.
    assert.ok(Math.abs(fid - c.fid_eigh) < 1e-7 * c.fid_eigh, `${fid} vs eigh ${c.fid_eigh}`);
    assert.ok(Math.abs(fid - c.fid_scipy) < 1e-7 * c.fid_scipy, `${fid} vs scipy ${c.fid_scipy}`);
  });
}

Deno.test("frechetDistance() matches scipy on 2048-dim singular covariances (160 vs 200 samples)", async () => {
  const c = caseNamed("d2048_singular");
  const [a, b] = await featureStats(c);
  const fid = fidFromStatistics(a, b);
  // The references differ from each other by 3e-8 relative here (sqrt of rounding noise in
  // ~1900 numerically zero eigenvalues); ours counts those as zero.
  assert.ok(Math.abs(fid - c.fid_eigh) < 1e-7 * c.fid_eigh, `${fid} vs eigh ${c.fid_eigh}`);
  assert.ok(Math.abs(fid - c.fid_scipy) < 1e-7 * c.fid_scipy, `${fid} vs scipy ${c.fid_scipy}`);
});

Deno.test("frechetDistance() matches scipy on full-rank 2048-dim covariances", async () => {
  const c = caseNamed("d2048_full");
  const [fa, fb, da, db, mua, mub] = await Promise.all(
    ["fa", "fb", "da", "db", "mua", "mub"].map((n) => npy(`${c.prefix}${n}.npy`)),
  );
  const sa = sigmaFromFactors(fa, da, c.dims, c.rank);
  const sb = sigmaFromFactors(fb, db, c.dims, c.rank);
  const fid = frechetDistance(Float64Array.from(mua), sa, Float64Array.from(mub), sb);
  assert.ok(Math.abs(fid - c.fid_scipy) < 1e-9 * c.fid_scipy, `${fid} vs scipy ${c.fid_scipy}`);
});

Deno.test("frechetDistance() of covariances with disjoint supports equals pytorch-fid's 4", () => {
  const c = caseNamed("disjoint_support");
  const f = frechetDistance(
    Float64Array.from(c.mu_a),
    Float64Array.from(c.sigma_a),
    Float64Array.from(c.mu_b),
    Float64Array.from(c.sigma_b),
  );
  assert.equal(c.offset_used, false);
  assert.ok(Math.abs(f - c.fid_scipy) < 1e-12);
});

Deno.test("FID(X, X) = 0 and FID is symmetric", async () => {
  const [a, b] = await featureStats(caseNamed("small_singular"));
  assert.ok(Math.abs(fidFromStatistics(a, a)) < 1e-10);
  const ab = fidFromStatistics(a, b);
  assert.ok(Math.abs(ab - fidFromStatistics(b, a)) < 1e-10 * ab);
});

Deno.test("frechetDistance() of unit Gaussians is the squared distance of the means", () => {
  const eye = new Float64Array([1, 0, 0, 1]);
  assert.equal(frechetDistance(new Float64Array([0, 0]), eye, new Float64Array([3, 4]), eye), 25);
});

Deno.test("frechetDistance() with offset reproduces pytorch-fid's eps fallback formula", () => {
  // diag(1, 0) vs diag(0, 4): tr sqrt((S1 + εI)(S2 + εI)) = sqrt((1+ε)ε) + sqrt(ε(4+ε)).
  const eps = 1e-6;
  const mu = new Float64Array(2);
  const got = frechetDistance(
    mu,
    new Float64Array([1, 0, 0, 0]),
    mu,
    new Float64Array([0, 0, 0, 4]),
    {
      offset: true,
      eps,
    },
  );
  const expected = 5 - 2 * (Math.sqrt((1 + eps) * eps) + Math.sqrt(eps * (4 + eps)));
  assert.ok(Math.abs(got - expected) < 1e-12, `${got} vs ${expected}`);
});

Deno.test("statisticsOf() refuses fewer than 2 samples and mismatched sizes", () => {
  assert.throws(() => statisticsOf(new Float32Array(4), 1, 4), /at least 2 images/);
  assert.throws(() => statisticsOf(new Float32Array(5), 2, 4), /not 2 feature vectors of 4/);
  assert.throws(() => statisticsOf(new Float32Array([0, NaN, 1, 2]), 2, 2), /non-finite/);
});

Deno.test("frechetDistance() refuses statistics of different dimensions", () => {
  const a = statisticsOf(new Float32Array([0, 1, 2, 3, 5, 8]), 3, 2);
  const b = statisticsOf(new Float32Array([0, 1, 2, 3, 5, 8]), 2, 3);
  assert.throws(() => fidFromStatistics(a, b), /different dimensions \(2 vs 3\)/);
});

testEachBackend(
  "frechetDistance() with the backend's float64 eigh agrees with TypeScript",
  async (backend) => {
    const eigvalsh = backendEigvalsh(backend);
    if (!eigvalsh) {
      console.log(`${backend.name} has no eighFloat64: the TypeScript routine is used there`);
      return;
    }
    const c = caseNamed("d2048_singular");
    const [a, b] = await featureStats(c);
    const fid = fidFromStatistics(a, b, { eigvalsh });
    assert.ok(Math.abs(fid - c.fid_eigh) < 1e-7 * c.fid_eigh, `${fid} vs ${c.fid_eigh}`);
    assert.ok(Math.abs(fid - fidFromStatistics(a, b)) < 1e-9 * fid, "same as TypeScript");
  },
  { only: ["torch-cuda", "torch-cpu"] },
);

Deno.test("checkStatistics() refuses a covariance that is not PSD, asymmetric or not finite, naming the file", () => {
  const mu = new Float64Array(2);
  const check = (sigma: number[]) =>
    checkStatistics({ mu, sigma: Float64Array.from(sigma), dims: 2 }, "ref.npz");
  // eigenvalues 3 and -1: no features have this covariance, yet an FID number came out before.
  assert.throws(() => check([1, 2, 2, 1]), /ref\.npz: sigma is not positive semi-definite/);
  assert.throws(() => check([1, 0.5, 0.4, 1]), /ref\.npz: sigma is not symmetric/);
  assert.throws(() => check([1, 0, 0, NaN]), /ref\.npz: sigma has a non-finite value/);
  assert.throws(() => check([-1, 0, 0, 1]), /ref\.npz: sigma has a negative variance/);
  check([1, 0.5, 0.5, 1]);
  // Rank-deficient covariances are PSD within rounding and pass.
  const a = statisticsOf(new Float32Array([0, 1, 2, 3, 4, 6]), 3, 2);
  checkStatistics(statisticsOf(new Float32Array(16).map((_, i) => i % 3), 2, 8), "singular.npz");
  checkStatistics(a, "a.npz");
});
