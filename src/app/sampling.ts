/**
 * Sampling helpers shared by the `sample` and `fid-checkpoint` commands and the study.
 *
 * @module
 */
import type { Rng } from "../core/rng.ts";
import type { SampleOptionsOf, TrainTask } from "../task/task.ts";

/**
 * Samples `labels.length` images in chunks of at most 1,000 so progress can be shown and a
 * large --n does not hold every intermediate at once.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { DEFAULT_DDPM_CONFIG } from "../diffusion/task.ts";
 * import { createTask } from "./registry.ts";
 * import { sampleInChunks } from "./sampling.ts";
 * using backend = await createBackend("tfjs-cpu");
 * const config = { ...DEFAULT_DDPM_CONFIG, preset: "convnet" as const, baseWidth: 8, imageSize: 8, timesteps: 20, ema: 0 };
 * using task = createTask(backend, { kind: "ddpm", config }, 0);
 * // The CLI: 5,000 labels in five chunks, with a progress bar (last argument true).
 * const images = sampleInChunks(task, new Int32Array(3), new Rng(0), { sampler: "ddim", steps: 2 }, false);
 * console.log(images.length); // 576: [3, 3, 8, 8]
 * ```
 */
export function sampleInChunks<T extends TrainTask>(
  task: T,
  labels: Int32Array,
  rng: Rng,
  options: SampleOptionsOf<T>,
  progress: boolean,
): Float32Array {
  const per = task.imageShape[0] * task.imageShape[1] * task.imageShape[2];
  const images = new Float32Array(labels.length * per);
  const chunk = 1000;
  for (let start = 0; start < labels.length; start += chunk) {
    const part = labels.subarray(start, Math.min(labels.length, start + chunk));
    images.set(task.sample(part, rng, options), start * per);
    if (progress) console.error(`sampled ${start + part.length}/${labels.length}`);
  }
  return images;
}
