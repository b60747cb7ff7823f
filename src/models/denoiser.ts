/**
 * The registry of DDPM noise-prediction networks: a preset name gives a model with its
 * parameters, a forward function eps_theta(x_t, t[, y]) and its parameter count.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { Rng } from "../core/rng.ts";
import { ParamStore } from "../nn/params.ts";
import { type ConvNetConfig, convnetForward, defineConvNet } from "./convnet.ts";
import {
  defineUNet,
  UNET_PRESETS,
  type UNetConfig,
  unetConfig,
  unetForward,
  type UNetPreset,
} from "./unet.ts";

/** Names of the denoiser presets. */
export const DENOISER_PRESETS = ["unet-3x", "unet-2xud", "unet-2xud-half", "convnet"] as const;

/** A denoiser preset name. */
export type DenoiserPreset = (typeof DENOISER_PRESETS)[number];

/** Options of {@link createDenoiser}. */
export interface DenoiserOptions {
  /** Which architecture. */
  preset: DenoiserPreset;
  /** Classes for conditioning; 0 = unconditional. Label `numClasses` means "no label". */
  numClasses: number;
  /** Image height = width (divisible by 4 for convnet, 2^levels for the U-Nets). */
  imageSize: number;
  /** Image channels (3 for RGB). */
  channels: number;
  /** Largest timestep index + 1 the model will see (size of the time-embedding table). Default 1000. */
  timesteps?: number;
  /** Base width override (64 for unet-3x/unet-2xud/convnet, 32 for unet-2xud-half); for small tests. */
  baseWidth?: number;
}

/** Architecture of a denoiser: which family and its shape. */
export type DenoiserConfig =
  | { family: "unet"; unet: UNetConfig }
  | { family: "convnet"; convnet: ConvNetConfig };

/** A noise-prediction network with its parameters. */
export interface Denoiser {
  /** The preset it was built from. */
  readonly preset: DenoiserPreset;
  /** The options it was built with. */
  readonly options: Readonly<DenoiserOptions>;
  /** The architecture those options describe. */
  readonly config: DenoiserConfig;
  /** Its parameters (PyTorch state_dict names). */
  readonly store: ParamStore;
  /**
   * eps_theta(x_t, t[, labels]): x [B, C, H, W], t int32 [B] (0-based), labels int32 [B]
   * (omitted: the "null" label for a conditional model) -> [B, C, H, W].
   */
  forward(x: Tensor, t: Tensor, labels?: Tensor): Tensor;
  /** Number of weights (scalars), as PyTorch's `sum(p.numel() for p in model.parameters())`. */
  paramCount(): number;
  /** Frees the parameters and the embedding table; calling it again does nothing. */
  dispose(): void;
  /** {@link Denoiser.dispose}, for `using denoiser = createDenoiser(...)`. */
  [Symbol.dispose](): void;
}

/** The architecture a set of options describes. Throws on an unknown preset or bad size. */
export function denoiserConfig(options: DenoiserOptions): DenoiserConfig {
  const { preset, numClasses, channels, imageSize } = options;
  if (!Number.isInteger(numClasses) || numClasses < 0) {
    throw new RangeError(`numClasses must be an integer >= 0, got ${numClasses}`);
  }
  if (preset === "convnet") {
    if (imageSize % 4 !== 0) {
      throw new RangeError(`convnet needs an image size divisible by 4, got ${imageSize}`);
    }
    return {
      family: "convnet",
      convnet: { channels, width: options.baseWidth ?? 64, timeDim: 256, numClasses },
    };
  }
  if (!(preset in UNET_PRESETS)) {
    throw new RangeError(
      `unknown model preset "${preset}": use one of ${DENOISER_PRESETS.join(", ")}`,
    );
  }
  const unet = unetConfig(preset as UNetPreset, {
    channels,
    numClasses,
    baseWidth: options.baseWidth,
  });
  const divisor = 2 ** (unet.widths.length - 1);
  if (imageSize % divisor !== 0) {
    throw new RangeError(`${preset} needs an image size divisible by ${divisor}, got ${imageSize}`);
  }
  return { family: "unet", unet };
}

/**
 * The sinusoidal embedding of every timestep 0..timesteps-1 (Vaswani et al. 2017 Sec. 3.5 as
 * used by Ho et al. 2020): row t = [sin(t w_0..w_{d/2-1}), cos(t w_0..)], w_i = 10000^(-2i/d).
 * Computed in Float64 on the host, then float32: [timesteps, dim] row-major.
 */
