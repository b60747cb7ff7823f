/**
 * Evaluation helpers shared by the CLI commands and the study: a data split or generated
 * samples as 8-bit images for the Inception network, bits/dim of a diffusion model, and
 * {@link fidOfCheckpoint} (a checkpoint's samples against a reference split).
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { imageNoise, Rng } from "../core/rng.ts";
import type { Batch } from "../data/batch.ts";
import type { Dataset } from "../data/dataset.ts";
import { loadDataset } from "../data/load.ts";
import { parseClassFilter } from "../data/source.ts";
import { defaultCacheDir } from "../io/cache.ts";
import { FidScorer, type FidScorerOptions } from "../metrics/scorer.ts";
import { openCheckpoint } from "./registry.ts";
import { chunksOf, sampleChunks } from "./sample_ranks.ts";
import type { BitsPerDim } from "../diffusion/loss.ts";
import { toUint8Images } from "../io/png.ts";
import type { ImageLike } from "../metrics/features.ts";
import type { AnyTask } from "./registry.ts";

/**
 * Generated float32 NCHW images in [-1, 1] as 8-bit images, quantised exactly as the PNGs
 * written for pytorch-fid.
 */
export function generatedImages(images: Float32Array, shape: readonly number[]): ImageLike[] {
  return toUint8Images(images, shape);
}

/**
 * The images of `data` whose label is in `labels` (all when omitted), first `limit` of them,
 * as 8-bit HWC images for the Inception network.
 *
 * @example
 * ```ts
 * import { Dataset } from "../data/dataset.ts";
 * import { datasetImages } from "./evaluate.ts";
 * const data = new Dataset({ images: new Uint8Array(2 * 3 * 2 * 2), labels: new Int32Array([0, 1]),
 *   imageShape: [3, 2, 2], classNames: ["a", "b"] });
 * console.log(datasetImages(data, 5, [1]).length); // 1
 * ```
 */
export function datasetImages(data: Dataset, limit: number, labels?: number[]): ImageLike[] {
  const [c, h, w] = data.imageShape;
  const plane = h * w;
  const all = data.images();
  const allLabels = data.labels();
  const out: ImageLike[] = [];
  for (let i = 0; i < data.size && out.length < limit; i++) {
    if (labels && !labels.includes(allLabels[i])) continue;
    const pixels = new Uint8Array(plane * c);
    for (let ch = 0; ch < c; ch++) {
      const from = (i * c + ch) * plane;
      for (let p = 0; p < plane; p++) pixels[p * c + ch] = all[from + p];
    }
    out.push({ width: w, height: h, channels: c, data: pixels });
  }
  return out;
}

/** Options of {@link diffusionBitsPerDim}. */
export interface BitsPerDimEvalOptions {
  /** Test images to evaluate, spread evenly over the split. */
  images: number;
  /** Evaluate every k-th KL term (1 = the exact bound). */
  timestepStride: number;
  /** Images per forward pass. */
  batchSize: number;
  seed: number;
}

/**
 * Bits/dim (Ho et al. 2020 eq. 5, Table 2) of a trained DDPM task on `options.images` images
 * of `data` spread evenly over it (all of them when it has no more), using its EMA weights
 * when it has them (the weights it samples with).
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Dataset } from "../data/dataset.ts";
 * import { DEFAULT_DDPM_CONFIG } from "../diffusion/task.ts";
 * import { diffusionBitsPerDim } from "./evaluate.ts";
 * import { createTask } from "./registry.ts";
 * using backend = await createBackend("tfjs-cpu");
 * const config = { ...DEFAULT_DDPM_CONFIG, preset: "convnet" as const, baseWidth: 8, imageSize: 8, timesteps: 20, ema: 0 };
 * using task = createTask(backend, { kind: "ddpm", config }, 0);
 * const data = new Dataset({
 *   images: new Uint8Array(4 * 3 * 8 * 8), labels: new Int32Array(4), imageShape: [3, 8, 8], classNames: ["a"],
 * });
 * // The study: { images: 1000, timestepStride: 1, batchSize: 100, seed: 0 } on the test split.
 * const { total, images } = diffusionBitsPerDim(task, data, { images: 2, timestepStride: 5, batchSize: 2, seed: 0 });
 * console.log(images, total > 0); // 2 true
 * ```
 */
