/**
 * The DCGAN as a {@link TrainTask} for the shared trainer: the PyTorch DCGAN tutorial's
 * alternating updates (one D step on a real and a fake batch, then one non-saturating G step
 * against the updated D), Adam(2e-4, betas 0.5/0.999), optional label smoothing, annealed
 * discriminator input noise and class conditioning.
 *
 * Sampling runs G in eval mode (BatchNorm running statistics). The tutorial samples its
 * fixed-noise grid in train mode (batch statistics); eval mode is chosen here because then an
 * image depends only on its own z and label, not on the other images in the batch — so the
 * progress grid, `sample --n 64` and a 10k-image FID folder drawn in chunks all agree for the
 * same noise, and a seeded sample is reproducible whatever the batch size. The running
 * statistics are updated once per training step, from the generated batch, as in PyTorch.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { assertFinite } from "../core/finite.ts";
import type { ImageNoise, Rng } from "../core/rng.ts";
import {
  DCGAN_IMAGE_SIZE,
  type DcganModelConfig,
  type DcganPreset,
  DEFAULT_DCGAN,
  defineDiscriminator,
  defineGenerator,
  defineGeneratorStatsSink,
  discriminatorForward,
  generatorForward,
  validateDcganConfig,
} from "../models/dcgan.ts";
import { ParamStore } from "../nn/params.ts";
import { Adam } from "../task/optimizer.ts";
import { type Batch, shardSlice } from "../data/batch.ts";
import { previewLabels } from "../task/preview.ts";
import type { TrainTask } from "../task/task.ts";
import { ganBatchChecker } from "./memory.ts";
import {
  addInputNoise,
  discriminatorLoss,
  generatorLoss,
  inputNoiseSigma,
  meanProbability,
} from "./loss.ts";
import { checkGanLabels, sampleGenerator } from "./sample.ts";

/** Everything that defines a GAN run; stored in checkpoints as the task's config. */
export interface GanConfig {
  /** "dcgan" or "dcgan-wide". */
  preset: DcganPreset;
  /** Noise length (default 100). */
  nz: number;
  /** Generator width unit (default 64). */
  ngf: number;
  /** Discriminator width unit (default 64). */
  ndf: number;
  /** 0 = unconditional (default). */
  numClasses: number;
  /** Label-embedding channels added to each network's input; default numClasses. */
  embedDim?: number;
  /** Train D towards 0.9 (real) / 0.1 (fake) instead of 1 / 0 (default false). */
  smooth: boolean;
  /** Initial std of Gaussian noise on D's inputs, annealed linearly to 0 (default 0 = off). */
  dNoise: number;
  /** Adam learning rate for both networks (default 2e-4). */
  lr: number;
  /** Adam beta1 (default 0.5, the DCGAN paper's choice). */
  beta1: number;
  /** Adam beta2 (default 0.999). */
  beta2: number;
  /** Must be 32: the architecture is built for 32x32. */
  imageSize: number;
  /** Image channels (default 3). */
  channels: number;
}

/** The tutorial's settings (unconditional, no smoothing, no input noise). */
export const DEFAULT_GAN_CONFIG: Readonly<GanConfig> = {
  // The network's shape is the model's own default, written once in models/dcgan.ts.
  preset: DEFAULT_DCGAN.preset,
  nz: DEFAULT_DCGAN.nz,
  ngf: DEFAULT_DCGAN.ngf,
  ndf: DEFAULT_DCGAN.ndf,
  numClasses: 0,
  smooth: false,
  dNoise: 0,
  lr: 2e-4,
  beta1: 0.5,
  beta2: 0.999,
  imageSize: DCGAN_IMAGE_SIZE,
  channels: DEFAULT_DCGAN.channels,
};

/** What {@link GanTask.sample} accepts. */
export interface GanSampleOptions {
  /** Images per generator pass (default 256); the images do not depend on it. */
  batchSize?: number;
}

/** A {@link TrainTask} for a DCGAN, plus the labels for its progress grid. */
export interface GanTask extends TrainTask<"gan", GanConfig, GanSampleOptions> {
  /** The generator/discriminator shape this task trains. */
  readonly model: DcganModelConfig;
  /**
   * Labels for an `n`-image progress grid with `columns` images per row: zeros when
   * unconditional; otherwise one contiguous block of rows per class, in class order.
   */
  previewLabels(n: number, columns?: number): Int32Array;
}

