/**
 * DDPM as a {@link TrainTask} for the shared trainer: one training step of L_simple or the VLB
 * (with gradient clipping, AdamW and an EMA of the weights) and sampling with DDPM or DDIM,
 * class-conditional and with classifier-free guidance.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { assertFinite } from "../core/finite.ts";
import type { ImageNoise, Rng } from "../core/rng.ts";
import { ParamStore } from "../nn/params.ts";
import { Adam, clipGradNorm } from "../task/optimizer.ts";
import { type Batch, shardSlice } from "../data/batch.ts";
import type { TrainTask } from "../task/task.ts";
import { accumulatedValueAndGrad } from "../task/microbatch.ts";
import type { BatchFit } from "../backend/memory.ts";
import {
  createDenoiser,
  type Denoiser,
  denoiserConfig,
  type DenoiserOptions,
  denoiserOverStore,
  type DenoiserPreset,
} from "../models/denoiser.ts";
import { type BitsPerDim, bitsPerDim, simpleLoss, vlbLoss } from "./loss.ts";
import { DiffusionProcess, type VarianceType } from "./process.ts";
import { sampleImages, type SamplerOptions } from "./sampler.ts";
import { makeSchedule, type ScheduleKind } from "./schedule.ts";

/** Everything that defines a DDPM training run (stored in checkpoints). */
export interface DdpmConfig {
  /** Denoiser preset, e.g. "unet-2xud". */
  preset: DenoiserPreset;
  /** Base width override for small experiments; omit for the preset's widths. */
  baseWidth?: number;
  /** Beta schedule. */
  schedule: ScheduleKind;
  /** T, e.g. 1000. */
  timesteps: number;
  /** "simple" (Algorithm 1) or "vlb" (eq. 5 terms, fixed variance). */
  loss: "simple" | "vlb";
  /** Classes for conditioning; 0 = unconditional. */
  numClasses: number;
  /** Probability of replacing a label by the null class during training (classifier-free guidance). */
  cfgDrop: number;
  /** AdamW learning rate (3e-4 in the study). */
  lr: number;
  /** AdamW decoupled weight decay. */
  weightDecay: number;
  /** EMA decay of the weights (e.g. 0.995); 0 turns EMA off. */
  ema: number;
  /** Optimizer steps before the EMA starts averaging (until then it copies the weights). */
  emaStart: number;
  /** Max global gradient norm; 0 = no clipping. */
  gradClip: number;
  /** Reverse-process variance for sampling and the VLB. */
  varianceType: VarianceType;
  /** Image height = width. */
  imageSize: number;
  /** Image channels. */
  channels: number;
}

/** Defaults of the study's main configuration (unet-2xud, cosine, T = 1000, CIFAR-10 32x32). */
export const DEFAULT_DDPM_CONFIG: Readonly<DdpmConfig> = {
  preset: "unet-2xud",
  schedule: "cosine",
  timesteps: 1000,
  loss: "simple",
  numClasses: 0,
  cfgDrop: 0.1,
  lr: 3e-4,
  weightDecay: 0,
  ema: 0.995,
  emaStart: 2000,
  gradClip: 1,
  varianceType: "beta",
  imageSize: 32,
  channels: 3,
};

/** Checks a config, throwing a message that names the bad field and what it must be. */
export function validateDdpmConfig(c: DdpmConfig): void {
  const fail = (msg: string) => {
    throw new RangeError(`DDPM config: ${msg}`);
  };
  if (c.loss !== "simple" && c.loss !== "vlb") {
    fail(`loss must be "simple" or "vlb", got ${c.loss}`);
  }
  if (c.varianceType !== "beta" && c.varianceType !== "posterior") {
    fail(`varianceType must be "beta" or "posterior", got ${c.varianceType}`);
  }
  if (!(c.cfgDrop >= 0 && c.cfgDrop < 1)) fail(`cfgDrop must be in [0, 1), got ${c.cfgDrop}`);
  if (!(c.lr > 0)) fail(`lr must be > 0, got ${c.lr}`);
  if (!(c.weightDecay >= 0)) fail(`weightDecay must be >= 0, got ${c.weightDecay}`);
  if (!(c.ema >= 0 && c.ema < 1)) fail(`ema must be in [0, 1), got ${c.ema}`);
  if (!(c.emaStart >= 0)) fail(`emaStart must be >= 0, got ${c.emaStart}`);
  if (!(c.gradClip >= 0)) fail(`gradClip must be >= 0, got ${c.gradClip}`);
  if (c.schedule !== "linear" && c.schedule !== "cosine") {
    fail(`schedule must be "linear" or "cosine", got ${c.schedule}`);
  }
  if (!Number.isInteger(c.timesteps) || c.timesteps < 2) {
    fail(`timesteps must be an integer >= 2, got ${c.timesteps}`);
  }
  // Throws for an unknown preset, a negative class count or an image size the model cannot halve.
  denoiserConfig({
    preset: c.preset,
    numClasses: c.numClasses,
    imageSize: c.imageSize,
    channels: c.channels,
    baseWidth: c.baseWidth,
  });
}

