/**
 * DDPM objectives (Ho et al. 2020): the simplified loss L_simple (eq. 14, Algorithm 1) and the
 * variational bound L = L_T + sum_{t>1} L_{t-1} + L_0 (eq. 5), both for training, plus a
 * bits/dim evaluation of the full bound over a data set.
 *
 * All VLB terms are in bits per dimension (nats / ln 2, averaged over C*H*W) as in the paper's
 * Table 2. Images are in [-1, 1], discretised into 256 bins of width 2/255.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import type { Rng } from "../core/rng.ts";
import type { Batch } from "../data/batch.ts";
import type { DiffusionProcess, VarianceType } from "./process.ts";

/** A noise-prediction network: eps_theta(x_t, t[, labels]). x [B, C, H, W], t int32 [B]. */
export type EpsilonModel = (xt: Tensor, t: Tensor, labels?: Tensor) => Tensor;

/**
 * KL(N(mean1, var1) || N(mean2, var2)) elementwise, in nats, from log-variances.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { normalKl } from "./loss.ts";
 * const b = await createBackend("tfjs-cpu");
 * const kl = normalKl(b, b.zeros([1]), b.zeros([1]), b.full([1], 1), b.zeros([1]));
 * console.log(b.read(kl)[0]); // 0.5
 * ```
 */
export function normalKl(
  b: Backend,
  mean1: Tensor,
  logVar1: Tensor,
  mean2: Tensor,
  logVar2: Tensor,
): Tensor {
  // 0.5 * (-1 + log var2 - log var1 + var1 / var2 + (mean1 - mean2)^2 / var2)
  const diff = b.sub(mean1, mean2);
  const terms = b.add(
    b.add(b.sub(logVar2, logVar1), b.exp(b.sub(logVar1, logVar2))),
    b.mul(b.mul(diff, diff), b.exp(b.neg(logVar2))),
  );
  return b.mul(b.sub(terms, 1), 0.5);
}

