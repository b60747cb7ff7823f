/**
 * What the shared trainer needs from a model family. DDPM (`src/diffusion/task.ts`) and the
 * DCGAN (`src/gan/task.ts`) implement it; `train/trainer.ts` runs the loop, checkpoints, resumes,
 * logs and draws progress grids for any of them.
 *
 * @module
 */
import type { ImageNoise, Rng } from "../core/rng.ts";
import type { ParamStore } from "../nn/params.ts";
import type { Batch } from "../data/batch.ts";
import type { Adam } from "./optimizer.ts";

/**
 * A model family the trainer can train, checkpoint and sample. `Kind` names the family,
 * `Config` is the JSON that recreates it and `SampleOptions` what its `sample` accepts, so
 * that a `DdpmTask` or `GanTask` carries its own types through the trainer, checkpoints and
 * commands instead of untyped records.
 */
export interface TrainTask<
  Kind extends string = string,
  Config = unknown,
  SampleOptions = unknown,
> {
  /** The family, e.g. "ddpm" or "gan": stored in checkpoints so a sampler refuses the wrong kind. */
  readonly kind: Kind;
  /** JSON that recreates this task (preset, widths, schedule, classes, ...). */
  readonly config: Config;
  /**
   * Parameter groups saved in checkpoints, e.g. `{ model, ema }` or
   * `{ generator, discriminator }`.
   */
  readonly stores: Record<string, ParamStore>;
  /**
   * The group written to `model.safetensors` for PyTorch users: the weights one samples with
   * (for DDPM the EMA weights when EMA is on, for the GAN the generator).
   */
  readonly exportStore: string;
  /**
   * Groups that are a model of their own, for parameter counts (`stores` minus copies such as
   * an EMA of another group).
   */
  readonly modelStores: readonly string[];
  /** Optimizers by the group they update. */
  readonly optimizers: Record<string, Adam>;
  /**
   * One optimisation step. `progress` is the fraction of training done, in [0, 1] (for
   * schedules such as the GAN's annealed input noise). Returns the metrics to log. A step whose
   * loss or gradient norm is not finite applies no update (the GAN keeps a discriminator update
   * made before its generator's loss turned non-finite) and returns the non-finite metric, so
   * the trainer can stop or skip the batch without reading anything else from the device.
   */
  step(batch: Batch, rng: Rng, progress: number): Record<string, number>;
  /**
   * Generates `labels.length` images (labels are ignored by unconditional models). Image i
   * draws all its noise from `noise.stream(i)` (a plain {@link Rng} gives one key for all), so
   * the images never depend on the batch size or on how a run is split into calls.
   * Returns float32 [n, C, H, W] in [-1, 1].
   */
  sample(labels: Int32Array, noise: Rng | ImageNoise, options?: SampleOptions): Float32Array;
  /** Image shape [C, H, W] the model produces. */
  readonly imageShape: readonly [number, number, number];
  /** Number of classes for conditional models, 0 when unconditional. */
  readonly numClasses: number;
  /** Frees all tensors; calling it again does nothing. */
  dispose(): void;
  /** {@link TrainTask.dispose}, for `using task = createTask(...)`. */
  [Symbol.dispose](): void;
}

/** The sampling options of a task type (of each member, for a union of task types). */
export type SampleOptionsOf<T> = T extends TrainTask<string, unknown, infer S> ? S : never;
