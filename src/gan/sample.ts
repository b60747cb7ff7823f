/**
 * Drawing images from a DCGAN generator: the one loop that the GAN task's `sample` and the
 * exported browser model (src/web/browser/model.ts) both run.
 *
 * Each image's z comes from its own noise stream and G runs in eval mode (BatchNorm running
 * statistics), so an image depends only on its own z and label, never on the pass it was drawn
 * in: a seed gives the same images whatever the batch size (see task.ts for why eval mode).
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { type ImageNoise, normalRows, type Rng, toImageNoise } from "../core/rng.ts";
import { DCGAN_IMAGE_SIZE, type DcganModelConfig, generatorForward } from "../models/dcgan.ts";
import type { ParamStore } from "../nn/params.ts";

/** Images per generator pass when none is asked for. */
export const DEFAULT_GAN_SAMPLE_BATCH = 256;

/** What {@link sampleGenerator} accepts besides the model and the noise. */
export interface GeneratorSampleOptions {
  /** Images per generator pass (default 256; fractions round down); the images do not depend on it. */
  batchSize?: number;
  /** Called after each generator pass with the passes done so far and their total. */
  onBatch?: (done: number, total: number) => void;
}

/**
 * Throws unless every label is a class of a model with `numClasses` classes (any labels pass
 * when it is unconditional, 0 classes: they are ignored).
 *
 * @example
 * ```ts
 * import { checkGanLabels } from "./sample.ts";
 * checkGanLabels(Int32Array.from([0, 1]), 2); // fine
 * try {
 *   checkGanLabels(Int32Array.from([2]), 2);
 * } catch (e) {
 *   console.log((e as Error).message); // label 2 is outside the model's 2 classes (0..1)
 * }
 * ```
 */
export function checkGanLabels(labels: Int32Array, numClasses: number): void {
  if (numClasses === 0) return;
  for (const label of labels) {
    if (!(label >= 0 && label < numClasses)) {
      throw new Error(
        `label ${label} is outside the model's ${numClasses} classes (0..${numClasses - 1})`,
      );
    }
  }
}

/**
 * Draws one image per label from `generator` in eval mode: float32 [n, C, 32, 32] in [-1, 1],
 * image i's z drawn from `noise`'s stream i (a plain {@link Rng} is split into streams, see
 * `toImageNoise`). Labels are checked before the first pass; the weights are not changed.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { imageNoise, Rng } from "../core/rng.ts";
 * import { defineGenerator } from "../models/dcgan.ts";
 * import { ParamStore } from "../nn/params.ts";
 * import { sampleGenerator } from "./sample.ts";
 * using backend = await createBackend("tfjs-cpu");
 * const model = { preset: "dcgan", nz: 8, ngf: 4, ndf: 4, channels: 3, numClasses: 0, embedDim: 0 } as const;
 * using generator = new ParamStore(backend);
 * defineGenerator(generator, new Rng(0), model);
 * const images = sampleGenerator(backend, generator, model, new Int32Array(3), imageNoise(7), {
 *   batchSize: 2,
 *   onBatch: (done, total) => console.log(`${done}/${total}`), // 1/2, then 2/2
 * });
 * console.log(images.length); // 9216 = 3 * 3 * 32 * 32
 * ```
 */
export function sampleGenerator(
  b: Backend,
  generator: ParamStore,
  model: DcganModelConfig,
  labels: Int32Array,
  noise: Rng | ImageNoise,
  options: GeneratorSampleOptions = {},
): Float32Array {
  checkGanLabels(labels, model.numClasses);
  const n = labels.length;
  const asked = Math.floor(options.batchSize ?? NaN);
  const chunk = asked >= 1 ? asked : DEFAULT_GAN_SAMPLE_BATCH;
  // Each image's z from its own stream, so images do not depend on the chunk size.
  const streams = toImageNoise(noise);
  const zData = normalRows(Array.from({ length: n }, (_, i) => streams.stream(i)), model.nz);
  const perImage = model.channels * DCGAN_IMAGE_SIZE * DCGAN_IMAGE_SIZE;
  const out = new Float32Array(n * perImage);
  const total = Math.ceil(n / chunk);
  for (let start = 0; start < n; start += chunk) {
    const size = Math.min(chunk, n - start);
    b.scope(() =>
      b.noGrad(() => {
        const z = b.tensor(
          zData.subarray(start * model.nz, (start + size) * model.nz),
          [size, model.nz, 1, 1],
        );
        const y = model.numClasses > 0
          ? b.tensor(labels.subarray(start, start + size), [size], "int32")
          : undefined;
        const images = generatorForward(b, generator, model, z, y, { training: false });
        out.set(b.read(images), start * perImage); // [size, C, 32, 32]
      })
    );
    options.onBatch?.(start / chunk + 1, total);
  }
  return out;
}