/**
 * The defaults with `overrides` applied, validated (what the CLI and checkpoint loader call).
 *
 * @example
 * ```ts
 * import { resolveDdpmConfig } from "./task.ts";
 * const config = resolveDdpmConfig({ preset: "unet-2xud-half", numClasses: 2 });
 * console.log(config.schedule, config.lr); // cosine 0.0003
 * ```
 */
export function resolveDdpmConfig(overrides: Partial<DdpmConfig> = {}): DdpmConfig {
  const config = { ...DEFAULT_DDPM_CONFIG, ...overrides };
  validateDdpmConfig(config);
  return config;
}

/** What {@link DdpmTask.sample} accepts: the sampler's options the user may choose. */
export type DdpmSampleOptions = Omit<SamplerOptions, "nullClass">;

/** The DDPM {@link TrainTask} plus the evaluation only a diffusion model has. */
export interface DdpmTask extends TrainTask<"ddpm", DdpmConfig, DdpmSampleOptions> {
  /**
   * The variational bound in bits/dim (Ho et al. 2020 Table 2) of the sampling weights (EMA when
   * on) over a data split; `timestepStride` > 1 evaluates a subset of the T terms.
   */
  bitsPerDim(batches: Iterable<Batch>, rng: Rng, options?: { timestepStride?: number }): BitsPerDim;
}

/**
 * Creates the DDPM task: model (and EMA copy) initialised from `rng`, AdamW, the schedule on
 * the backend.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { createDdpmTask, resolveDdpmConfig } from "./task.ts";
 * using backend = await createBackend("tfjs-cpu");
 * const config = resolveDdpmConfig({ preset: "convnet", baseWidth: 8, imageSize: 8, timesteps: 50 });
 * using task = createDdpmTask(backend, config, new Rng(0));
 * const batch = { images: new Float32Array(4 * 3 * 8 * 8), labels: new Int32Array(4), shape: [4, 3, 8, 8] } as const;
 * const { loss } = task.step(batch, new Rng(1), 0); // one AdamW step on L_simple
 * const images = task.sample(new Int32Array(2), new Rng(2), { sampler: "ddim", steps: 5 });
 * console.log(Number.isFinite(loss), images.length); // true 384
 * ```
 */
