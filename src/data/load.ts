/**
 * Loading a split of a data set into a {@link Dataset}: CIFAR-10 binary batches (downloaded
 * once when needed) or an image folder, with class filter, label remapping, a limit and an
 * in-memory cache keyed by all of them.
 *
 * @module
 */
import { CIFAR10_CLASSES, CIFAR10_URL, readCifarSplit } from "./cifar10.ts";
import { ensureCifar10 } from "./cifar10_download.ts";
import { listClassFolders, loadImageFolder } from "./image_folder.ts";
import { Dataset } from "./dataset.ts";
import { resizeCenterCrop } from "./resize.ts";
import { parseClassFilter, resolveDataSource } from "./source.ts";

/** Options of {@link loadDataset}. */
export interface DatasetOptions {
  /** `--data PATH` (a cifar-10-batches-bin folder or an image folder) or "cifar10". */
  source?: string;
  /** Which split to load. */
  split: "train" | "test";
  /** Class filter: names or ids, comma-separated ("cat", "cat,frog", "3,6"). Default: all. */
  classes?: string;
  /**
   * Renumber the kept classes 0..k-1 in label order (default true). When false, labels keep
   * their original ids and `classNames` is the full class list.
   */
  remapLabels?: boolean;
  /** At most this many images, split evenly over the kept classes (first ones of each). */
  limit?: number;
  /**
   * Resize every image to `imageSize` x `imageSize` (torchvision Resize + CenterCrop, see
   * `resize.ts`). Without it, images keep their size (and must all share one).
   */
  imageSize?: number;
  /** Cache folder (default `$XDG_CACHE_HOME/deno-diffusion` or `~/.cache/deno-diffusion`). */
  cacheDir?: string;
  /** Download address of the CIFAR-10 archive (tests point it at a local server). */
  downloadUrl?: string;
  /** Expected MD5 of the downloaded archive (default: the official one). */
  downloadMd5?: string;
}

const cache = new Map<string, Promise<Dataset>>();

/**
 * Forgets every data set kept in memory by {@link loadDataset}.
 *
 * @example
 * ```ts
 * import { clearDatasetCache } from "./load.ts";
 * clearDatasetCache(); // the next loadDataset() reads from disk again
 * ```
 */
export function clearDatasetCache(): void {
  cache.clear();
}

