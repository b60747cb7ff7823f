/**
 * Fréchet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update
 * Rule Converge to a Local Nash Equilibrium", eq. 6) from feature statistics, computed in
 * float64 as pytorch-fid does: mu is the feature mean, sigma the sample covariance (N - 1).
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { type EigvalshFn, multiplyABt, symmetricEigenvalues } from "./linalg.ts";
import { traceSqrtProduct } from "./trace_sqrt.ts";

/** Mean and covariance of a set of feature vectors (what pytorch-fid's .npz holds). */
export interface FidStatistics {
  /** [dims] */
  mu: Float64Array;
  /** [dims, dims] row-major, symmetric. */
  sigma: Float64Array;
  /** Feature size d. */
  dims: number;
  /** Number of samples the statistics came from, when known. */
  count?: number;
}

/** Options of {@link frechetDistance}. */
export interface FrechetOptions {
  /**
   * Float64 symmetric eigenvalues (ascending), e.g. from a backend's `eighFloat64`; the
   * TypeScript routine otherwise.
   */
  eigvalsh?: EigvalshFn;
  /**
   * pytorch-fid adds `eps`·I to both covariances when scipy's sqrtm of the product is not
   * finite. Our trace is computed from symmetric PSD factors and stays finite for singular
   * covariances, so the offset is applied only if the result is not finite, or always when
   * `offset` is true (to reproduce a pytorch-fid run that printed "adding 1e-06 to diagonal").
   */
  eps?: number;
  /** Always apply pytorch-fid's eps offset (see `eps`). Default false. */
  offset?: boolean;
}

function requireFinite(a: Float64Array, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) {
      throw new Error(`${what} has a non-finite value (${a[i]}) at index ${i}: check the features`);
    }
  }
}

/**
 * Mean and covariance (N - 1 normalisation, as `np.cov(x, rowvar=False)`) of `n` feature
 * vectors of length `dims`, row-major. Accumulates in float64.
 *
 * @example
 * ```ts
 * import { statisticsOf } from "./fid.ts";
 * const stats = statisticsOf(new Float32Array([0, 0, 2, 2]), 2, 2);
 * console.log(stats.mu, stats.sigma); // [1, 1], [2, 2, 2, 2]
 * ```
 */
export function statisticsOf(
  features: Float32Array | Float64Array,
  n: number,
  dims: number,
): FidStatistics {
  if (!Number.isInteger(n) || !Number.isInteger(dims) || dims < 1) {
    throw new Error(`statisticsOf: bad sizes n=${n}, dims=${dims}`);
  }
  if (features.length !== n * dims) {
    throw new Error(
      `statisticsOf: ${features.length} values are not ${n} feature vectors of ${dims} dims`,
    );
  }
  if (n < 2) {
    throw new Error(
      `FID needs at least 2 images to estimate a covariance, got ${n}: add more images`,
    );
  }
  const mu = new Float64Array(dims);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dims; j++) mu[j] += features[i * dims + j];
  }
  for (let j = 0; j < dims; j++) mu[j] /= n;
  // centredT [dims, n]: one row per feature, so the covariance is a product of rows.
  const centredT = new Float64Array(dims * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dims; j++) centredT[j * n + i] = features[i * dims + j] - mu[j];
  }
  requireFinite(centredT, "the features");
  const sigma = multiplyABt(centredT, dims, centredT, dims, n, true);
  for (let i = 0; i < sigma.length; i++) sigma[i] /= n - 1;
  return { mu, sigma, dims, count: n };
}

/**
 * Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
 * ||mu1 - mu2||² + tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)) (Heusel et al. 2017, eq. 6),
 * with tr sqrt(sigma1 sigma2) from symmetric factors (see {@link traceSqrtProduct}).
 *
 * @example
 * ```ts
 * import { frechetDistance } from "./fid.ts";
 * const eye = new Float64Array([1, 0, 0, 1]);
 * const d = frechetDistance(new Float64Array([0, 0]), eye, new Float64Array([3, 4]), eye);
 * console.log(d); // 25
 * ```
 */
