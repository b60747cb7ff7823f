/**
 * One Dataset API over CIFAR-10 (official binary batches) and image folders: split, class
 * filter, label remapping, seeded shuffling, float batches in [-1, 1] with optional
 * horizontal flips, and an in-memory cache.
 *
 * Reproducible epochs (so a resumed run sees exactly the batches an uninterrupted run would):
 * the order of epoch `e` is a pure function of `(seed, e)` ({@link Dataset.epochOrder}), and
 * the flips of batch `i` of epoch `e` come from {@link flipRng}`(seed, e, i)`. A trainer at
 * global step `k` with `n = dataset.batchesPerEpoch(batchSize)` uses epoch `floor(k / n)` and
 * batch `k % n`:
 *
 * ```ts
 * const order = dataset.epochOrder(epoch, seed);
 * const batch = dataset.batchAt(order, index, batchSize, { flip: true, rng: flipRng(seed, epoch, index) });
 * ```
 *
 * @module
 */
import { defaultCacheDir } from "../io/cache.ts";
import { deriveSeed, Rng } from "../core/rng.ts";
import type { Batch } from "./batch.ts";
import {
  CIFAR10_BATCHES_DIR,
  CIFAR10_CLASSES,
  CIFAR10_URL,
  ensureCifar10,
  hasCifarBatches,
  readCifarSplit,
} from "./cifar10.ts";
import { listClassFolders, loadImageFolder } from "./image_folder.ts";

/** Where a data set is read from, as resolved from `--data` / env / cache. */
export type DataSource =
  | { kind: "cifar10-binary"; path: string }
  | { kind: "image-folder"; path: string }
  | { kind: "download"; cacheDir: string };

/** Options of {@link loadDataset}. */
export interface DatasetOptions {
  /** `--data PATH` (a cifar-10-batches-bin folder or an image folder) or "cifar10". */
  source?: string;
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
  /** Cache folder (default `$XDG_CACHE_HOME/deno-diffusion` or `~/.cache/deno-diffusion`). */
  cacheDir?: string;
  /** Download address of the CIFAR-10 archive (tests point it at a local server). */
  downloadUrl?: string;
  /** Expected MD5 of the downloaded archive (default: the official one). */
  downloadMd5?: string;
}

/** Options of {@link Dataset.batches}. */
export interface BatchOptions {
  /** Random horizontal flip of each image with probability 1/2 (default false). */
  flip?: boolean;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
  /** Shuffle the order (default true). */
  shuffle?: boolean;
}

/**
 * The generator of the flips of batch `index` of epoch `epoch`, independent of any other
 * batch, so a resumed run can recreate it.
 *
 * @example
 * ```ts
 * import { flipRng } from "./dataset.ts";
 * flipRng(42, 3, 17).uniform() === flipRng(42, 3, 17).uniform(); // true
 * ```
 */
export function flipRng(seed: number, epoch: number, index: number): Rng {
  return new Rng(deriveSeed(seed, 0x5eed + epoch, index));
}

/** In-memory images with labels, served as float batches. */
export class Dataset {
  readonly size: number;
  readonly imageShape: [3, number, number];
  /** Name of each label id (index = label). */
  readonly classNames: string[];
  readonly numClasses: number;
  /** Where the images came from, for logs. */
  readonly description: string;
  #images: Uint8Array;
  #labels: Int32Array;

  /**
   * Wraps uint8 NCHW images and their labels.
   *
   * @example
   * ```ts
   * import { Dataset } from "./dataset.ts";
   * const tiny = new Dataset({
   *   images: new Uint8Array(2 * 3 * 4 * 4), labels: new Int32Array([0, 1]),
   *   imageShape: [3, 4, 4], classNames: ["a", "b"],
   * });
   * ```
   */
  constructor(init: {
    images: Uint8Array;
    labels: Int32Array;
    imageShape: [3, number, number];
    classNames: string[];
    description?: string;
  }) {
    const [c, h, w] = init.imageShape;
    this.size = init.labels.length;
    if (init.images.length !== this.size * c * h * w) {
      throw new TypeError(
        `Dataset: ${this.size} labels need ${
          this.size * c * h * w
        } image bytes, got ${init.images.length}`,
      );
    }
    this.#images = init.images;
    this.#labels = init.labels;
    this.imageShape = init.imageShape;
    this.classNames = init.classNames;
    this.numClasses = init.classNames.length;
    this.description = init.description ?? "in-memory images";
  }

  /** All images, [N, 3, H, W] uint8 (shared, do not modify). */
  images(): Uint8Array {
    return this.#images;
  }

  /** All labels, [N] (shared, do not modify). */
  labels(): Int32Array {
    return this.#labels;
  }

  /**
   * Batches per epoch.
   *
   * @example
   * ```ts
   * dataset.batchesPerEpoch(128, true); // 390 for 50,000 images
   * ```
   */
  batchesPerEpoch(batchSize: number, dropLast = false): number {
    checkBatchSize(batchSize);
    return dropLast ? Math.floor(this.size / batchSize) : Math.ceil(this.size / batchSize);
  }

  /**
   * The image order of epoch `epoch`: a permutation that depends only on `(seed, epoch)`, or
   * 0..N-1 when `shuffle` is false.
   *
   * @example
   * ```ts
   * const order = dataset.epochOrder(0, 1234);
   * ```
   */
  epochOrder(epoch: number, seed: number, shuffle = true): Int32Array {
    if (!shuffle) return Int32Array.from({ length: this.size }, (_, i) => i);
    return new Rng(deriveSeed(seed, epoch)).permutation(this.size);
  }

