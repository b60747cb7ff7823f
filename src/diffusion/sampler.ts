/**
 * Samplers for an epsilon-predicting model: ancestral DDPM sampling (Ho et al. 2020,
 * Algorithm 2) and DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12 with
 * the sigma of eq. 16), both with optional class conditioning and classifier-free guidance
 * (Ho & Salimans 2022, eq. 6).
 *
 * All noise comes from the host: every image has its own generator ({@link ImageNoise}), from
 * which it draws x_T first and then one draw per step that adds noise. So a seed gives the same
 * images on every backend and for every batch size, and image k is the same whether it is
 * drawn alone, in a batch, or in a resumed run. Inside the loop nothing
 * is read back to the host; each step runs in `backend.scope` so memory stays flat.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { type ImageNoise, normalRows, type Rng, toImageNoise } from "../core/rng.ts";
import type { EpsilonModel } from "./loss.ts";
import type { DiffusionProcess, VarianceType } from "./process.ts";

/** Options of {@link sampleImages}. */
export interface SamplerOptions {
  /** "ddpm" (ancestral, Algorithm 2, all T steps) or "ddim". Default "ddpm". */
  sampler?: "ddpm" | "ddim";
  /** DDIM only: number of denoising steps, 1..T, evenly spaced. Default 50 (or T if smaller). */
  steps?: number;
  /** DDIM only: 0 = deterministic DDIM, 1 = DDPM-like noise (eq. 16). Default 0. */
  eta?: number;
  /** DDPM only: sigma_t^2 = beta_t ("beta", default) or betaTilde_t ("posterior"). */
  varianceType?: VarianceType;
  /**
   * Classifier-free guidance scale w: eps = eps(x, null) + w (eps(x, y) - eps(x, null)).
   * Needs labels and `nullClass`. 1 (default) = plain conditional sampling.
   */
  guidance?: number;
  /** Label index the model was trained with for "no label" (the task uses numClasses). */
  nullClass?: number;
  /** Clamp the predicted x_0 to [-1, 1] at each step. Default false (Algorithm 2 as written). */
  clipX0?: boolean;
  /**
   * Images per forward pass; lower it when the device runs out of memory (guidance doubles
   * the effective batch). Default 64.
   */
  batchSize?: number;
}

/**
 * Generates images: x_T ~ N(0, I), then T (DDPM) or `steps` (DDIM) denoising steps. `labels`
 * (one per image) condition the model when given; their count sets the number of images,
 * otherwise `count` does. Image i draws its noise from `noise.stream(i)` (a plain {@link Rng}
 * gives one key for all of them). Returns float32 [n, C, H, W], clamped to [-1, 1].
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { createDenoiser } from "../models/denoiser.ts";
 * import { DiffusionProcess } from "./process.ts";
 * import { makeSchedule } from "./schedule.ts";
 * import { sampleImages } from "./sampler.ts";
 * using b = await createBackend("tfjs-cpu");
 * using process = new DiffusionProcess(b, makeSchedule({ kind: "cosine", timesteps: 50 }));
 * using denoiser = createDenoiser(b, new Rng(0), {
 *   preset: "convnet", numClasses: 0, imageSize: 8, channels: 3, baseWidth: 8, timesteps: 50,
 * });
 * const images = sampleImages(b, process, (x, t, y) => denoiser.forward(x, t, y), [3, 8, 8],
 *   { count: 2 }, new Rng(1), { sampler: "ddim", steps: 5, eta: 0 }); // [2, 3, 8, 8]
 * console.log(images.length, images.every((v) => v >= -1 && v <= 1)); // 384 true
 * ```
 */
export function sampleImages(
  b: Backend,
  process: DiffusionProcess,
  model: EpsilonModel,
  imageShape: readonly [number, number, number],
  what: { labels?: Int32Array; count?: number },
  noise: Rng | ImageNoise,
  options: SamplerOptions = {},
): Float32Array {
  const streams = toImageNoise(noise);
  const n = what.labels?.length ?? what.count ?? 0;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`need at least one image, got ${n}`);
  const batchSize = options.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  const guidance = options.guidance ?? 1;
  if (guidance !== 1) {
    if (!what.labels) throw new Error("guidance needs class labels (a conditional model)");
    if (options.nullClass === undefined) throw new Error("guidance needs the model's nullClass");
  }
  const imageSize = imageShape[0] * imageShape[1] * imageShape[2];
  const out = new Float32Array(n * imageSize);
  for (let start = 0; start < n; start += batchSize) {
    const count = Math.min(batchSize, n - start);
    const labels = what.labels?.subarray(start, start + count);
    const rngs = Array.from({ length: count }, (_, j) => streams.stream(start + j));
    const images = b.noGrad(() =>
      sampleBatch(b, process, model, [count, ...imageShape], labels, rngs, options)
    );
    out.set(images, start * imageSize);
  }
  return out;
}

