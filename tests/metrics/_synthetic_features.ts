/**
 * Synthetic feature sets made bit for bit as tests/fixtures/make_fid_exact_fixtures.py makes
 * them (see its header for the recipe): integer hashing and IEEE-exact float64 operations only,
 * so numpy and V8 produce the same float32 values and the fixture stores seeds, not matrices.
 *
 * @module
 */

/** One side of a fixture case: a seeded uniform source with a geometric spectrum. */
export interface SyntheticSide {
  /** Hash seed (uint32). */
  seed: number;
  /** Variance scale of dimension 0 (times 1/3, the variance of 2u - 1). */
  lambda0: number;
  /** lam_j = lam_{j-1} * ratio. */
  ratio: number;
  /** Added to every value. */
  shift: number;
}

function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Features [n, dims] row-major, float32, as the fixture script's `features()`. */
export function syntheticFeatures(side: SyntheticSide, n: number, dims: number): Float32Array {
  const root = new Float64Array(dims);
  let lambda = side.lambda0;
  for (let j = 0; j < dims; j++) {
    if (j > 0) lambda *= side.ratio;
    root[j] = Math.sqrt(lambda);
  }
  const seedMix = fmix32(side.seed >>> 0);
  const out = new Float32Array(n * dims);
  for (let i = 0; i < n * dims; i++) {
    const h = fmix32((seedMix ^ Math.imul(i, 0x9e3779b1)) >>> 0);
    const u = ((h >>> 8) + 0.5) / 16777216;
    out[i] = (2 * u - 1) * root[i % dims] + side.shift;
  }
  return out;
}