  /**
   * Batch number `index` of an epoch with the given order (the last one may be short).
   * Flips (if asked) use `rng`, one draw per image.
   *
   * @example
   * ```ts
   * import { flipRng } from "./dataset.ts";
   * const batch = dataset.batchAt(dataset.epochOrder(2, 7), 5, 64, { flip: true, rng: flipRng(7, 2, 5) });
   * ```
   */
  batchAt(
    order: Int32Array,
    index: number,
    batchSize: number,
    options: { flip?: boolean; rng?: Rng } = {},
  ): Batch {
    checkBatchSize(batchSize);
    const start = index * batchSize;
    if (!Number.isInteger(index) || index < 0 || start >= order.length) {
      throw new RangeError(
        `batch ${index} of size ${batchSize} is past the end of an epoch of ${order.length} images`,
      );
    }
    if (options.flip && !options.rng) throw new TypeError("batchAt: flip needs an rng");
    const count = Math.min(batchSize, order.length - start);
    const [c, h, w] = this.imageShape;
    const imageSize = c * h * w;
    const images = new Float32Array(count * imageSize); // [B, C, H, W]
    const labels = new Int32Array(count);
    for (let b = 0; b < count; b++) {
      const source = order[start + b];
      labels[b] = this.#labels[source];
      const flip = options.flip ? options.rng!.uniform() < 0.5 : false;
      const src = source * imageSize;
      const dst = b * imageSize;
      for (let row = 0; row < c * h; row++) {
        const s = src + row * w;
        const d = dst + row * w;
        for (let x = 0; x < w; x++) {
          images[d + x] = this.#images[s + (flip ? w - 1 - x : x)] / 127.5 - 1;
        }
      }
    }
    return { images, labels, shape: [count, c, h, w] };
  }

  /**
   * One epoch of batches. Draws one number from `rng` (the epoch seed) when called; the same
   * rng state always yields the same batches.
   *
   * @example
   * ```ts
   * import { deriveSeed, Rng } from "../core/rng.ts";
   * for (const batch of dataset.batches(128, new Rng(0), { flip: true, dropLast: true })) {
   *   console.log(batch.shape); // [128, 3, 32, 32]
   * }
   * ```
   */
  batches(batchSize: number, rng: Rng, options: BatchOptions = {}): Iterable<Batch> {
    const seed = rng.nextUint32();
    const shuffle = options.shuffle ?? true;
    const count = this.batchesPerEpoch(batchSize, options.dropLast ?? false);
    const order = this.epochOrder(0, seed, shuffle);
    // deno-lint-ignore no-this-alias
    const dataset = this;
    return {
      *[Symbol.iterator]() {
        for (let i = 0; i < count; i++) {
          yield dataset.batchAt(order, i, batchSize, {
            flip: options.flip,
            rng: flipRng(seed, 0, i),
          });
        }
      },
    };
  }
}

function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  }
}

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
 * import { resolveDataSource } from "./dataset.ts";
 * await resolveDataSource("../shared/data/cifar10-jpg"); // { kind: "image-folder", path: ... }
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
    if (await hasCifarBatches(path)) return { kind: "cifar10-binary", path };
    if (await hasCifarBatches(`${path}/${CIFAR10_BATCHES_DIR}`)) {
      return { kind: "cifar10-binary", path: `${path}/${CIFAR10_BATCHES_DIR}` };
    }
    if (await isDirectory(`${path}/train`) || await isDirectory(`${path}/test`)) {
      return { kind: "image-folder", path };
    }
    throw new Error(
      `${flag} is neither a CIFAR-10 binary folder (data_batch_1..5.bin, test_batch.bin) nor ` +
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
 * import { parseClassFilter } from "./dataset.ts";
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

const cache = new Map<string, Promise<Dataset>>();

/**
 * Forgets every data set kept in memory by {@link loadDataset}.
 *
 * @example
 * ```ts
 * import { clearDatasetCache } from "./dataset.ts";
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
 * import { loadDataset } from "./dataset.ts";
 * const cats = await loadDataset({ source: "../shared/data/cifar10-jpg", split: "train", classes: "cat" });
 * console.log(cats.size, cats.classNames); // 5000 ["cat"]
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
  const key = JSON.stringify([source.path, options.split, keep, remap, options.limit ?? null]);
  let pending = cache.get(key);
  if (!pending) {
    pending = load(source, options.split, allClasses, keep, remap, options.limit);
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
): Promise<Dataset> {
  let images: Uint8Array;
  let labels: Int32Array;
  let imageShape: [3, number, number];
  if (source.kind === "cifar10-binary") {
    const all = await readCifarSplit(source.path, split);
    const chosen = selectRecords(all.labels, keep, limit);
    const imageSize = 3 * 32 * 32;
    if (chosen.length === all.count) {
      ({ images, labels } = all); // everything kept: no copy
    } else {
      images = new Uint8Array(chosen.length * imageSize);
      labels = new Int32Array(chosen.length);
      chosen.forEach((record, i) => {
        images.set(
          all.images.subarray(record * imageSize, (record + 1) * imageSize),
          i * imageSize,
        );
        labels[i] = all.labels[record];
      });
    }
    imageShape = [3, 32, 32];
  } else {
    const folder = await loadImageFolder(source.path, split, { keep, limit });
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
  });
}
