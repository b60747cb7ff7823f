/**
 * DCGAN generator and discriminator for 32x32 images (Radford et al. 2016, "Unsupervised
 * Representation Learning with Deep Convolutional GANs"), laid out like the PyTorch DCGAN
 * tutorial's `nn.Sequential` adapted from 64x64 to 32x32 (one block fewer on each side), so
 * parameter names are PyTorch's: `main.0.weight`, `main.1.weight`, ... and `label_emb.weight`
 * for class-conditional models.
 *
 * Generator `main` (dcgan preset; ngf = 64 gives widths 256, 128, 64):
 *   0 ConvTranspose2d(nz [+ k], ngf*4, 4, 1, 0)  1x1 -> 4x4
 *   1 BatchNorm2d  2 ReLU
 *   3 ConvTranspose2d(ngf*4, ngf*2, 4, 2, 1)     4x4 -> 8x8
 *   4 BatchNorm2d  5 ReLU
 *   6 ConvTranspose2d(ngf*2, ngf, 4, 2, 1)       8x8 -> 16x16
 *   7 BatchNorm2d  8 ReLU
 *   9 ConvTranspose2d(ngf, 3, 4, 2, 1)           16x16 -> 32x32
 *  10 Tanh
 * The dcgan-wide preset keeps ngf*4 channels out of the second block (main.3) instead of ngf*2;
 * the rest is unchanged (main.6 then narrows ngf*4 -> ngf).
 *
 * Discriminator `main` (logits out: the sigmoid lives in the BCE-with-logits loss):
 *   0 Conv2d(3 [+ k], ndf, 4, 2, 1)    32 -> 16    1 LeakyReLU(0.2)
 *   2 Conv2d(ndf, ndf*2, 4, 2, 1)      16 -> 8     3 BatchNorm2d  4 LeakyReLU(0.2)
 *   5 Conv2d(ndf*2, ndf*4, 4, 2, 1)    8 -> 4      6 BatchNorm2d  7 LeakyReLU(0.2)
 *   8 Conv2d(ndf*4, 1, 4, 1, 0)        4 -> 1
 * All convolutions have bias=False, as in the tutorial.
 *
 * Class conditioning (k = embedDim extra channels): each network owns an `nn.Embedding(numClasses,
 * k)` whose row for the label is tiled over the spatial size and concatenated to the input
 * channels — onto the 1x1 noise for G, onto the 32x32 image for D.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { Rng } from "../core/rng.ts";
import { normalInit } from "../nn/init.ts";
import {
  conv2d,
  convTranspose2d,
  defineBatchNorm,
  defineConv2d,
  defineConvTranspose2d,
  defineEmbedding,
  embedding,
} from "../nn/layers.ts";
import { ParamStore } from "../nn/params.ts";

/** Named architectures. */
export type DcganPreset = "dcgan" | "dcgan-wide";

/** The presets, for CLI help and validation. */
export const DCGAN_PRESETS: readonly DcganPreset[] = ["dcgan", "dcgan-wide"];

/** Shape of a DCGAN pair. */
export interface DcganModelConfig {
  /** "dcgan" or "dcgan-wide". */
  preset: DcganPreset;
  /** Length of the noise vector z (tutorial: 100; the study also used 128). */
  nz: number;
  /** Generator width unit (tutorial: 64). */
  ngf: number;
  /** Discriminator width unit (tutorial: 64). */
  ndf: number;
  /** Image channels (3 for RGB). */
  channels: number;
  /** 0 for an unconditional pair. */
  numClasses: number;
  /** Channels the label embedding adds to each network's input; 0 when unconditional. */
  embedDim: number;
}

/** The tutorial's pair: nz 100, ngf = ndf = 64, RGB, unconditional. */
export const DEFAULT_DCGAN: Readonly<DcganModelConfig> = {
  preset: "dcgan",
  nz: 100,
  ngf: 64,
  ndf: 64,
  channels: 3,
  numClasses: 0,
  embedDim: 0,
};

