/**
 * Finiteness checks for host arrays: loaded weights and generated images, so that NaN or
 * infinite values stop with an error instead of turning into black images with exit code 0.
 *
 * @module
 */

/**
 * Index of the first NaN or infinite value in `data`, or -1 when all are finite.
 *
 * @example
 * ```ts
 * import { firstNonFiniteIndex } from "./finite.ts";
 * console.log(firstNonFiniteIndex(new Float32Array([0, 1, Infinity]))); // 2
 * ```
 */
export function firstNonFiniteIndex(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) {
    // x - x is 0 for every finite x and NaN for NaN and +-Infinity: one compare per value.
    if (data[i] - data[i] !== 0) return i;
  }
  return -1;
}

/**
 * Throws a RangeError naming `what` when `data` holds a NaN or an infinity.
 *
 * @example
 * ```ts
 * import { assertFinite } from "./finite.ts";
 * assertFinite(new Float32Array([0.5, -1]), "sampled images"); // passes
 * ```
 */
export function assertFinite(data: ArrayLike<number>, what: string): void {
  const i = firstNonFiniteIndex(data);
  if (i >= 0) {
    let count = 0;
    for (let j = i; j < data.length; j++) if (data[j] - data[j] !== 0) count++;
    throw new RangeError(
      `${what} hold ${count} non-finite value(s) (first: [${i}] = ${data[i]}); the model's ` +
        `weights are broken (NaN or infinite)`,
    );
  }
}