export function createDdpmTask(backend: Backend, config: DdpmConfig, rng: Rng): DdpmTask {
  validateDdpmConfig(config);
  const denoiserOptions: DenoiserOptions = {
    preset: config.preset,
    numClasses: config.numClasses,
    imageSize: config.imageSize,
    channels: config.channels,
    timesteps: config.timesteps,
    baseWidth: config.baseWidth,
  };
  const process = new DiffusionProcess(
    backend,
    makeSchedule({ kind: config.schedule, timesteps: config.timesteps }),
  );
  const model = createDenoiser(backend, rng, denoiserOptions);
  let ema: Denoiser | undefined;
  if (config.ema > 0) {
    const emaStore = new ParamStore(backend);
    for (const [name, host] of model.store.toHost()) {
      emaStore.add(name, host.shape, host.data, false);
    }
    ema = denoiserOverStore(backend, denoiserOptions, emaStore);
  }
  const optimizer = new Adam(model.store, {
    lr: config.lr,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: config.weightDecay,
  });
  const params = model.store.trainable();
  const emaNames = ema?.store.names() ?? [];
  const imageShape = [config.channels, config.imageSize, config.imageSize] as const;
  const perImage = imageShape[0] * imageShape[1] * imageShape[2];

  // Micro-batch sizes measured per batch size (backends with a memory limit only).
  const fits = new Map<number, BatchFit>();

  function step(batch: Batch, rng: Rng): Record<string, number> {
    const [n, c, h, w] = batch.shape;
    if (c !== imageShape[0] || h !== imageShape[1] || w !== imageShape[2]) {
      throw new RangeError(
        `batch images are [${c}, ${h}, ${w}] but the model was built for [${imageShape}]`,
      );
    }
    // Algorithm 1: an independent timestep and noise for every sample.
    const t = shardSlice(batch, 1, (k) => rng.intArray(k, 0, config.timesteps));
    const noise = shardSlice(batch, perImage, (k) => rng.normal(k));
    const labels = config.numClasses > 0 ? dropLabels(batch, config, rng) : undefined;
    const metrics = backend.scope(() => {
      const forward = model.forward.bind(model);
      // The loss of samples [start, start + size) of the batch: one micro-batch, or all of it.
      const lossOf = (start: number, size: number) => {
        const shape = [size, c, h, w];
        const x0 = backend.tensor(
          batch.images.subarray(start * perImage, (start + size) * perImage),
          shape,
        );
        const tt = backend.tensor(t.subarray(start, start + size), [size], "int32");
        const eps = backend.tensor(
          noise.subarray(start * perImage, (start + size) * perImage),
          shape,
        );
        const y = labels
          ? backend.tensor(labels.subarray(start, start + size), [size], "int32")
          : undefined;
        return () =>
          config.loss === "simple"
            ? simpleLoss(backend, process, forward, x0, tt, eps, y)
            : vlbLoss(backend, process, forward, x0, tt, eps, y, {
              varianceType: config.varianceType,
            });
      };
      // In one pass the gradients come back averaged over ranks (overlapped with backward where
      // the backend can); a sum of micro-batches is averaged once, after.
      const { value, grads, whole } = accumulatedValueAndGrad(
        backend,
        n,
        (start, size) => backend.valueAndGrad(lossOf(start, size), params),
        fits,
        () => optimizer.valueAndGrad(lossOf(0, n)),
      );
      if (!whole) optimizer.averageGradients(grads);
      const clipped = clipGradNorm(
        backend,
        grads,
        config.gradClip > 0 ? config.gradClip : Infinity,
      );
      // A non-finite loss or gradient would make every weight NaN: the update is left out and
      // the trainer, seeing the metric, stops or skips the batch.
      if (Number.isFinite(value) && Number.isFinite(clipped.norm)) optimizer.step(clipped.grads);
      return { loss: value, gradNorm: clipped.norm };
    });
    if (ema && Number.isFinite(metrics.loss) && Number.isFinite(metrics.gradNorm)) {
      // Until emaStart the EMA tracks the weights exactly (decay 0 copies).
      const decay = optimizer.state.step <= config.emaStart ? 0 : config.ema;
      backend.emaUpdate(emaNames.map((name) => ema!.store.get(name)), params, decay);
    }
    return metrics;
  }

  function sample(
    labels: Int32Array,
    noise: Rng | ImageNoise,
    options: DdpmSampleOptions = {},
  ): Float32Array {
    const sampler = ema ?? model;
    // Checked again at run time: options also come from JSON (study plans) and JavaScript.
    const samplerOptions = parseDdpmSampleOptions(options as Record<string, unknown>);
    if (config.numClasses > 0) {
      for (const y of labels) {
        if (!(y >= 0 && y < config.numClasses)) {
          throw new RangeError(`label ${y} is outside 0..${config.numClasses - 1}`);
        }
      }
    }
    const images = sampleImages(
      backend,
      process,
      (x, t, y) => sampler.forward(x, t, y),
      imageShape,
      config.numClasses > 0 ? { labels } : { count: labels.length },
      noise,
      {
        varianceType: config.varianceType,
        nullClass: config.numClasses,
        batchSize: sampleBatchSize(config, samplerOptions.guidance ?? 1),
        ...samplerOptions,
      },
    );
    assertFinite(images, "sampled images");
    return images;
  }

  const stores: Record<string, ParamStore> = ema
    ? { ema: ema.store, model: model.store }
    : { model: model.store };
  // The weights one samples with are the ones exported; the EMA is a copy, not a model.
  const exportStore = ema ? "ema" : "model";
  function evaluateBitsPerDim(
    batches: Iterable<Batch>,
    rng: Rng,
    options: { timestepStride?: number } = {},
  ): BitsPerDim {
    const weights = ema ?? model;
    const labelled = function* () {
      for (const batch of batches) {
        // Conditional models are scored given the true label; the trainer's labels are kept.
        yield config.numClasses > 0 ? batch : { ...batch, labels: new Int32Array(batch.shape[0]) };
      }
    };
    return bitsPerDim(
      backend,
      process,
      (x, t, y) => weights.forward(x, t, config.numClasses > 0 ? y : undefined),
      labelled(),
      rng,
      { varianceType: config.varianceType, timestepStride: options.timestepStride },
    );
  }

  // Each part's dispose is idempotent, so the task's is too.
  const dispose = () => {
    optimizer.dispose();
    ema?.dispose();
    model.dispose();
    process.dispose();
  };
  return {
    kind: "ddpm",
    bitsPerDim: evaluateBitsPerDim,
    config: { ...config },
    stores,
    exportStore,
    modelStores: ["model"],
    optimizers: { model: optimizer },
    step,
    sample,
    imageShape,
    numClasses: config.numClasses,
    dispose,
    [Symbol.dispose]: dispose,
  };
}