/** The only image size the architecture produces (4x4 seed, three stride-2 upsamplings). */
export const DCGAN_IMAGE_SIZE = 32;

/** Std of the tutorial's `weights_init`: conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02). */
const INIT_STD = 0.02;
const KERNEL = 4;
const LEAKY_SLOPE = 0.2;

/**
 * Output channels of the generator's four transposed convolutions (main.0, .3, .6, .9).
 *
 * @example
 * ```ts
 * import { generatorWidths } from "./dcgan.ts";
 * console.log(generatorWidths("dcgan", 64, 3)); // [256, 128, 64, 3]
 * console.log(generatorWidths("dcgan-wide", 64, 3)); // [256, 256, 64, 3]
 * ```
 */
export function generatorWidths(
  preset: DcganPreset,
  ngf: number,
  channels: number,
): [number, number, number, number] {
  const second = preset === "dcgan-wide" ? ngf * 4 : ngf * 2;
  return [ngf * 4, second, ngf, channels];
}

/**
 * Output channels of the discriminator's four convolutions (main.0, .2, .5, .8).
 *
 * @example
 * ```ts
 * import { discriminatorWidths } from "./dcgan.ts";
 * console.log(discriminatorWidths(64)); // [64, 128, 256, 1]
 * ```
 */
export function discriminatorWidths(ndf: number): [number, number, number, number] {
  return [ndf, ndf * 2, ndf * 4, 1];
}

/** Sequential indices of the layers with parameters, matching the PyTorch module. */
const G_CONVS = ["main.0", "main.3", "main.6", "main.9"] as const;
const G_NORMS = ["main.1", "main.4", "main.7"] as const;
const D_CONVS = ["main.0", "main.2", "main.5", "main.8"] as const;
const D_NORMS = [null, "main.3", "main.6"] as const;

/**
 * Throws a clear error when a config cannot describe a DCGAN pair.
 *
 * @example
 * ```ts
 * import { DEFAULT_DCGAN, validateDcganConfig } from "./dcgan.ts";
 * validateDcganConfig(DEFAULT_DCGAN); // ok
 * ```
 */
export function validateDcganConfig(config: DcganModelConfig): void {
  if (!DCGAN_PRESETS.includes(config.preset)) {
    throw new Error(
      `unknown DCGAN preset "${config.preset}"; choose one of ${DCGAN_PRESETS.join(", ")}`,
    );
  }
  for (const key of ["nz", "ngf", "ndf", "channels"] as const) {
    const v = config[key];
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`DCGAN ${key} must be a positive integer, got ${v}`);
    }
  }
  if (!Number.isInteger(config.numClasses) || config.numClasses < 0) {
    throw new Error(`DCGAN numClasses must be 0 (unconditional) or more, got ${config.numClasses}`);
  }
  if (config.numClasses > 0 && (!Number.isInteger(config.embedDim) || config.embedDim < 1)) {
    throw new Error(
      `a conditional DCGAN needs embedDim >= 1 (label channels), got ${config.embedDim}`,
    );
  }
}

/** Label channels a network's input gets: embedDim when conditional, else 0. */
function labelChannels(config: DcganModelConfig): number {
  return config.numClasses > 0 ? config.embedDim : 0;
}

/** Redraws a weight from N(mean, 0.02), as the tutorial's `weights_init` does after construction. */
function reinitNormal(store: ParamStore, rng: Rng, name: string, mean: number): void {
  if (store.isShapeOnly) return; // only shapes are recorded: no values to redraw
  const variable = store.get(name);
  const values = normalInit(rng, variable.shape, mean, INIT_STD);
  store.backend.scope(() =>
    store.backend.assign(variable, store.backend.tensor(values, variable.shape))
  );
}