export function diffusionBitsPerDim(
  task: AnyTask,
  data: Dataset,
  options: BitsPerDimEvalOptions,
): BitsPerDim {
  if (task.kind !== "ddpm") throw new Error("bits/dim is defined for diffusion models only");
  return task.bitsPerDim(
    testBatches(data, Math.min(options.images, data.size), options.batchSize),
    new Rng(options.seed),
    { timestepStride: options.timestepStride },
  );
}

/**
 * `count` images spread evenly over `data` (so every class of a multi-class split is in the
 * subset, not just the first), as float batches in [-1, 1] with their labels.
 */
function* testBatches(data: Dataset, count: number, batchSize: number): Generator<Batch> {
  const [c, h, w] = data.imageShape;
  const per = c * h * w;
  const images = data.images();
  const labels = data.labels();
  const pick = (k: number) => Math.floor((k * data.size) / count);
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const x = new Float32Array(n * per); // [n, C, H, W]
    const y = new Int32Array(n);
    for (let b = 0; b < n; b++) {
      const from = pick(start + b) * per;
      for (let i = 0; i < per; i++) x[b * per + i] = images[from + i] / 127.5 - 1;
      y[b] = labels[pick(start + b)];
    }
    yield { images: x, labels: y, shape: [n, c, h, w] };
  }
}

/** The reference images of {@link fidOfCheckpoint}. */
export interface ReferenceSpec {
  /**
   * Where the images are: "run" (the data the checkpoint trained on; default), "cifar10"
   * (CIFAR-10 from `data` or the default location), or a data folder.
   */
  source?: string;
  /** Split. Default "test". */
  split?: "train" | "test";
  /** Class filter, e.g. "cat" (default: the classes the run trained on). */
  classes?: string;
  /** With source "run" or "cifar10": read the data from here instead. */
  data?: string;
  /** Use only the first N reference images. */
  limit?: number;
}

/** Options of {@link fidOfCheckpoint}. */
export interface CheckpointFidOptions extends FidScorerOptions {
  /** Reference images. */
  ref?: ReferenceSpec;
  /** Images to sample. Default 1000. */
  n?: number;
  /** Sampling seed. Default 0. */
  seed?: number;
  /** Diffusion sampler options (sampler, steps, eta, guidance, clipX0). */
  sampler?: Record<string, unknown>;
  /** Also compute KID. */
  kid?: boolean;
  /**
   * Images per sampling call, rounded up to whole feature batches. Default about 1,000. With
   * `group`, ranks take whole calls, so the samples are one process's whatever the ranks.
   */
  sampleChunk?: number;
}

/** Result of {@link fidOfCheckpoint}. */
export interface CheckpointFidResult {
  /** FID of the samples against the reference. */
  fid: number;
  /** KID, when asked for. */
  kid?: number;
  /** KID's standard deviation, when asked for. */
  kidStd?: number;
  /** Samples scored. */
  nA: number;
  /** Reference images scored. */
  nB: number;
  /** Feature size. */
  dims: number;
}

/**
 * Samples `n` images from a checkpoint and scores them against reference images with FID (and
 * KID), quantised to 8 bits as the PNGs pytorch-fid would read. The checkpoint, the reference
 * and the weights are all checked before any features are computed; the reference features
 * are cached (under the cache folder) per data, split, classes, count and weights.
 *
 * @example
 * ```ts ignore
 * import { fidOfCheckpoint, selectBackend } from "../../mod.ts";
 * const backend = await selectBackend();
 * const { fid } = await fidOfCheckpoint(backend, "runs/gan-cat", {
 *   n: 1000, ref: { split: "test" }, weights: "pt_inception-2015-12-05-6726825d.pth",
 * });
 * backend.dispose();
 * ```
 */