/**
 * Loads a data set split (cached in memory by source, split, classes and limit).
 *
 * @example
 * ```ts
 * import { writeImageFolder } from "../io/png.ts";
 * import { loadDataset } from "./load.ts";
 * // The layout of an image-folder data set: ROOT/<split>/<class>/*.png|*.jpg
 * const root = await Deno.makeTempDir();
 * for (const name of ["cat", "dog"]) {
 *   await writeImageFolder(`${root}/train/${name}`, new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
 * }
 * const cats = await loadDataset({ source: root, split: "train", classes: "cat" });
 * console.log(cats.size, cats.classNames); // 2 ["cat"] (CIFAR-10's train split: 5000)
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function loadDataset(options: DatasetOptions): Promise<Dataset> {
  if (options.split !== "train" && options.split !== "test") {
    throw new Error(`split must be "train" or "test", got ${JSON.stringify(options.split)}`);
  }
  if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit > 0)) {
    throw new Error(`limit must be a positive integer, got ${options.limit}`);
  }
  let source = await resolveDataSource(options.source, { cacheDir: options.cacheDir });
  if (source.kind === "download") {
    const url = options.downloadUrl ?? CIFAR10_URL;
    const cacheDir = source.cacheDir;
    try {
      const path = await ensureCifar10({
        cacheDir,
        url,
        md5: options.downloadMd5,
      });
      source = { kind: "cifar10-binary", path };
    } catch (error) {
      throw new Error(
        `CIFAR-10 is not in the cache (${cacheDir}) and could not be downloaded from ` +
          `${url}: ${(error as Error).message}. Pass --data PATH (a cifar-10-batches-bin ` +
          `folder or an image folder such as ../shared/data/cifar10-jpg) or set ` +
          `DENO_DIFFUSION_DATA.`,
        { cause: error },
      );
    }
  }
  const allClasses = source.kind === "image-folder"
    ? await listClassFolders(source.path, options.split)
    : [...CIFAR10_CLASSES];
  const keep = parseClassFilter(options.classes, allClasses);
  const remap = options.remapLabels ?? true;
  if (
    options.imageSize !== undefined &&
    !(Number.isInteger(options.imageSize) && options.imageSize > 0)
  ) {
    throw new Error(`image size must be a positive integer, got ${options.imageSize}`);
  }
  const key = JSON.stringify([
    source.path,
    options.split,
    keep,
    remap,
    options.limit ?? null,
    options.imageSize ?? null,
  ]);
  let pending = cache.get(key);
  if (!pending) {
    pending = load(
      source,
      options.split,
      allClasses,
      keep,
      remap,
      options.limit,
      options.imageSize,
    );
    cache.set(key, pending);
    pending.catch(() => cache.delete(key));
  }
  return await pending;
}

async function load(
  source: { kind: "cifar10-binary" | "image-folder"; path: string },
  split: "train" | "test",
  allClasses: string[],
  keep: number[],
  remap: boolean,
  limit: number | undefined,
  imageSize: number | undefined,
): Promise<Dataset> {
  let images: Uint8Array;
  let labels: Int32Array;
  let imageShape: [3, number, number];
  if (source.kind === "cifar10-binary") {
    const all = await readCifarSplit(source.path, split);
    const chosen = selectRecords(all.labels, keep, limit);
    const imageSize32 = 3 * 32 * 32;
    if (chosen.length === all.count) {
      ({ images, labels } = all); // everything kept: no copy
    } else {
      images = new Uint8Array(chosen.length * imageSize32);
      labels = new Int32Array(chosen.length);
      chosen.forEach((record, i) => {
        images.set(
          all.images.subarray(record * imageSize32, (record + 1) * imageSize32),
          i * imageSize32,
        );
        labels[i] = all.labels[record];
      });
    }
    imageShape = [3, 32, 32];
    if (imageSize !== undefined && imageSize !== 32) {
      const resized = new Uint8Array(labels.length * 3 * imageSize * imageSize);
      for (let i = 0; i < labels.length; i++) {
        const one = images.subarray(i * imageSize32, (i + 1) * imageSize32); // [3, 32, 32]
        resized.set(resizeCenterCrop(one, 3, 32, 32, imageSize), i * 3 * imageSize * imageSize);
      }
      images = resized;
      imageShape = [3, imageSize, imageSize];
    }
  } else {
    const folder = await loadImageFolder(source.path, split, { keep, limit, imageSize });
    ({ images, labels, imageShape } = folder);
  }
  if (labels.length === 0) throw new Error(`no images of the selected classes in ${source.path}`);
  if (remap) {
    const newId = new Map(keep.map((id, k) => [id, k]));
    labels = labels.map((label) => newId.get(label)!);
  }
  return new Dataset({
    images,
    labels,
    imageShape,
    classNames: remap ? keep.map((id) => allClasses[id]) : allClasses,
    description: `${source.path} (${split}${
      keep.length < allClasses.length ? `, classes ${keep.map((id) => allClasses[id])}` : ""
    }${limit ? `, limit ${limit}` : ""})`,
    location: await absolutePath(source.path),
  });
}

/** Keeps the records of the kept classes; `limit` split evenly over them, first ones first. */
function selectRecords(labels: Int32Array, keep: number[], limit?: number): Int32Array {
  const quota = new Map<number, number>();
  keep.forEach((id, k) => {
    quota.set(
      id,
      limit === undefined
        ? Infinity
        : Math.floor(limit / keep.length) + (k < limit % keep.length ? 1 : 0),
    );
  });
  const chosen: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    const left = quota.get(labels[i]);
    if (left !== undefined && left > 0) {
      chosen.push(i);
      quota.set(labels[i], left - 1);
    }
  }
  return Int32Array.from(chosen);
}

/** `path` made absolute (links resolved), so a run can find its data from any folder. */
async function absolutePath(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  }
}