/**
 * Creates the generator's parameters in `store` (PyTorch state_dict order), initialised as
 * the tutorial: transposed-conv weights N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0.
 *
 * @example
 * ```ts
 * import { Rng } from "../core/rng.ts";
 * import { ParamStore } from "../nn/params.ts";
 * import { DEFAULT_DCGAN, defineGenerator } from "./dcgan.ts";
 * const store = ParamStore.shapeOnly(); // names and shapes only; pass a backend for weights
 * defineGenerator(store, new Rng(0), DEFAULT_DCGAN);
 * console.log(store.shape("main.0.weight"), store.count()); // [100, 256, 4, 4] 1068928
 * ```
 */
export function defineGenerator(store: ParamStore, rng: Rng, config: DcganModelConfig): void {
  validateDcganConfig(config);
  const widths = generatorWidths(config.preset, config.ngf, config.channels);
  let cin = config.nz + labelChannels(config);
  G_CONVS.forEach((name, i) => {
    defineConvTranspose2d(store, rng, name, cin, widths[i], KERNEL, false);
    reinitNormal(store, rng, `${name}.weight`, 0);
    const norm = G_NORMS[i];
    if (norm) defineBatchNorm(store, norm, widths[i], normalInit(rng, [widths[i]], 1, INIT_STD));
    cin = widths[i];
  });
  if (config.numClasses > 0) {
    defineEmbedding(store, rng, "label_emb", config.numClasses, config.embedDim);
  }
}

/**
 * Creates the discriminator's parameters in `store`; init as {@link defineGenerator}.
 *
 * @example
 * ```ts
 * import { Rng } from "../core/rng.ts";
 * import { ParamStore } from "../nn/params.ts";
 * import { DEFAULT_DCGAN, defineDiscriminator } from "./dcgan.ts";
 * const store = ParamStore.shapeOnly(); // names and shapes only; pass a backend for weights
 * defineDiscriminator(store, new Rng(0), DEFAULT_DCGAN);
 * console.log(store.shape("main.0.weight"), store.count()); // [64, 3, 4, 4] 663296
 * ```
 */
export function defineDiscriminator(store: ParamStore, rng: Rng, config: DcganModelConfig): void {
  validateDcganConfig(config);
  const widths = discriminatorWidths(config.ndf);
  let cin = config.channels + labelChannels(config);
  D_CONVS.forEach((name, i) => {
    defineConv2d(store, rng, name, cin, widths[i], KERNEL, false);
    reinitNormal(store, rng, `${name}.weight`, 0);
    const norm = D_NORMS[i];
    if (norm) defineBatchNorm(store, norm, widths[i], normalInit(rng, [widths[i]], 1, INIT_STD));
    cin = widths[i];
  });
  if (config.numClasses > 0) {
    defineEmbedding(store, rng, "label_emb", config.numClasses, config.embedDim);
  }
}

/** How a forward pass treats BatchNorm. */
export interface DcganForwardMode {
  /** Batch statistics (and running-stat updates) when true; running statistics when false. */
  training: boolean;
  /**
   * A store holding the same `*.running_mean` / `*.running_var` names that receives the
   * running-statistic updates of this pass instead of the model's own (used when a training
   * step must run the same batch through G twice but, like PyTorch, update its statistics once).
   */
  statsSink?: ParamStore;
}

/** BatchNorm2d whose running statistics may be redirected to `mode.statsSink`. */
function batchNorm2d(
  b: Backend,
  p: ParamStore,
  name: string,
  x: Tensor,
  mode: DcganForwardMode,
): Tensor {
  const stats = mode.statsSink ?? p;
  return b.batchNorm(
    x,
    p.get(`${name}.weight`),
    p.get(`${name}.bias`),
    stats.get(`${name}.running_mean`),
    stats.get(`${name}.running_var`),
    { training: mode.training, momentum: 0.1, eps: 1e-5 },
  );
}

/** Checks that labels are given exactly when the model is conditional. */
function checkLabels(config: DcganModelConfig, batch: number, labels?: Tensor): void {
  if (config.numClasses > 0) {
    if (!labels) throw new Error("a conditional DCGAN needs labels (int32 [B])");
    if (labels.shape.length !== 1 || labels.shape[0] !== batch || labels.dtype !== "int32") {
      throw new Error(
        `labels must be int32 [${batch}], got ${labels.dtype} [${labels.shape.join(",")}]`,
      );
    }
  }
}

