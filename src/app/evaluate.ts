/**
 * Evaluation helpers shared by the CLI commands and the study: a data split or generated
 * samples as 8-bit images for the Inception network, and bits/dim of a diffusion model.
 *
 * @module
 */
import { Rng } from "../core/rng.ts";
import type { Batch } from "../data/batch.ts";
import type { Dataset } from "../data/dataset.ts";
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