/**
 * Fills in defaults and checks a GAN config; throws saying which field is wrong.
 *
 * @example
 * ```ts
 * import { resolveGanConfig } from "./task.ts";
 * const config = resolveGanConfig({ numClasses: 2, smooth: true });
 * console.log(config.embedDim, config.lr); // 2 0.0002
 * ```
 */
export function resolveGanConfig(partial: Partial<GanConfig> = {}): GanConfig {
  const config: GanConfig = { ...DEFAULT_GAN_CONFIG, ...partial };
  config.embedDim = config.numClasses > 0 ? (partial.embedDim ?? config.numClasses) : 0;
  if (config.imageSize !== DCGAN_IMAGE_SIZE) {
    throw new Error(
      `the DCGAN is built for ${DCGAN_IMAGE_SIZE}x${DCGAN_IMAGE_SIZE} images, got imageSize ` +
        `${config.imageSize}; resize the data to 32x32`,
    );
  }
  if (!(config.dNoise >= 0) || !Number.isFinite(config.dNoise)) {
    throw new Error(`dNoise must be a finite number >= 0, got ${config.dNoise}`);
  }
  for (const key of ["lr", "beta1", "beta2"] as const) {
    const v = config[key];
    if (!(v > 0) || !Number.isFinite(v) || (key !== "lr" && v >= 1)) {
      throw new Error(`${key} must be in (0, ${key === "lr" ? "inf" : "1"}), got ${v}`);
    }
  }
  validateDcganConfig(modelConfigOf(config));
  return config;
}

function modelConfigOf(config: GanConfig): DcganModelConfig {
  return {
    preset: config.preset,
    nz: config.nz,
    ngf: config.ngf,
    ndf: config.ndf,
    channels: config.channels,
    numClasses: config.numClasses,
    embedDim: config.embedDim ?? 0,
  };
}

/**
 * Builds a DCGAN pair, its two Adam optimizers and the training step. Weights are drawn from
 * `rng` (generator first, then discriminator).
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { createGanTask, resolveGanConfig } from "./task.ts";
 * using backend = await createBackend("tfjs-cpu");
 * using task = createGanTask(backend, resolveGanConfig({ nz: 8, ngf: 4, ndf: 4 }), new Rng(0));
 * const batch = { images: new Float32Array(2 * 3 * 32 * 32), labels: new Int32Array(2), shape: [2, 3, 32, 32] } as const;
 * const metrics = task.step(batch, new Rng(1), 0); // { lossD, lossG, dReal, dFake, dNoise }
 * const images = task.sample(new Int32Array(2), new Rng(2)); // [2, 3, 32, 32] in [-1, 1]
 * console.log(Object.keys(metrics), images.length); // ["lossD", "lossG", "dReal", "dFake", "dNoise"] 6144
 * ```
 */
