/**
 * Sampling split over the ranks of a data-parallel job (`sample --nproc`, the study).
 *
 * The work of one process is a list of chunks, each one `task.sample` call on images
 * [start, start + count). With R ranks, round k gives chunk k·R + r to rank r; the round's
 * images are gathered (padded to the widest chunk) so every rank holds them in chunk order.
 * Each image depends only on its index and the seed ({@link imageNoise} streams), and each
 * chunk is the very call one process makes, so the images are bit-identical to one process's
 * on the same backend and thread count, whatever the number of ranks.
 *
 * @module
 */
import type { ImageNoise } from "../core/rng.ts";
import { offsetNoise } from "../core/rng.ts";
import type { FeatureGatherer } from "../metrics/sharded.ts";
import type { SampleOptionsOf, TrainTask } from "../task/task.ts";

/** The collectives sampling over ranks needs (a `ProcessGroup` has them). */
export interface SampleGroup extends FeatureGatherer {
  /** values[i] <- sum over ranks of values[i], in place; returns `values`. */
  allReduceSum(values: Float64Array): Float64Array;
}

/** One `task.sample` call: images [start, start + count). */
export type Chunk = readonly [start: number, count: number];

/**
 * The chunks one process samples: each run [from, to) of missing images cut into pieces of
 * at most `size`, starting at `from`.
 *
 * @example
 * ```ts
 * import { chunksOf } from "./sample_ranks.ts";
 * console.log(chunksOf([[0, 5], [7, 9]], 2)); // [[0, 2], [2, 2], [4, 1], [7, 2]]
 * ```
 */
export function chunksOf(runs: readonly (readonly [number, number])[], size: number): Chunk[] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`chunk size ${size} is not >= 1`);
  const chunks: Chunk[] = [];
  for (const [from, to] of runs) {
    for (let start = from; start < to; start += size) {
      chunks.push([start, Math.min(size, to - start)]);
    }
  }
  return chunks;
}

/**
 * Samples every chunk (on the ranks of `group` when given, else here) and calls `onChunk`
 * with each chunk's images [count, C, H, W] in chunk order, on every rank. Rank 0 usually
 * writes them; the others only take part in the gathers. Returns once every chunk is done.
 *
 * @example
 * ```ts ignore
 * await sampleChunks(task, labels, imageNoise(0), {}, chunksOf([[0, 100]], 64), group,
 *   async (start, count, images) => { if (group.rank === 0) await write(start, images); });
 * ```
 */
export async function sampleChunks<T extends TrainTask>(
  task: T,
  labels: Int32Array,
  noise: ImageNoise,
  options: SampleOptionsOf<T>,
  chunks: readonly Chunk[],
  group: SampleGroup | undefined,
  onChunk: (start: number, count: number, images: Float32Array) => Promise<void> | void,
): Promise<void> {
  const draw = ([start, count]: Chunk) =>
    task.sample(labels.subarray(start, start + count), offsetNoise(noise, start), options);
  const world = group?.worldSize ?? 1;
  if (!group || world === 1) {
    for (const chunk of chunks) await onChunk(chunk[0], chunk[1], draw(chunk));
    return;
  }
  const per = task.imageShape[0] * task.imageShape[1] * task.imageShape[2];
  const widest = chunks.reduce((m, [, count]) => Math.max(m, count), 0);
  // A rank whose onChunk fails (rank 0 writing images: disk full, folder gone) keeps drawing
  // until the next gather, which carries one flag per rank after its images, so that every
  // rank stops there instead of waiting in a collective for a partner that gave up.
  let failure: { error: unknown } | undefined;
  const deliver = async (start: number, count: number, images: Float32Array) => {
    if (failure) return;
    try {
      await onChunk(start, count, images);
    } catch (error) {
      failure = { error };
    }
  };
  const stride = widest * per + 1; // [widest, C, H, W] + the failure flag
  for (let round = 0; round * world < chunks.length; round++) {
    const mine = chunks[round * world + group.rank];
    const padded = new Float32Array(stride); // zeros past the chunk
    if (mine) padded.set(draw(mine));
    padded[stride - 1] = failure ? 1 : 0;
    const gathered = group.allGather(padded); // [world, stride]
    stopIfFailed(group.rank, failure, (r) => gathered[r * stride + stride - 1] > 0, world);
    for (let r = 0; r < world; r++) {
      const chunk = chunks[round * world + r];
      if (!chunk) break;
      const from = r * stride;
      await deliver(chunk[0], chunk[1], gathered.subarray(from, from + chunk[1] * per));
    }
  }
  // The last round's images were handled after its gather: one more agreement.
  const flags = new Float64Array(world);
  flags[group.rank] = failure ? 1 : 0;
  group.allReduceSum(flags);
  stopIfFailed(group.rank, failure, (r) => flags[r] > 0, world);
}

/** Throws on every rank when any rank's images could not be handled: its own error there. */
function stopIfFailed(
  rank: number,
  failure: { error: unknown } | undefined,
  failed: (rank: number) => boolean,
  world: number,
): void {
  if (failure) throw failure.error;
  for (let r = 0; r < world; r++) {
    if (failed(r)) {
      throw new Error(
        `rank ${r} could not write the sampled images (its own message above says why); ` +
          `rank ${rank} stopped with it`,
      );
    }
  }
}

/**
 * Runs `work` on rank 0 alone (reading or preparing a folder) and lets every rank know whether
 * it succeeded: rank 0 rethrows its own error; the others throw one pointing at rank 0's
 * message, so no rank waits for a partner that gave up. Returns rank 0's result there,
 * undefined elsewhere.
 *
 * @example
 * ```ts ignore
 * const done = await onRankZero(group, "prepare samples/", () => prepareFolder("samples/"));
 * ```
 */
export async function onRankZero<R>(
  group: SampleGroup | undefined,
  what: string,
  work: () => Promise<R>,
): Promise<R | undefined> {
  if (!group || group.worldSize === 1) return await work();
  let result: R | undefined;
  let error: unknown = null;
  if (group.rank === 0) {
    try {
      result = await work();
    } catch (e) {
      error = e;
    }
  }
  const failed = group.allReduceSum(Float64Array.of(error === null ? 0 : 1))[0] > 0;
  if (error !== null) throw error;
  if (failed) throw new Error(`rank 0 could not ${what} (its own message above says why)`);
  return result;
}

/**
 * Every rank's copy of rank 0's set of indices below `n` (rank 0 passes it; the others pass
 * anything): one sum of n flags.
 */
export function shareIndexSet(group: SampleGroup, n: number, set: Set<number> | undefined) {
  const flags = new Float64Array(n);
  if (group.rank === 0) { for (const i of set ?? []) flags[i] = 1; }
  group.allReduceSum(flags);
  const out = new Set<number>();
  flags.forEach((v, i) => v > 0 && out.add(i));
  return out;
}