/** The label embedding tiled to [B, k, size, size]. */
function labelPlanes(
  b: Backend,
  p: ParamStore,
  labels: Tensor,
  embedDim: number,
  size: number,
): Tensor {
  const rows = embedding(b, p, "label_emb", labels); // [B, k]
  const planes = b.reshape(rows, [labels.shape[0], embedDim, 1, 1]); // [B, k, 1, 1]
  if (size === 1) return planes;
  return b.mul(planes, b.full([1, 1, size, size], 1)); // [B, k, size, size] by broadcasting
}

/**
 * Runs the generator: z [B, nz, 1, 1] (and int32 labels [B] when conditional) -> images
 * [B, channels, 32, 32] in (-1, 1).
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { ParamStore } from "../nn/params.ts";
 * import { DEFAULT_DCGAN, defineGenerator, generatorForward } from "./dcgan.ts";
 * using b = await createBackend("tfjs-cpu");
 * const config = { ...DEFAULT_DCGAN, nz: 8, ngf: 4 }; // a small generator
 * using store = new ParamStore(b);
 * defineGenerator(store, new Rng(0), config);
 * const z = b.tensor(new Rng(1).normal(2 * 8), [2, 8, 1, 1]);
 * const images = generatorForward(b, store, config, z, undefined, { training: false });
 * console.log(images.shape); // [2, 3, 32, 32]
 * ```
 */
export function generatorForward(
  b: Backend,
  p: ParamStore,
  config: DcganModelConfig,
  z: Tensor,
  labels: Tensor | undefined,
  mode: DcganForwardMode,
): Tensor {
  const batch = z.shape[0];
  if (z.shape.length !== 4 || z.shape[1] !== config.nz || z.shape[2] !== 1 || z.shape[3] !== 1) {
    throw new Error(`generator noise must be [B, ${config.nz}, 1, 1], got [${z.shape.join(",")}]`);
  }
  checkLabels(config, batch, labels);
  let h = config.numClasses > 0
    ? b.cat([z, labelPlanes(b, p, labels!, config.embedDim, 1)], 1) // [B, nz + k, 1, 1]
    : z;
  h = convTranspose2d(b, p, G_CONVS[0], h, { stride: 1, padding: 0 }); // [B, ngf*4, 4, 4]
  for (let i = 1; i < G_CONVS.length; i++) {
    h = b.relu(batchNorm2d(b, p, G_NORMS[i - 1], h, mode));
    h = convTranspose2d(b, p, G_CONVS[i], h, { stride: 2, padding: 1 }); // spatial x2
  }
  return b.tanh(h); // [B, channels, 32, 32]
}

/**
 * Runs the discriminator: images [B, channels, 32, 32] (and int32 labels [B] when
 * conditional) -> one real/fake logit per image, [B].
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { ParamStore } from "../nn/params.ts";
 * import { DEFAULT_DCGAN, defineDiscriminator, discriminatorForward } from "./dcgan.ts";
 * using b = await createBackend("tfjs-cpu");
 * const config = { ...DEFAULT_DCGAN, ndf: 4 }; // a small discriminator
 * using store = new ParamStore(b);
 * defineDiscriminator(store, new Rng(0), config);
 * const logits = discriminatorForward(b, store, config, b.zeros([2, 3, 32, 32]), undefined, {
 *   training: true,
 * });
 * console.log(logits.shape); // [2]
 * ```
 */
