/**
 * Where a data set comes from (`--data`, `$DENO_DIFFUSION_DATA`, the CIFAR-10 cache, a
 * download) and which of its classes are kept (the class-filter syntax "cat,frog" / "3,6").
 *
 * @module
 */
import { defaultCacheDir } from "../io/cache.ts";
import { CIFAR10_BATCHES_DIR, hasCifarBatches, presentCifarBatches } from "./cifar10.ts";

/** Where a data set is read from, as resolved from `--data` / env / cache. */
export type DataSource =
  | { kind: "cifar10-binary"; path: string }
  | { kind: "image-folder"; path: string }
  | { kind: "download"; cacheDir: string };

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Resolves where data comes from: `source` (`--data`), else `$DENO_DIFFUSION_DATA`, else the
 * CIFAR-10 cache, else a download is needed.
 *
 * @example
 * ```ts
 * import { writeImageFolder } from "../io/png.ts";
 * import { resolveDataSource } from "./source.ts";
 * // The layout of an image-folder data set: ROOT/<split>/<class>/*.png|*.jpg
 * const root = await Deno.makeTempDir();
 * for (const name of ["cat", "dog"]) {
 *   await writeImageFolder(`${root}/train/${name}`, new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
 * }
 * console.log((await resolveDataSource(root)).kind); // "image-folder"
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function resolveDataSource(
  source?: string,
  options: { cacheDir?: string } = {},
): Promise<DataSource> {
  const given = source ?? Deno.env.get("DENO_DIFFUSION_DATA");
  if (given && given !== "cifar10") {
    const flag = source ? `--data ${given}` : `DENO_DIFFUSION_DATA=${given}`;
    try {
      await Deno.stat(given);
    } catch {
      throw new Error(`${flag}: no such file or folder`);
    }
    const path = given.replace(/\/+$/, "") || "/";
    if ((await presentCifarBatches(path)).length) return { kind: "cifar10-binary", path };
    if ((await presentCifarBatches(`${path}/${CIFAR10_BATCHES_DIR}`)).length) {
      return { kind: "cifar10-binary", path: `${path}/${CIFAR10_BATCHES_DIR}` };
    }
    if (await isDirectory(`${path}/train`) || await isDirectory(`${path}/test`)) {
      return { kind: "image-folder", path };
    }
    throw new Error(
      `${flag} is neither a CIFAR-10 binary folder (any of data_batch_1..5.bin, test_batch.bin) nor ` +
        `an image folder (${path}/train/<class>/*.png|*.jpg)`,
    );
  }
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const cached = `${cacheDir}/${CIFAR10_BATCHES_DIR}`;
  if (await hasCifarBatches(cached)) return { kind: "cifar10-binary", path: cached };
  return { kind: "download", cacheDir };
}

/**
 * Turns a class filter ("cat", "cat,frog", "3,6") into sorted label ids of `classNames`.
 *
 * @example
 * ```ts
 * import { parseClassFilter } from "./source.ts";
 * parseClassFilter("frog,3", ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog"]); // [3, 6]
 * ```
 */
export function parseClassFilter(filter: string | undefined, classNames: string[]): number[] {
  if (filter === undefined || filter.trim() === "") return classNames.map((_, i) => i);
  const ids = new Set<number>();
  for (const raw of filter.split(",")) {
    const token = raw.trim();
    if (/^\d+$/.test(token)) {
      const id = Number(token);
      if (id >= classNames.length) {
        throw new Error(
          `--classes: class id ${id} does not exist (ids are 0..${classNames.length - 1})`,
        );
      }
      ids.add(id);
    } else {
      const id = classNames.findIndex((name) => name.toLowerCase() === token.toLowerCase());
      if (id < 0) {
        throw new Error(
          `--classes: unknown class "${token}"; known classes: ${classNames.join(", ")}`,
        );
      }
      ids.add(id);
    }
  }
  return [...ids].sort((a, b) => a - b);
}