/** Phi(x) by the tanh approximation used in Ho et al.'s code (abs. error below 3e-4). */
export function approxStandardNormalCdf(b: Backend, x: Tensor): Tensor {
  // 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
  const inner = b.mul(b.add(x, b.mul(b.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
  return b.mul(b.add(b.tanh(inner), 1), 0.5);
}

/**
 * log p(x) of the discretised Gaussian decoder of eq. 13: the Gaussian's mass over the pixel's
 * bin [x - 1/255, x + 1/255], with the edge bins extended to -inf / +inf. x, mean [B, ...] in
 * [-1, 1]; logScale = log sigma, broadcastable. Returns nats per element.
 */
export function discretizedGaussianLogLikelihood(
  b: Backend,
  x: Tensor,
  mean: Tensor,
  logScale: Tensor,
): Tensor {
  const centered = b.sub(x, mean);
  const invStd = b.exp(b.neg(logScale));
  const cdfPlus = approxStandardNormalCdf(b, b.mul(invStd, b.add(centered, 1 / 255)));
  const cdfMin = approxStandardNormalCdf(b, b.mul(invStd, b.sub(centered, 1 / 255)));
  const tiny = 1e-12;
  const logCdfPlus = b.log(b.clamp(cdfPlus, tiny, Infinity)); // lowest bin: (-inf, x + 1/255]
  const logOneMinusCdfMin = b.log(b.clamp(b.add(b.neg(cdfMin), 1), tiny, Infinity)); // highest bin
  const logCdfDelta = b.log(b.clamp(b.sub(cdfPlus, cdfMin), tiny, Infinity));
  const isLowest = b.greater(b.neg(x), 0.999); // x < -0.999
  const isHighest = b.greater(x, 0.999);
  return b.where(isLowest, logCdfPlus, b.where(isHighest, logOneMinusCdfMin, logCdfDelta));
}

/** Mean over all but the batch dim: [B, ...] -> [B]. */
export function meanFlat(b: Backend, x: Tensor): Tensor {
  return b.mean(x, x.shape.slice(1).map((_, i) => i + 1));
}

/**
 * L_simple of Algorithm 1 / eq. 14: || eps - eps_theta(sqrt(alphaBar_t) x_0 + sqrt(1 - alphaBar_t) eps, t) ||^2,
 * averaged over the batch and pixels. `t` holds one independently drawn timestep per sample.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { DiffusionProcess } from "./process.ts";
 * import { makeSchedule } from "./schedule.ts";
 * import { type EpsilonModel, simpleLoss } from "./loss.ts";
 * using b = await createBackend("tfjs-cpu");
 * using process = new DiffusionProcess(b, makeSchedule({ kind: "linear", timesteps: 10 }));
 * const predictZero: EpsilonModel = (xt) => b.zeros(xt.shape); // eps_theta = 0
 * const x0 = b.zeros([2, 3, 4, 4]);
 * const t = b.tensor([0, 9], [2], "int32");
 * const loss = simpleLoss(b, process, predictZero, x0, t, b.full([2, 3, 4, 4], 1)); // scalar
 * console.log(b.read(loss)[0]); // 1: the mean of (1 - 0)^2
 * ```
 */
export function simpleLoss(
  b: Backend,
  process: DiffusionProcess,
  model: EpsilonModel,
  x0: Tensor,
  t: Tensor,
  noise: Tensor,
  labels?: Tensor,
): Tensor {
  const xt = process.qSample(x0, t, noise);
  return b.mseLoss(model(xt, t, labels), noise);
}

/** Options of the VLB functions. */
export interface VlbOptions {
  /** Reverse-process variance (fixed, not learned). */
  varianceType: VarianceType;
  /** Clamp the predicted x_0 to [-1, 1] when forming the reverse mean. Default false. */
  clipX0?: boolean;
}

/**
 * The per-sample bound term for timestep index t (in bits/dim, [B]): for t >= 1 (paper t >= 2)
 * L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) (eq. 5), for t = 0 the decoder
 * L_0 = -log p(x_0 | x_1) (eq. 13). `epsilon` is the model's prediction at (xt, t).
 */
export function vlbTerm(
  b: Backend,
  process: DiffusionProcess,
  x0: Tensor,
  xt: Tensor,
  t: Tensor,
  epsilon: Tensor,
  options: VlbOptions,
): Tensor {
  const posterior = process.posteriorMeanVariance(x0, xt, t);
  const model = process.pMeanVariance(
    epsilon,
    xt,
    t,
    options.varianceType,
    options.clipX0 ?? false,
  );
  const kl = meanFlat(
    b,
    normalKl(b, posterior.mean, posterior.logVariance, model.mean, model.logVariance),
  );
  const decoderNll = meanFlat(
    b,
    b.neg(discretizedGaussianLogLikelihood(b, x0, model.mean, b.mul(model.logVariance, 0.5))),
  );
  const isFirst = b.greater(b.neg(b.cast(t, "float32")), -0.5); // t == 0
  return b.mul(b.where(isFirst, decoderNll, kl), 1 / Math.LN2);
}

/**
 * L_T = KL(q(x_T | x_0) || N(0, I)) in bits/dim, [B] (eq. 5's prior term; no parameters).
 */
export function priorBitsPerDim(b: Backend, process: DiffusionProcess, x0: Tensor): Tensor {
  const last = b.full([x0.shape[0]], process.timesteps - 1);
  const q = process.qMeanVariance(x0, b.cast(last, "int32"));
  const kl = normalKl(b, q.mean, q.logVariance, b.zeros([1]), b.zeros([1]));
  return b.mul(meanFlat(b, kl), 1 / Math.LN2);
}

/**
 * Training loss from the variational bound: the mean over the batch of the sampled term
 * L_{t-1} (one independent t per sample). With t uniform this is an unbiased estimate of
 * (L - L_T) / T; L_T has no parameters and is left out. Returns a scalar in bits/dim.
 */
export function vlbLoss(
  b: Backend,
  process: DiffusionProcess,
  model: EpsilonModel,
  x0: Tensor,
  t: Tensor,
  noise: Tensor,
  labels: Tensor | undefined,
  options: VlbOptions,
): Tensor {
  const xt = process.qSample(x0, t, noise);
  return b.mean(vlbTerm(b, process, x0, xt, t, model(xt, t, labels), options));
}

/** Result of {@link bitsPerDim}. */
export interface BitsPerDim {
  /** The full bound L_T + sum_t L_{t-1} + L_0, averaged over the images. */
  total: number;
  /** L_T alone. */
  prior: number;
  /** Number of images evaluated. */
  images: number;
}

/** Options of {@link bitsPerDim}. */
export interface BitsPerDimOptions extends VlbOptions {
  /**
   * Evaluate L_0 and every k-th KL term, scaling the KL terms to stand for all T - 1 of them
   * (a shortcut for quick looks). Default 1: the exact bound, T model evaluations per batch.
   */
  timestepStride?: number;
}

/**
 * Evaluates the variational bound (eq. 5) in bits/dim over a data split, as in Ho et al.
 * Table 2: for every timestep a fresh x_t ~ q(x_t | x_0) and the term L_{t-1}, plus L_T.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { createDenoiser } from "../models/denoiser.ts";
 * import { DiffusionProcess } from "./process.ts";
 * import { makeSchedule } from "./schedule.ts";
 * import type { Batch } from "../data/batch.ts";
 * import { bitsPerDim, type EpsilonModel } from "./loss.ts";
 * using b = await createBackend("tfjs-cpu");
 * using process = new DiffusionProcess(b, makeSchedule({ kind: "cosine", timesteps: 20 }));
 * using denoiser = createDenoiser(b, new Rng(0), {
 *   preset: "convnet", numClasses: 0, imageSize: 8, channels: 3, baseWidth: 8, timesteps: 20,
 * });
 * const batch: Batch = { images: new Float32Array(2 * 3 * 8 * 8), labels: new Int32Array(2), shape: [2, 3, 8, 8] };
 * const model: EpsilonModel = (x, t, y) => denoiser.forward(x, t, y);
 * const { total, prior, images } = bitsPerDim(b, process, model, [batch], new Rng(1), {
 *   varianceType: "beta", timestepStride: 5, // L_0 and every 5th KL term, for speed
 * });
 * console.log(images, total > prior); // 2 true
 * ```
 */
export function bitsPerDim(
  b: Backend,
  process: DiffusionProcess,
  model: EpsilonModel,
  batches: Iterable<Batch>,
  rng: Rng,
  options: BitsPerDimOptions,
): BitsPerDim {
  const stride = options.timestepStride ?? 1;
  if (!Number.isInteger(stride) || stride < 1 || stride >= process.timesteps) {
    throw new RangeError(
      `timestepStride must be an integer in 1..${process.timesteps - 1}, got ${stride}`,
    );
  }
  let total = 0;
  let prior = 0;
  let images = 0;
  b.noGrad(() => {
    for (const batch of batches) {
      const n = batch.shape[0];
      const x0 = b.tensor(batch.images, batch.shape);
      const labels = b.tensor(batch.labels, [n], "int32");
      let sum = b.scope(() => b.variable(priorBitsPerDim(b, process, x0), false)); // [B]
      prior += sumOf(b.read(sum));
      for (const [i, weight] of timestepWeights(process.timesteps, stride)) {
        const next = b.scope(() => {
          const t = b.tensor(new Int32Array(n).fill(i), [n], "int32");
          const noise = b.tensor(rng.normal(n * sizeOfImage(batch.shape)), batch.shape);
          const xt = process.qSample(x0, t, noise);
          const term = vlbTerm(b, process, x0, xt, t, model(xt, t, labels), options);
          return b.variable(b.add(sum, b.mul(term, weight)), false);
        });
        sum.dispose();
        sum = next;
      }
      total += sumOf(b.read(sum));
      images += n;
      sum.dispose();
      x0.dispose();
      labels.dispose();
    }
  });
  if (images === 0) throw new Error("bitsPerDim: the data split is empty");
  return { total: total / images, prior: prior / images, images };
}

/** [timestep index, weight] pairs: L_0 once, then the KL terms t = k, 2k, ... rescaled. */
function timestepWeights(timesteps: number, stride: number): [number, number][] {
  const klSteps: number[] = [];
  for (let i = stride; i < timesteps; i += stride) klSteps.push(i);
  const weight = (timesteps - 1) / klSteps.length;
  return [[0, 1], ...klSteps.map((i): [number, number] => [i, weight])];
}

function sizeOfImage(shape: readonly number[]): number {
  return shape.slice(1).reduce((a, d) => a * d, 1);
}

function sumOf(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}