export function createGanTask(
  backend: Backend,
  config: GanConfig,
  rng: Rng,
): GanTask {
  const resolved = resolveGanConfig(config);
  const model = modelConfigOf(resolved);
  const b = backend;
  const conditional = model.numClasses > 0;

  const generator = new ParamStore(b);
  const discriminator = new ParamStore(b);
  defineGenerator(generator, rng, model);
  defineDiscriminator(discriminator, rng, model);
  // Receives the BatchNorm updates of G's second pass over the same batch in each step.
  const generatorStatsSink = new ParamStore(b);
  defineGeneratorStatsSink(generatorStatsSink, model);

  // Refuses, before the first step at a batch size, a batch that would not fit the backend's
  // memory (tfjs-wasm): BatchNorm makes micro-batches change the math (gan/memory.ts).
  const checkFits = ganBatchChecker(b, {
    generator,
    discriminator,
    model,
    smooth: resolved.smooth,
  });

  const adam = { lr: resolved.lr, beta1: resolved.beta1, beta2: resolved.beta2, eps: 1e-8 };
  const optimizers = {
    generator: new Adam(generator, { ...adam, weightDecay: 0 }),
    discriminator: new Adam(discriminator, { ...adam, weightDecay: 0 }),
  };
  const imageShape = [model.channels, DCGAN_IMAGE_SIZE, DCGAN_IMAGE_SIZE] as const;

  const labelTensor = (labels: Int32Array): Tensor | undefined => {
    if (!conditional) return undefined;
    checkGanLabels(labels, model.numClasses);
    return b.tensor(labels, [labels.length], "int32");
  };

  const checkBatch = (batch: Batch): void => {
    const [n, c, h, w] = batch.shape;
    if (c !== imageShape[0] || h !== imageShape[1] || w !== imageShape[2]) {
      throw new Error(
        `GAN batch must be [B, ${imageShape.join(", ")}], got [${batch.shape.join(", ")}]`,
      );
    }
    if (batch.images.length !== n * c * h * w || batch.labels.length !== n) {
      throw new Error(
        `GAN batch holds ${batch.images.length} values and ${batch.labels.length} labels ` +
          `for shape [${batch.shape.join(", ")}]`,
      );
    }
  };

  function step(batch: Batch, stepRng: Rng, progress: number): Record<string, number> {
    checkBatch(batch);
    const batchSize = batch.shape[0];
    checkFits(batchSize);
    const sigma = inputNoiseSigma(resolved.dNoise, progress);
    const zData = shardSlice(batch, model.nz, (k) => stepRng.normal(k));
    const noise = (x: Tensor) => addInputNoise(b, x, sigma, stepRng, batch.shard);
    return b.scope(() => {
      const real = b.tensor(batch.images, batch.shape); // [B, C, 32, 32]
      // Fakes carry the real batch's labels, so they follow the data's class mix.
      const labels = labelTensor(batch.labels); // [B] or undefined
      const z = b.tensor(zData, [batchSize, model.nz, 1, 1]);
      const train = { training: true };

      // D step: the fakes are constants here (PyTorch: fake.detach()).
      const fake = b.noGrad(() => generatorForward(b, generator, model, z, labels, train));
      const realInput = noise(real);
      const fakeInput = noise(fake);
      let dReal = 0;
      let dFake = 0;
      const dResult = optimizers.discriminator.valueAndGrad(() => {
        // Real and fake go through D separately, so BatchNorm sees each batch on its own.
        const realLogits = discriminatorForward(b, discriminator, model, realInput, labels, train);
        const fakeLogits = discriminatorForward(b, discriminator, model, fakeInput, labels, train);
        dReal = meanProbability(b, realLogits);
        dFake = meanProbability(b, fakeLogits);
        return discriminatorLoss(b, realLogits, fakeLogits, resolved.smooth);
      });
      // A non-finite loss would make the weights NaN: no update, and the trainer, seeing the
      // metric, stops or skips the batch.
      if (!Number.isFinite(dResult.value)) {
        return { lossD: dResult.value, lossG: NaN, dReal, dFake, dNoise: sigma };
      }
      optimizers.discriminator.step(dResult.grads);

      // G step against the updated D. G recomputes the same batch to record gradients; its
      // running statistics were already updated by the pass above, so this pass's go to a sink.
      const gResult = optimizers.generator.valueAndGrad(() => {
        const images = generatorForward(b, generator, model, z, labels, {
          training: true,
          statsSink: generatorStatsSink,
        });
        const input = noise(images);
        return generatorLoss(
          b,
          discriminatorForward(b, discriminator, model, input, labels, train),
        );
      });
      // D's update above stays: a non-finite G loss skips only G's half of the step.
      if (Number.isFinite(gResult.value)) optimizers.generator.step(gResult.grads);

      // dNoise: the annealed input-noise sigma of this step, so the log shows the schedule.
      return { lossD: dResult.value, lossG: gResult.value, dReal, dFake, dNoise: sigma };
    });
  }

  function sample(labels: Int32Array, noise: Rng | ImageNoise, options: GanSampleOptions = {}) {
    const out = sampleGenerator(b, generator, model, labels, noise, options);
    assertFinite(out, "sampled images");
    return out;
  }

  // Each part's dispose is idempotent, so the task's is too.
  const dispose = () => {
    optimizers.generator.dispose();
    optimizers.discriminator.dispose();
    generator.dispose();
    discriminator.dispose();
    generatorStatsSink.dispose();
    checkFits.dispose();
  };
  return {
    kind: "gan",
    config: { ...resolved },
    model,
    stores: { generator, discriminator },
    exportStore: "generator",
    modelStores: ["generator", "discriminator"],
    optimizers,
    imageShape,
    numClasses: model.numClasses,
    step,
    sample,
    previewLabels: (n: number, columns = 8) => previewLabels(n, model.numClasses, columns),
    dispose,
    [Symbol.dispose]: dispose,
  };
}