/** Device memory the default sampling batch may use for activations (conservative for CPUs). */
export const SAMPLE_MEMORY_BUDGET_BYTES = 2 ** 30;

/**
 * A sampling batch size that keeps the forward pass's largest tensors within `budgetBytes`:
 * about 24 full-resolution feature maps of the base width per image and, for the U-Nets, the
 * heads x (HW)^2 attention matrix of the last, full-resolution self-attention. Guidance runs
 * two passes per image, so it halves the batch. Between 1 and 256.
 *
 * @example
 * ```ts
 * import { DEFAULT_DDPM_CONFIG, sampleBatchSize } from "./task.ts";
 * console.log(sampleBatchSize(DEFAULT_DDPM_CONFIG, 1)); // 46 for unet-2xud at 32x32
 * ```
 */
export function sampleBatchSize(
  config: DdpmConfig,
  guidance: number,
  budgetBytes = SAMPLE_MEMORY_BUDGET_BYTES,
): number {
  const arch = denoiserConfig({
    preset: config.preset,
    numClasses: config.numClasses,
    imageSize: config.imageSize,
    channels: config.channels,
    baseWidth: config.baseWidth,
  });
  const pixels = config.imageSize * config.imageSize;
  const base = arch.family === "unet" ? arch.unet.widths[0] : arch.convnet.width;
  let bytesPerImage = 24 * base * pixels * 4;
  if (arch.family === "unet") bytesPerImage += arch.unet.heads * pixels * pixels * 4;
  if (guidance !== 1) bytesPerImage *= 2;
  return Math.max(1, Math.min(256, Math.floor(budgetBytes / bytesPerImage)));
}

/** Labels with each replaced by the null class `numClasses` with probability cfgDrop. */
function dropLabels(batch: Batch, config: DdpmConfig, rng: Rng): Int32Array {
  const out = Int32Array.from(batch.labels);
  for (const label of out) {
    if (!(label >= 0 && label < config.numClasses)) {
      throw new RangeError(`batch label ${label} is outside 0..${config.numClasses - 1}`);
    }
  }
  if (config.cfgDrop <= 0) return out;
  // One draw per image of the global batch, so data-parallel ranks drop what one process would.
  const u = shardSlice(batch, 1, (k) => Float64Array.from({ length: k }, () => rng.uniform()));
  for (let i = 0; i < out.length; i++) if (u[i] < config.cfgDrop) out[i] = config.numClasses;
  return out;
}

/**
 * DDPM sampling options from untyped input (JSON, JavaScript callers), checked: unknown keys
 * and values of the wrong type or range are errors that name the option.
 *
 * @example
 * ```ts
 * import { parseDdpmSampleOptions } from "./task.ts";
 * console.log(parseDdpmSampleOptions({ sampler: "ddim", steps: 50 })); // { sampler: "ddim", steps: 50 }
 * ```
 */
export function parseDdpmSampleOptions(options: Record<string, unknown>): DdpmSampleOptions {
  const known = ["sampler", "steps", "eta", "guidance", "varianceType", "clipX0", "batchSize"];
  const unknown = Object.keys(options).filter((k) => !known.includes(k));
  if (unknown.length) {
    throw new RangeError(
      `unknown sampling option(s) ${unknown.join(", ")}: use ${known.join(", ")}`,
    );
  }
  const out: DdpmSampleOptions = {};
  const number = (key: string) => {
    const v = options[key];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new RangeError(`sampling option ${key} must be a number, got ${v}`);
    }
    return v;
  };
  if (options.sampler !== undefined) {
    if (options.sampler !== "ddpm" && options.sampler !== "ddim") {
      throw new RangeError(`sampler must be "ddpm" or "ddim", got ${options.sampler}`);
    }
    out.sampler = options.sampler;
  }
  if (options.varianceType !== undefined) {
    if (options.varianceType !== "beta" && options.varianceType !== "posterior") {
      throw new RangeError(
        `varianceType must be "beta" or "posterior", got ${options.varianceType}`,
      );
    }
    out.varianceType = options.varianceType;
  }
  out.steps = number("steps");
  out.eta = number("eta");
  out.guidance = number("guidance");
  out.batchSize = number("batchSize");
  if (options.clipX0 !== undefined) out.clipX0 = Boolean(options.clipX0);
  for (const key of Object.keys(out) as (keyof DdpmSampleOptions)[]) {
    if (out[key] === undefined) delete out[key];
  }
  return out;
}
