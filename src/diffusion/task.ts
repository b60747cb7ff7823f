/**
 * DDPM as a {@link TrainTask} for the shared trainer: one training step of L_simple or the VLB
 * (with gradient clipping, AdamW and an EMA of the weights) and sampling with DDPM or DDIM,
 * class-conditional and with classifier-free guidance.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import type { Rng } from "../backend/rng.ts";
import { ParamStore } from "../nn/params.ts";
import { Adam, clipGradNorm } from "../train/optimizer.ts";
import type { Batch, TrainTask } from "../train/task.ts";
import {
  createDenoiser,
  type Denoiser,
  type DenoiserOptions,
  type DenoiserPreset,
  denoiserOverStore,
} from "../models/denoiser.ts";
import { simpleLoss, vlbLoss } from "./loss.ts";
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
  if (c.loss !== "simple" && c.loss !== "vlb") fail(`loss must be "simple" or "vlb", got ${c.loss}`);
  if (c.varianceType !== "beta" && c.varianceType !== "posterior") {
    fail(`varianceType must be "beta" or "posterior", got ${c.varianceType}`);
  }
  if (!(c.cfgDrop >= 0 && c.cfgDrop < 1)) fail(`cfgDrop must be in [0, 1), got ${c.cfgDrop}`);
  if (!(c.lr > 0)) fail(`lr must be > 0, got ${c.lr}`);
  if (!(c.weightDecay >= 0)) fail(`weightDecay must be >= 0, got ${c.weightDecay}`);
  if (!(c.ema >= 0 && c.ema < 1)) fail(`ema must be in [0, 1), got ${c.ema}`);
  if (!(c.emaStart >= 0)) fail(`emaStart must be >= 0, got ${c.emaStart}`);
  if (!(c.gradClip >= 0)) fail(`gradClip must be >= 0, got ${c.gradClip}`);
}

/**
 * Creates the DDPM task: model (and EMA copy) initialised from `rng`, AdamW, the schedule on
 * the backend.
 *
 * @example
 * ```ts
 * // const task = createDdpmTask(backend, { ...DEFAULT_DDPM_CONFIG, preset: "convnet" }, new Rng(0));
 * // const { loss } = task.step(batch, rng, 0);
 * // const images = task.sample(new Int32Array(16), rng, { sampler: "ddim", steps: 50 });
 * ```
 */
export function createDdpmTask(backend: Backend, config: DdpmConfig, rng: Rng): TrainTask {
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
    for (const [name, host] of model.store.toHost()) emaStore.add(name, host.shape, host.data, false);
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

  function step(batch: Batch, rng: Rng): Record<string, number> {
    const [n, c, h, w] = batch.shape;
    if (c !== imageShape[0] || h !== imageShape[1] || w !== imageShape[2]) {
      throw new RangeError(
        `batch images are [${c}, ${h}, ${w}] but the model was built for [${imageShape}]`,
      );
    }
    // Algorithm 1: an independent timestep and noise for every sample.
    const t = rng.intArray(n, 0, config.timesteps);
    const noise = rng.normal(n * perImage);
    const labels = config.numClasses > 0 ? dropLabels(batch.labels, config, rng) : undefined;
    const metrics = backend.scope(() => {
      const x0 = backend.tensor(batch.images, batch.shape);
      const tt = backend.tensor(t, [n], "int32");
      const eps = backend.tensor(noise, batch.shape);
      const y = labels ? backend.tensor(labels, [n], "int32") : undefined;
      const forward = model.forward.bind(model);
      const lossFn = () =>
        config.loss === "simple"
          ? simpleLoss(backend, process, forward, x0, tt, eps, y)
          : vlbLoss(backend, process, forward, x0, tt, eps, y, { varianceType: config.varianceType });
      const { value, grads } = backend.valueAndGrad(lossFn, params);
      const clipped = clipGradNorm(backend, grads, config.gradClip > 0 ? config.gradClip : Infinity);
      optimizer.step(clipped.grads);
      return { loss: value, gradNorm: clipped.norm };
    });
    if (ema) {
      // Until emaStart the EMA tracks the weights exactly (decay 0 copies).
      const decay = optimizer.state.step <= config.emaStart ? 0 : config.ema;
      backend.emaUpdate(emaNames.map((name) => ema!.store.get(name)), params, decay);
    }
    return metrics;
  }

  function sample(labels: Int32Array, rng: Rng, options: Record<string, unknown> = {}): Float32Array {
    const sampler = (ema ?? model);
    const samplerOptions = parseSampleOptions(options);
    if (config.numClasses > 0) {
      for (const y of labels) {
        if (!(y >= 0 && y < config.numClasses)) {
          throw new RangeError(`label ${y} is outside 0..${config.numClasses - 1}`);
        }
      }
    }
    return sampleImages(
      backend,
      process,
      (x, t, y) => sampler.forward(x, t, y),
      imageShape,
      config.numClasses > 0 ? { labels } : { count: labels.length },
      rng,
      {
        varianceType: config.varianceType,
        nullClass: config.numClasses,
        ...samplerOptions,
      },
    );
  }

  const stores: Record<string, ParamStore> = ema
    ? { ema: ema.store, model: model.store }
    : { model: model.store };
  return {
    kind: "ddpm",
    config: { ...config } as unknown as Record<string, unknown>,
    stores,
    optimizers: { model: optimizer },
    step,
    sample,
    imageShape,
    numClasses: config.numClasses,
    dispose() {
      optimizer.dispose();
      ema?.dispose();
      model.dispose();
      process.dispose();
    },
  };
}

/** Labels with each replaced by the null class `numClasses` with probability cfgDrop. */
function dropLabels(labels: Int32Array, config: DdpmConfig, rng: Rng): Int32Array {
  const out = Int32Array.from(labels);
  for (let i = 0; i < out.length; i++) {
    if (!(out[i] >= 0 && out[i] < config.numClasses)) {
      throw new RangeError(`batch label ${out[i]} is outside 0..${config.numClasses - 1}`);
    }
    if (config.cfgDrop > 0 && rng.uniform() < config.cfgDrop) out[i] = config.numClasses;
  }
  return out;
}

/** Typed sampling options from the trainer's/CLI's untyped record; rejects unknown keys. */
function parseSampleOptions(options: Record<string, unknown>): SamplerOptions {
  const known = ["sampler", "steps", "eta", "guidance", "varianceType", "clipX0", "batchSize"];
  const unknown = Object.keys(options).filter((k) => !known.includes(k));
  if (unknown.length) {
    throw new RangeError(`unknown sampling option(s) ${unknown.join(", ")}: use ${known.join(", ")}`);
  }
  const out: SamplerOptions = {};
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
      throw new RangeError(`varianceType must be "beta" or "posterior", got ${options.varianceType}`);
    }
    out.varianceType = options.varianceType;
  }
  out.steps = number("steps");
  out.eta = number("eta");
  out.guidance = number("guidance");
  out.batchSize = number("batchSize");
  if (options.clipX0 !== undefined) out.clipX0 = Boolean(options.clipX0);
  for (const key of Object.keys(out) as (keyof SamplerOptions)[]) {
    if (out[key] === undefined) delete out[key];
  }
  return out;
}