export function timestepEmbeddingTable(timesteps: number, dim: number): Float32Array {
  const half = dim / 2;
  const table = new Float32Array(timesteps * dim);
  for (let t = 0; t < timesteps; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t / 10000 ** ((2 * i) / dim);
      table[t * dim + i] = Math.sin(angle);
      table[t * dim + half + i] = Math.cos(angle);
    }
  }
  return table;
}

/**
 * Creates a denoiser with PyTorch-default initial weights drawn from `rng`.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { createDenoiser } from "./denoiser.ts";
 * using backend = await createBackend("tfjs-cpu");
 * using model = createDenoiser(backend, new Rng(0), {
 *   preset: "convnet", numClasses: 0, imageSize: 8, channels: 3, baseWidth: 8,
 * });
 * const eps = model.forward(backend.zeros([2, 3, 8, 8]), backend.tensor([0, 5], [2], "int32"));
 * console.log(eps.shape); // [2, 3, 8, 8]
 * ```
 */
export function createDenoiser(backend: Backend, rng: Rng, options: DenoiserOptions): Denoiser {
  const config = denoiserConfig(options);
  const store = new ParamStore(backend);
  if (config.family === "unet") defineUNet(store, rng, config.unet);
  else defineConvNet(store, rng, config.convnet);
  return denoiserOverStore(backend, options, store);
}

/**
 * A denoiser of `options` over an existing store of matching parameters (e.g. the EMA copy
 * of a model's weights). The store is owned by the denoiser afterwards.
 */
export function denoiserOverStore(
  backend: Backend,
  options: DenoiserOptions,
  store: ParamStore,
): Denoiser {
  const config = denoiserConfig(options);
  const cfg = config.family === "unet" ? config.unet : config.convnet;
  const timesteps = options.timesteps ?? 1000;
  const table = backend.scope(() =>
    backend.variable(
      backend.tensor(timestepEmbeddingTable(timesteps, cfg.timeDim), [timesteps, cfg.timeDim]),
      false,
    )
  );
  const dispose = () => {
    store.dispose();
    table.dispose(); // idempotent, as ParamStore.dispose is
  };
  const run = config.family === "unet"
    ? (x: Tensor, temb: Tensor) => unetForward(backend, store, config.unet, x, temb)
    : (x: Tensor, temb: Tensor) => convnetForward(backend, store, config.convnet, x, temb);
  return {
    preset: options.preset,
    options: { ...options },
    config,
    store,
    forward(x, t, labels) {
      const [n, c, h, w] = x.shape;
      if (x.shape.length !== 4 || c !== options.channels || h !== options.imageSize || w !== h) {
        throw new RangeError(
          `${options.preset} expects images [B, ${options.channels}, ${options.imageSize}, ${options.imageSize}], got [${x.shape}]`,
        );
      }
      if (t.shape.length !== 1 || t.shape[0] !== n || t.dtype !== "int32") {
        throw new RangeError(`timesteps must be int32 [${n}], got ${t.dtype} [${t.shape}]`);
      }
      let temb = backend.gather(table, t, 0); // [B, timeDim]
      if (cfg.numClasses > 0) {
        const y = labels ?? backend.tensor(new Int32Array(n).fill(cfg.numClasses), [n], "int32");
        temb = backend.add(temb, backend.gather(store.get("label_emb.weight"), y, 0));
      }
      return run(x, temb);
    },
    // Every entry is a weight (no buffers), also in an EMA copy whose entries are not trainable.
    paramCount: () => store.countAll(),
    dispose,
    [Symbol.dispose]: dispose,
  };
}

/**
 * Parameter count of a preset without creating it on a backend: the model's own `define*`
 * run on a shape-only parameter store, so the count cannot drift from the model.
 *
 * @example
 * ```ts
 * import { countParams } from "./denoiser.ts";
 * console.log(countParams("unet-3x", 0)); // 23332739
 * ```
 */
export function countParams(preset: DenoiserPreset, numClasses: number, channels = 3): number {
  const config = denoiserConfig({ preset, numClasses, channels, imageSize: 64 });
  const shapes = ParamStore.shapeOnly();
  // The generator is never drawn from: a shape-only store skips initial values.
  if (config.family === "unet") defineUNet(shapes, new Rng(0), config.unet);
  else defineConvNet(shapes, new Rng(0), config.convnet);
  return shapes.countAll();
}
