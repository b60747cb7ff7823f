/**
 * The in-memory data set: images with labels served as seeded, shuffled float batches in
 * [-1, 1] with optional horizontal flips. Where data comes from is `source.ts`'s job, loading
 * a split (CIFAR-10 or an image folder, class filter, cache) `load.ts`'s.
 *
 * Reproducible epochs (so a resumed run sees exactly the batches an uninterrupted run would):
 * the order of epoch `e` is a pure function of `(seed, e)` ({@link Dataset.epochOrder}), and
 * the flips of batch `i` of epoch `e` come from {@link flipRng}`(seed, e, i)`. A trainer at
 * global step `k` with `n = dataset.batchesPerEpoch(batchSize)` uses epoch `floor(k / n)` and
 * batch `k % n`:
 *
 * ```ts
 * import { Dataset, flipRng } from "./dataset.ts";
 * const dataset = new Dataset({
 *   images: new Uint8Array(10 * 3 * 4 * 4), labels: new Int32Array(10),
 *   imageShape: [3, 4, 4], classNames: ["a"],
 * });
 * const [seed, batchSize, step] = [7, 4, 5];
 * const n = dataset.batchesPerEpoch(batchSize); // 3
 * const [epoch, index] = [Math.floor(step / n), step % n]; // epoch 1, batch 2
 * const order = dataset.epochOrder(epoch, seed);
 * const batch = dataset.batchAt(order, index, batchSize, { flip: true, rng: flipRng(seed, epoch, index) });
 * console.log(batch.shape); // [2, 3, 4, 4]: the last batch of an epoch may be short
 * ```
 *
 * @module
 */
import { deriveSeed, Rng } from "../core/rng.ts";
import type { Batch } from "./batch.ts";

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
  /** Number of images. */
  readonly size: number;
  /** [C, H, W] of every image. */
  readonly imageShape: [3, number, number];
  /** Name of each label id (index = label). */
  readonly classNames: string[];
  /** Number of classes (`classNames.length`). */
  readonly numClasses: number;
  /** Where the images came from, for logs. */
  readonly description: string;
  /** The resolved, absolute folder the images were read from; null for in-memory data. */
  readonly location: string | null;
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
    location?: string;
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
    this.location = init.location ?? null;
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
   * import { Dataset } from "./dataset.ts";
   * const dataset = new Dataset({
   *   images: new Uint8Array(10   * 3   * 4   * 4), labels: new Int32Array(10),
   *   imageShape: [3, 4, 4], classNames: ["a"],
   * });
   * dataset.batchesPerEpoch(4); // 3: 4 + 4 + 2
   * dataset.batchesPerEpoch(4, true); // 2: the short batch is dropped
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
   * import { Dataset } from "./dataset.ts";
   * const dataset = new Dataset({
   *   images: new Uint8Array(10   * 3   * 4   * 4), labels: new Int32Array(10),
   *   imageShape: [3, 4, 4], classNames: ["a"],
   * });
   * const order = dataset.epochOrder(0, 1234); // a permutation of 0..9
   * console.log(order.length); // 10
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
   * `part` keeps images [offset, offset + count) of that batch (a data-parallel rank's shard
   * of the global batch); the flip draws of the images before it are skipped, so each image
   * is flipped exactly as in the whole batch. The result carries `shard` for the task.
   *
   * @example
   * ```ts
   * import { Dataset, flipRng } from "./dataset.ts";
   * const dataset = new Dataset({
   *   images: new Uint8Array(10   * 3   * 4   * 4), labels: new Int32Array(10),
   *   imageShape: [3, 4, 4], classNames: ["a"],
   * });
   * const batch = dataset.batchAt(dataset.epochOrder(2, 7), 1, 4, { flip: true, rng: flipRng(7, 2, 1) });
   * console.log(batch.shape); // [4, 3, 4, 4], values in [-1, 1]
   * ```
   */
  batchAt(
    order: Int32Array,
    index: number,
    batchSize: number,
    options: { flip?: boolean; rng?: Rng; part?: { offset: number; count: number } } = {},
  ): Batch {
    checkBatchSize(batchSize);
    const start = index * batchSize;
    if (!Number.isInteger(index) || index < 0 || start >= order.length) {
      throw new RangeError(
        `batch ${index} of size ${batchSize} is past the end of an epoch of ${order.length} images`,
      );
    }
    if (options.flip && !options.rng) throw new TypeError("batchAt: flip needs an rng");
    const whole = Math.min(batchSize, order.length - start);
    const part = options.part ?? { offset: 0, count: whole };
    if (
      !Number.isInteger(part.offset) || !Number.isInteger(part.count) || part.offset < 0 ||
      part.count < 1 || part.offset + part.count > whole
    ) {
      throw new RangeError(
        `batchAt: part [${part.offset}, ${part.offset + part.count}) is outside batch ${index} ` +
          `of ${whole} images`,
      );
    }
    if (options.flip) { for (let b = 0; b < part.offset; b++) options.rng!.uniform(); }
    const count = part.count;
    const [c, h, w] = this.imageShape;
    const imageSize = c * h * w;
    const images = new Float32Array(count * imageSize); // [B, C, H, W]
    const labels = new Int32Array(count);
    for (let b = 0; b < count; b++) {
      const source = order[start + part.offset + b];
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
    const shape = [count, c, h, w] as const;
    if (!options.part) return { images, labels, shape };
    return { images, labels, shape, shard: { offset: part.offset, total: whole } };
  }

  /**
   * One epoch of batches. Draws one number from `rng` (the epoch seed) when called; the same
   * rng state always yields the same batches.
   *
   * @example
   * ```ts
   * import { Rng } from "../core/rng.ts";
   * import { Dataset } from "./dataset.ts";
   * const dataset = new Dataset({
   *   images: new Uint8Array(10   * 3   * 4   * 4), labels: new Int32Array(10),
   *   imageShape: [3, 4, 4], classNames: ["a"],
   * });
   * for (const batch of dataset.batches(4, new Rng(0), { flip: true, dropLast: true })) {
   *   console.log(batch.shape); // [4, 3, 4, 4], twice
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