function sampleBatch(
  b: Backend,
  process: DiffusionProcess,
  model: EpsilonModel,
  shape: readonly [number, number, number, number],
  labels: Int32Array | undefined,
  rngs: readonly Rng[],
  options: SamplerOptions,
): Float32Array {
  const count = shape[0];
  const perImage = shape[1] * shape[2] * shape[3];
  const epsilon = guidedModel(b, model, labels, options.guidance ?? 1, options.nullClass);
  const noise = () => b.tensor(normalRows(rngs, perImage), shape); // [count, C, H, W]
  let x = b.scope(() => b.variable(noise(), false)); // x_T ~ N(0, I)
  const advance = (step: () => Tensor) => {
    const next = b.scope(() => b.variable(step(), false));
    x.dispose();
    x = next;
  };
  const sampler = options.sampler ?? "ddpm";
  try {
    if (sampler === "ddpm") {
      const varianceType = options.varianceType ?? "beta";
      for (let i = process.timesteps - 1; i >= 0; i--) {
        advance(() => {
          const t = b.tensor(new Int32Array(count).fill(i), [count], "int32");
          const eps = epsilon(x, t);
          const p = process.pMeanVariance(eps, x, t, varianceType, options.clipX0 ?? false);
          // Algorithm 2 line 4: x_{t-1} = mu_theta(x_t, t) + sigma_t z, z = 0 at t = 1
          return i > 0 ? b.add(p.mean, b.mul(b.sqrt(p.variance), noise())) : p.mean;
        });
      }
    } else if (sampler === "ddim") {
      const seq = ddimTimesteps(
        process.timesteps,
        options.steps ?? Math.min(50, process.timesteps),
      );
      const eta = options.eta ?? 0;
      if (!(eta >= 0)) throw new RangeError(`eta must be >= 0, got ${eta}`);
      const alphaBar = process.schedule.alphaBar;
      for (let k = seq.length - 1; k >= 0; k--) {
        const i = seq[k];
        const abar = alphaBar[i];
        const abarPrev = k > 0 ? alphaBar[seq[k - 1]] : 1;
        // Song et al. 2021 eq. 16: sigma = eta sqrt((1 - abar_prev)/(1 - abar)) sqrt(1 - abar/abar_prev)
        const sigma = eta * Math.sqrt((1 - abarPrev) / (1 - abar) * (1 - abar / abarPrev));
        advance(() => {
          const t = b.tensor(new Int32Array(count).fill(i), [count], "int32");
          const eps = epsilon(x, t);
          let x0 = process.predictX0FromEpsilon(x, t, eps);
          if (options.clipX0) x0 = b.clamp(x0, -1, 1);
          // eq. 12: x_{t-1} = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z
          const direction = Math.sqrt(Math.max(1 - abarPrev - sigma * sigma, 0));
          const mean = b.add(b.mul(x0, Math.sqrt(abarPrev)), b.mul(eps, direction));
          return sigma > 0 ? b.add(mean, b.mul(noise(), sigma)) : mean;
        });
      }
    } else {
      throw new RangeError(`unknown sampler "${sampler}": use "ddpm" or "ddim"`);
    }
    const clamped = b.scope(() => b.clamp(x, -1, 1));
    const host = Float32Array.from(b.read(clamped));
    clamped.dispose();
    return host;
  } finally {
    x.dispose();
  }
}

/**
 * The evenly spaced timestep indices DDIM visits, ascending: floor(k T / steps), k < steps.
 * With steps = T that is every index.
 *
 * @example
 * ```ts
 * import { ddimTimesteps } from "./sampler.ts";
 * console.log(ddimTimesteps(10, 5)); // Int32Array [0, 2, 4, 6, 8]
 * ```
 */
export function ddimTimesteps(timesteps: number, steps: number): Int32Array {
  if (!Number.isInteger(steps) || steps < 1 || steps > timesteps) {
    throw new RangeError(`DDIM steps must be an integer in 1..${timesteps}, got ${steps}`);
  }
  return Int32Array.from({ length: steps }, (_, k) => Math.floor((k * timesteps) / steps));
}

/** eps(x, t) with the labels bound and, when w != 1, classifier-free guidance applied. */
function guidedModel(
  b: Backend,
  model: EpsilonModel,
  labels: Int32Array | undefined,
  guidance: number,
  nullClass: number | undefined,
): (x: Tensor, t: Tensor) => Tensor {
  if (!labels) return (x, t) => model(x, t);
  const n = labels.length;
  if (guidance === 1) {
    return (x, t) => model(x, t, b.tensor(labels, [n], "int32"));
  }
  const both = new Int32Array(2 * n);
  both.set(labels);
  both.fill(nullClass!, n);
  return (x, t) => {
    // One forward pass over [conditional; unconditional] halves.
    const eps = model(b.cat([x, x], 0), b.cat([t, t], 0), b.tensor(both, [2 * n], "int32"));
    const rest = x.shape.slice(1).map(() => -1);
    const conditional = b.slice(eps, [0, ...rest.map(() => 0)], [n, ...rest]);
    const unconditional = b.slice(eps, [n, ...rest.map(() => 0)], [n, ...rest]);
    // Ho & Salimans 2022 eq. 6 (with w' = w - 1): eps_u + w (eps_c - eps_u)
    return b.add(unconditional, b.mul(b.sub(conditional, unconditional), guidance));
  };
}