export function discriminatorForward(
  b: Backend,
  p: ParamStore,
  config: DcganModelConfig,
  images: Tensor,
  labels: Tensor | undefined,
  mode: DcganForwardMode,
): Tensor {
  const [batch, channels, height, width] = images.shape;
  if (
    images.shape.length !== 4 || channels !== config.channels || height !== DCGAN_IMAGE_SIZE ||
    width !== DCGAN_IMAGE_SIZE
  ) {
    throw new Error(
      `discriminator input must be [B, ${config.channels}, 32, 32], got [${
        images.shape.join(",")
      }]`,
    );
  }
  checkLabels(config, batch, labels);
  let h = config.numClasses > 0
    ? b.cat([images, labelPlanes(b, p, labels!, config.embedDim, DCGAN_IMAGE_SIZE)], 1) // [B, C + k, 32, 32]
    : images;
  h = b.leakyRelu(conv2d(b, p, D_CONVS[0], h, { stride: 2, padding: 1 }), LEAKY_SLOPE); // [B, ndf, 16, 16]
  for (let i = 1; i < 3; i++) {
    h = conv2d(b, p, D_CONVS[i], h, { stride: 2, padding: 1 }); // spatial /2
    h = b.leakyRelu(batchNorm2d(b, p, D_NORMS[i]!, h, mode), LEAKY_SLOPE);
  }
  h = conv2d(b, p, D_CONVS[3], h, { stride: 1, padding: 0 }); // [B, 1, 1, 1]
  return b.reshape(h, [batch]);
}

/**
 * Creates, in `sink`, fresh copies of the generator's BatchNorm running-statistic buffers
 * (see {@link DcganForwardMode.statsSink}).
 *
 * @example
 * ```ts
 * import { ParamStore } from "../nn/params.ts";
 * import { DEFAULT_DCGAN, defineGeneratorStatsSink } from "./dcgan.ts";
 * const sink = ParamStore.shapeOnly(); // a real sink takes the backend: new ParamStore(b)
 * defineGeneratorStatsSink(sink, DEFAULT_DCGAN);
 * console.log(sink.names().length, sink.count()); // 6 0: three norms' running stats, no weights
 * ```
 */
export function defineGeneratorStatsSink(sink: ParamStore, config: DcganModelConfig): void {
  const widths = generatorWidths(config.preset, config.ngf, config.channels);
  G_NORMS.forEach((name, i) => defineBatchNorm(sink, name, widths[i], undefined, false));
}

/**
 * Creates, in `sink`, fresh copies of the discriminator's BatchNorm running-statistic buffers,
 * for a training-mode pass that must leave the model as it was (a memory probe).
 *
 * @example
 * ```ts
 * import { ParamStore } from "../nn/params.ts";
 * import { DEFAULT_DCGAN, defineDiscriminatorStatsSink } from "./dcgan.ts";
 * const sink = ParamStore.shapeOnly(); // a real sink takes the backend: new ParamStore(b)
 * defineDiscriminatorStatsSink(sink, DEFAULT_DCGAN);
 * console.log(sink.names().length, sink.count()); // 4 0: two norms' running stats, no weights
 * ```
 */
export function defineDiscriminatorStatsSink(sink: ParamStore, config: DcganModelConfig): void {
  const widths = discriminatorWidths(config.ndf);
  D_NORMS.forEach((name, i) => {
    if (name) defineBatchNorm(sink, name, widths[i], undefined, false);
  });
}

/** Trainable parameter counts of a pair. */
export interface DcganParamCounts {
  /** Generator weights. */
  generator: number;
  /** Discriminator weights. */
  discriminator: number;
  /** Both together. */
  total: number;
}

/**
 * Trainable parameters of a DCGAN pair without building it (for `params --model dcgan`): the
 * real `defineGenerator` / `defineDiscriminator` run on shape-only parameter stores.
 *
 * @example
 * ```ts
 * import { DEFAULT_DCGAN, dcganParamCounts } from "./dcgan.ts";
 * console.log(dcganParamCounts(DEFAULT_DCGAN).generator); // 1068928
 * ```
 */
export function dcganParamCounts(config: DcganModelConfig): DcganParamCounts {
  const g = ParamStore.shapeOnly();
  const d = ParamStore.shapeOnly();
  defineGenerator(g, new Rng(0), config);
  defineDiscriminator(d, new Rng(0), config);
  const generator = g.count();
  const discriminator = d.count();
  return { generator, discriminator, total: generator + discriminator };
}
