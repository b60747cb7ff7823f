/**
 * pytorch-fid's `.npz` statistics files (`mu` [d], `sigma` [d, d], float64): read with shape
 * checks, written atomically, so precomputed reference statistics interoperate both ways.
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
  return { mu: Float64Array.from(mu.data), sigma: Float64Array.from(sigma.data), dims: d };
}

/**
 * Writes FID statistics as pytorch-fid's `.npz` (`mu` [d], `sigma` [d, d], float64), atomically.
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
  const { mu, sigma, dims } = stats;
  await writeNpz(
    path,
    new Map([
      ["mu", { dtype: "float64" as const, shape: [dims], data: mu }],
      ["sigma", { dtype: "float64" as const, shape: [dims, dims], data: sigma }],
    ]),
  );
}