export async function fidOfCheckpoint(
  backend: Backend,
  ckpt: string,
  options: CheckpointFidOptions = {},
): Promise<CheckpointFidResult> {
  const n = options.n ?? 1000;
  const sampler = options.sampler ?? {};
  const { task, checkpoint } = await openCheckpoint(backend, ckpt);
  try {
    if (task.kind === "gan" && Object.keys(sampler).length) {
      throw new Error(
        "--sampler, --steps, --eta and --guidance apply to diffusion checkpoints; this one is a GAN",
      );
    }
    const trained = checkpoint.state.train.source as
      | { data?: string | null; classes?: string }
      | undefined;
    const ref = options.ref ?? {};
    const where = ref.source ?? "run";
    const source = where === "run"
      ? ref.data ?? trained?.data ?? undefined
      : where === "cifar10"
      ? ref.data
      : where;
    const classes = ref.classes ?? (where === "run" ? trained?.classes : undefined);
    const split = ref.split ?? "test";
    const reference = await loadDataset({ source, split, classes });
    const refImages = datasetImages(reference, ref.limit ?? reference.size);
    if (refImages.length < 2) {
      throw new Error(
        `the reference (${reference.description}, ${split}${classes ? `, ${classes}` : ""}) ` +
          `has ${refImages.length} image: FID needs at least 2`,
      );
    }
    const labels = sampleLabels(task.numClasses, n, trained?.classes ?? "", classes, reference);
    using scorer = new FidScorer(backend, {
      ...options,
      cacheDir: options.cacheDir ?? `${defaultCacheDir()}/fid-reference`,
    });
    await scorer.weightsPath();
    const refFeatures = await scorer.shardedFeatures(
      refImages.length,
      (start, end) => refImages.slice(start, end),
      {
        label: "reference",
        cacheKey: [reference.description, split, classes ?? "all", refImages.length],
      },
    );
    const options8 = task.kind === "ddpm" ? { clipX0: true, ...sampler } : sampler;
    const noise = imageNoise(options.seed ?? 0);
    // Sampling chunks of whole feature batches: with options.group each rank samples and
    // scores whole chunks, the very calls one process makes.
    const batch = options.batchSize ?? 50;
    const block = batch * Math.max(1, Math.round((options.sampleChunk ?? 1000) / batch));
    const generated = await scorer.shardedFeatures(n, async (start, end) => {
      const images = new Float32Array((end - start) * task.imageShape.reduce((a, b) => a * b));
      const per = images.length / (end - start);
      await sampleChunks(
        task,
        labels,
        noise,
        options8,
        chunksOf([[start, end]], block),
        undefined,
        (s, count, part) => {
          images.set(part, (s - start) * per);
          if (options.progress) console.error(`sampled ${s + count - start}/${end - start}`);
        },
      );
      return generatedImages(images, [end - start, ...task.imageShape]);
    }, { label: "samples", block });
    const result: CheckpointFidResult = {
      fid: scorer.fid(scorer.statistics(generated), scorer.statistics(refFeatures)),
      nA: generated.n,
      nB: refFeatures.n,
      dims: scorer.dims,
    };
    if (options.kid) {
      const kid = scorer.kid(generated, refFeatures);
      Object.assign(result, { kid: kid.kid, kidStd: kid.std });
    }
    return result;
  } finally {
    task.dispose();
  }
}

/** Labels of the samples: the reference classes in equal shares (conditional models). */
function sampleLabels(
  numClasses: number,
  n: number,
  trainedOn: string,
  classes: string | undefined,
  reference: Dataset,
): Int32Array {
  const labels = new Int32Array(n);
  if (numClasses === 0) return labels;
  const names = trainedOn.split(",").map((s) => s.trim());
  const wanted = classes
    ? parseClassFilter(classes, reference.classNames).map((id) => reference.classNames[id])
    : names;
  const ids = wanted.map((name) => names.indexOf(name));
  if (ids.some((id) => id < 0)) {
    throw new Error(
      `--ref classes ${wanted.join(",")} are not all among the model's classes (${
        names.join(", ")
      })`,
    );
  }
  for (let i = 0; i < n; i++) labels[i] = ids[Math.floor((i * ids.length) / n)];
  return labels;
}
