/**
 * Inception features of a set of images computed by several data-parallel ranks: each rank
 * takes one contiguous block of the images, and the blocks are gathered in order on every rank.
 * Blocks are whole multiples of the feature batch size, so each rank runs exactly the batches
 * one process would run on those images, and the gathered features equal one process's.
 *
 * @module
 */
import type { FeatureMatrix } from "./features.ts";

/** The collective {@link shardedActivations} needs (a ProcessGroup has it). */
export interface FeatureGatherer {
  /** This process's rank, 0..worldSize-1. */
  readonly rank: number;
  /** Processes in the job. */
  readonly worldSize: number;
  /** Every rank's `data` (same length everywhere), concatenated in rank order. */
  allGather(data: Float32Array): Float32Array;
}

/**
 * Images [start, end) of `n` for `rank` of `worldSize`: contiguous blocks, each a multiple of
 * `batchSize` (the last one shorter, some possibly empty).
 *
 * @example
 * ```ts
 * import { shardRange } from "./sharded.ts";
 * console.log(shardRange(250, 50, 0, 2), shardRange(250, 50, 1, 2)); // [0, 150] [150, 250]
 * ```
 */
export function shardRange(
  n: number,
  batchSize: number,
  rank: number,
  worldSize: number,
): [number, number] {
  const batches = Math.ceil(n / batchSize);
  const block = Math.ceil(batches / worldSize) * batchSize;
  return [Math.min(n, rank * block), Math.min(n, (rank + 1) * block)];
}

/**
 * Features of `n` images, this rank computing `compute(start, end)` for its
 * {@link shardRange} and the blocks gathered in image order: [n, dims] on every rank.
 *
 * @example
 * ```ts ignore
 * const all = await shardedActivations(files.length, 50, net.dims, group, (s, e) =>
 *   computeActivations(backend, net, decodeFiles(files.slice(s, e)), { batchSize: 50 }));
 * ```
 */
export async function shardedActivations(
  n: number,
  batchSize: number,
  dims: number,
  group: FeatureGatherer,
  compute: (start: number, end: number) => Promise<FeatureMatrix>,
): Promise<FeatureMatrix> {
  const [start, end] = shardRange(n, batchSize, group.rank, group.worldSize);
  const mine = end > start ? await compute(start, end) : { data: new Float32Array(0), n: 0, dims };
  if (mine.n !== end - start || mine.dims !== dims) {
    throw new Error(
      `rank ${group.rank} computed ${mine.n} x ${mine.dims} features for images ` +
        `[${start}, ${end}), expected ${end - start} x ${dims}`,
    );
  }
  const [, widest] = shardRange(n, batchSize, 0, group.worldSize);
  const padded = new Float32Array(widest * dims); // [widest, dims], zeros past this rank's block
  padded.set(mine.data);
  const gathered = group.allGather(padded); // [worldSize, widest, dims]
  const data = new Float32Array(n * dims);
  for (let r = 0; r < group.worldSize; r++) {
    const [s, e] = shardRange(n, batchSize, r, group.worldSize);
    data.set(gathered.subarray(r * widest * dims, (r * widest + (e - s)) * dims), s * dims);
  }
  return { data, n, dims };
}
