/**
 * What the shared trainer needs from a model family. DDPM (`src/diffusion/task.ts`) and the
 * DCGAN (`src/gan/task.ts`) implement it; `train/trainer.ts` runs the loop, checkpoints, resumes,
 * logs and draws progress grids for any of them.
 *
 * @module
 */
import type { Rng } from "../core/rng.ts";
import type { ParamStore } from "../nn/params.ts";
import type { Batch } from "../data/batch.ts";
import type { Adam } from "./optimizer.ts";

/** A model family the trainer can train, checkpoint and sample. */
export interface TrainTask {
  /** "ddpm" or "gan": stored in checkpoints so a sampler refuses the wrong kind. */
  readonly kind: "ddpm" | "gan";
  /** JSON that recreates this task (preset, widths, schedule, classes, ...). */
  readonly config: Record<string, unknown>;
  /**
   * Parameter groups saved in checkpoints, e.g. `{ model, ema }` or
   * `{ generator, discriminator }`. The first group is the one exported for PyTorch users
   * (for DDPM: the EMA weights when EMA is on).
   */
  readonly stores: Record<string, ParamStore>;
  /** Optimizers by the group they update. */
  readonly optimizers: Record<string, Adam>;
  /**
   * One optimisation step. `progress` is the fraction of training done, in [0, 1] (for
   * schedules such as the GAN's annealed input noise). Returns the metrics to log.
   */
  step(batch: Batch, rng: Rng, progress: number): Record<string, number>;
  /**
   * Generates `labels.length` images (labels are ignored by unconditional models).
   * Returns float32 [n, C, H, W] in [-1, 1].
   */
  sample(labels: Int32Array, rng: Rng, options?: Record<string, unknown>): Float32Array;
  /** Image shape [C, H, W] the model produces. */
  readonly imageShape: readonly [number, number, number];
  /** Number of classes for conditional models, 0 when unconditional. */
  readonly numClasses: number;
  /** Frees all tensors. */
  dispose(): void;
}