export function frechetDistance(
  mu1: Float64Array,
  sigma1: Float64Array,
  mu2: Float64Array,
  sigma2: Float64Array,
  options: FrechetOptions = {},
): number {
  const dims = mu1.length;
  if (mu2.length !== dims) {
    throw new Error(
      `the two statistics have different dimensions (${dims} vs ${mu2.length}): compute both ` +
        `with the same --dims`,
    );
  }
  for (const [sigma, which] of [[sigma1, "first"], [sigma2, "second"]] as const) {
    if (sigma.length !== dims * dims) {
      throw new Error(
        `the ${which} covariance has ${sigma.length} values, expected ${dims}x${dims} ` +
          `to match its mean`,
      );
    }
  }
  requireFinite(mu1, "the first mean");
  requireFinite(mu2, "the second mean");
  requireFinite(sigma1, "the first covariance");
  requireFinite(sigma2, "the second covariance");
  const eigvalsh = options.eigvalsh ?? symmetricEigenvalues;
  let meanTerm = 0;
  let traces = 0;
  for (let i = 0; i < dims; i++) {
    meanTerm += (mu1[i] - mu2[i]) ** 2;
    traces += sigma1[i * dims + i] + sigma2[i * dims + i];
  }
  let crossTrace = options.offset ? NaN : traceSqrtProduct(sigma1, sigma2, dims, eigvalsh);
  if (!Number.isFinite(crossTrace)) {
    // pytorch-fid's fallback: offset both covariances, but keep their original traces.
    const eps = options.eps ?? 1e-6;
    const withOffset = (s: Float64Array) => {
      const out = Float64Array.from(s);
      for (let i = 0; i < dims; i++) out[i * dims + i] += eps;
      return out;
    };
    crossTrace = traceSqrtProduct(withOffset(sigma1), withOffset(sigma2), dims, eigvalsh);
  }
  return meanTerm + traces - 2 * crossTrace;
}

/**
 * FID between two sets of statistics.
 *
 * @example
 * ```ts
 * import { fidFromStatistics, statisticsOf } from "./fid.ts";
 * const a = statisticsOf(new Float32Array([0, 1, 2, 3, 4, 6]), 3, 2);
 * console.log(fidFromStatistics(a, a)); // 0 (up to rounding)
 * ```
 */
export function fidFromStatistics(
  a: FidStatistics,
  b: FidStatistics,
  options: FrechetOptions = {},
): number {
  return frechetDistance(a.mu, a.sigma, b.mu, b.sigma, options);
}

/**
 * Checks that statistics are fit for the Fréchet distance: finite, sigma symmetric within
 * rounding and positive semi-definite within rounding (smallest eigenvalue >= -1e-10 x the
 * largest; rounding leaves ~dims·ε). A covariance that is not PSD (a corrupt or hand-made
 * file) would otherwise still yield an FID number. `source` names the file in the error.
 *
 * @example
 * ```ts
 * import { checkStatistics } from "./fid.ts";
 * const bad = { mu: new Float64Array(2), sigma: new Float64Array([1, 2, 2, 1]), dims: 2 };
 * try { checkStatistics(bad, "bad.npz"); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function checkStatistics(
  stats: FidStatistics,
  source: string,
  eigvalsh: EigvalshFn = symmetricEigenvalues,
): void {
  const { mu, sigma, dims } = stats;
  const bad = (why: string) =>
    new Error(
      `${source}: ${why}; these are not the mean and covariance of any features ` +
        `(recompute the statistics, e.g. with fid --save-stats)`,
    );
  if (mu.length !== dims || sigma.length !== dims * dims) {
    throw bad(
      `mu has ${mu.length} values and sigma ${sigma.length}, expected ${dims} and ${dims}²`,
    );
  }
  for (const [a, what] of [[mu, "mu"], [sigma, "sigma"]] as const) {
    const i = a.findIndex((v) => !Number.isFinite(v));
    if (i >= 0) throw bad(`${what} has a non-finite value (${a[i]}) at index ${i}`);
  }
  let scale = 0;
  for (let i = 0; i < dims; i++) scale = Math.max(scale, Math.abs(sigma[i * dims + i]));
  for (let i = 0; i < dims; i++) {
    if (sigma[i * dims + i] < 0) {
      throw bad(`sigma has a negative variance (${sigma[i * dims + i]}) at [${i}, ${i}]`);
    }
    for (let j = 0; j < i; j++) {
      const x = sigma[i * dims + j];
      const y = sigma[j * dims + i];
      if (Math.abs(x - y) > 1e-12 * scale) {
        throw bad(`sigma is not symmetric: [${i}, ${j}] = ${x} but [${j}, ${i}] = ${y}`);
      }
    }
  }
  const values = eigvalsh(sigma, dims);
  const largest = Math.max(values[dims - 1], 0);
  if (values[0] < -1e-10 * largest || (largest === 0 && values[0] < 0)) {
    throw bad(
      `sigma is not positive semi-definite: eigenvalue ${values[0]} (largest ${largest})`,
    );
  }
}

/**
 * THE choice of eigen solver for FID: the backend's float64 LAPACK routine when it has one
 * (torch), else undefined (the TypeScript routine). Both give the exact Fréchet distance to
 * ~1e-9 (tests/metrics/fid_exact_test.ts); LAPACK is ~20x faster at 2048 dims. This is the
 * one place that asks the backend; switch it to declared capabilities here.
 *
 * @example
 * ```ts
 * import { backendEigvalsh } from "./fid.ts";
 * import { createBackend } from "../backend/select.ts";
 * const eigvalsh = backendEigvalsh(await createBackend("torch-cpu")); // undefined on tfjs
 * ```
 */
export function backendEigvalsh(
  backend: Backend,
): EigvalshFn | undefined {
  if (!backend.capabilities.eighFloat64) return undefined;
  return (a, n) => backend.eigvalshFloat64(a, n);
}
