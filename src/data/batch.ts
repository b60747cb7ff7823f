/**
 * The unit of data every layer above `data/` trades in: a batch of images on the host.
 *
 * @module
 */

/** A batch of images on the host: float32 NCHW in [-1, 1] and int32 labels. */
export interface Batch {
  /** [B, C, H, W] row-major. */
  images: Float32Array;
  /** [B] class ids (0 when the data set has no labels). */
  labels: Int32Array;
  /** [B, C, H, W]. */
  shape: readonly [number, number, number, number];
  /**
   * Data parallelism: these B images are [offset, offset + B) of a global batch of `total`
   * images spread over the ranks. A task draws its per-image randomness (timesteps, noise,
   * latents) for all `total` images and keeps its slice (see {@link shardSlice}), so R ranks
   * draw exactly what one process with the global batch would.
   */
  shard?: { offset: number; total: number };
}

/**
 * `per` values per image drawn by `draw` for the whole global batch, this batch's slice kept.
 *
 * @example
 * ```ts
 * import { Rng } from "../core/rng.ts";
 * import { shardSlice } from "./batch.ts";
 * const batch = { images: new Float32Array(0), labels: new Int32Array(2), shape: [2, 0, 0, 0] as const, shard: { offset: 2, total: 4 } };
 * const mine = shardSlice(batch, 1, (n) => new Rng(1).normal(n));
 * console.log(mine.length); // 2: draws 3 and 4 of the 4 one process would make
 * ```
 */
export function shardSlice<T extends Float32Array | Float64Array | Int32Array>(
  batch: Batch,
  per: number,
  draw: (n: number) => T,
): T {
  const n = batch.shape[0];
  const { offset, total } = batch.shard ?? { offset: 0, total: n };
  if (offset === 0 && total === n) return draw(n * per);
  if (!(offset >= 0 && offset + n <= total)) {
    throw new RangeError(
      `batch shard [${offset}, ${offset + n}) is outside a global batch of ${total}`,
    );
  }
  return draw(total * per).slice(offset * per, (offset + n) * per) as T;
}
