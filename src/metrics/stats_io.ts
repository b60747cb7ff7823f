/**
 * pytorch-fid's `.npz` statistics files (`mu` [d], `sigma` [d, d], float64): read with shape
 * checks, written atomically, so precomputed reference statistics interoperate both ways.
 * We also store `n_samples` [1] (the number of images), which pytorch-fid ignores; files
 * without it (pytorch-fid's own) read back with `count` undefined: the count is unknown.
 *
 * @module
 */
import { readNpz, writeNpz } from "../io/npy.ts";
import type { FidStatistics } from "./fid.ts";

/**
 * Reads pytorch-fid statistics (`mu` [d], `sigma` [d, d]) from an .npz, checking shapes.
 *
 * @example
 * ```ts
 * import { statisticsOf } from "./fid.ts";
 * import { readStatistics, writeStatistics } from "./stats_io.ts";
 * const dir = await Deno.makeTempDir();
 * await writeStatistics(`${dir}/stats.npz`, statisticsOf(new Float32Array([0, 1, 2, 4]), 2, 2));
 * const { dims, mu } = await readStatistics(`${dir}/stats.npz`); // pytorch-fid's files: dims 2048
 * console.log(dims, mu); // 2 Float64Array(2) [1, 2.5]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readStatistics(path: string): Promise<FidStatistics> {
  const arrays = await readNpz(path);
  const mu = arrays.get("mu");
  const sigma = arrays.get("sigma");
  if (!mu || !sigma) {
    throw new Error(
      `${path} has no 'mu' and 'sigma' arrays (found ${
        [...arrays.keys()].join(", ") || "none"
      }): ` +
        `expected FID statistics as written by --save-stats or pytorch-fid`,
    );
  }
  const d = mu.shape[0];
  if (mu.shape.length !== 1 || sigma.shape.length !== 2 || sigma.shape.some((s) => s !== d)) {
    throw new Error(
      `${path}: mu [${mu.shape}] and sigma [${sigma.shape}] do not fit (expected [d] and [d, d])`,
    );
  }
  const stats: FidStatistics = {
    mu: Float64Array.from(mu.data),
    sigma: Float64Array.from(sigma.data),
    dims: d,
  };
  const n = arrays.get("n_samples");
  if (n) {
    const count = n.data[0];
    if (n.data.length !== 1 || !Number.isInteger(count) || count < 2) {
      throw new Error(
        `${path}: n_samples should hold one whole number >= 2, got [${[...n.data].slice(0, 4)}]`,
      );
    }
    stats.count = count;
  }
  return stats;
}

/**
 * Writes FID statistics as pytorch-fid's `.npz` (`mu` [d], `sigma` [d, d], float64, plus
 * `n_samples` [1] when the count is known), atomically.
 *
 * @example
 * ```ts
 * import { writeStatistics } from "./stats_io.ts";
 * import { statisticsOf } from "./fid.ts";
 * const dir = await Deno.makeTempDir();
 * await writeStatistics(`${dir}/stats.npz`, statisticsOf(new Float32Array([0, 1, 2, 4]), 2, 2));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeStatistics(path: string, stats: FidStatistics): Promise<void> {
  const { mu, sigma, dims, count } = stats;
  const arrays = new Map([
    ["mu", { dtype: "float64" as const, shape: [dims], data: mu }],
    ["sigma", { dtype: "float64" as const, shape: [dims, dims], data: sigma }],
  ]);
  if (count !== undefined) {
    arrays.set("n_samples", { dtype: "float64", shape: [1], data: new Float64Array([count]) });
  }
  await writeNpz(path, arrays);
}
