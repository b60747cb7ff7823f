/**
 * GAN objectives on discriminator logits (Goodfellow et al. 2014), with the two stabilisers
 * the study compared: two-sided label smoothing (real 0.9, fake 0.1; Salimans et al. 2016
 * §3.4 recommend smoothing only the real side, the study smoothed both) and Gaussian "instance
 * noise" on the discriminator's inputs, annealed linearly to zero (Sønderby et al. 2017;
 * Arjovsky & Bottou 2017).
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import type { Rng } from "../core/rng.ts";

/** Target for real images when smoothing. */
export const SMOOTH_REAL_TARGET = 0.9;
/** Target for generated images when smoothing. */
export const SMOOTH_FAKE_TARGET = 0.1;

/**
 * The BCE targets the discriminator is trained towards.
 *
 * @example
 * ```ts
 * import { discriminatorTargets } from "./loss.ts";
 * console.log(discriminatorTargets(true)); // { real: 0.9, fake: 0.1 }
 * console.log(discriminatorTargets(false)); // { real: 1, fake: 0 }
 * ```
 */
export function discriminatorTargets(smooth: boolean): { real: number; fake: number } {
  return smooth ? { real: SMOOTH_REAL_TARGET, fake: SMOOTH_FAKE_TARGET } : { real: 1, fake: 0 };
}

/** Mean BCE-with-logits of `logits` [B] against one constant target. */
function bceToConstant(b: Backend, logits: Tensor, target: number): Tensor {
  return b.bceWithLogits(logits, b.full(logits.shape, target));
}

/**
 * Discriminator loss, summed over the real and the fake batch as in the PyTorch DCGAN tutorial
 * (errD = errD_real + errD_fake):
 * -[t_r log D(x) + (1-t_r) log(1-D(x))] - [t_f log D(G(z)) + (1-t_f) log(1-D(G(z)))],
 * each term a mean over its batch, with D = sigmoid(logit) (Goodfellow et al. 2014, eq. 1).
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { discriminatorLoss } from "./loss.ts";
 * using b = await createBackend("tfjs-cpu");
 * // Logits of 0 mean D = 1/2 on both sides: each BCE term is ln 2, smoothed or not.
 * const loss = discriminatorLoss(b, b.zeros([4, 1]), b.zeros([4, 1]), true); // scalar tensor
 * console.log(b.read(loss)[0].toFixed(4)); // 1.3863 (2 ln 2)
 * ```
 */
export function discriminatorLoss(
  b: Backend,
  realLogits: Tensor,
  fakeLogits: Tensor,
  smooth: boolean,
): Tensor {
  const targets = discriminatorTargets(smooth);
  return b.add(
    bceToConstant(b, realLogits, targets.real),
    bceToConstant(b, fakeLogits, targets.fake),
  );
}

/**
 * Non-saturating generator loss: -mean log D(G(z)), i.e. BCE towards "real" = 1 (never
 * smoothed), which gives G strong gradients when D rejects its samples (Goodfellow et al.
 * 2014, §3, the alternative to minimising log(1 - D(G(z)))).
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { generatorLoss } from "./loss.ts";
 * using b = await createBackend("tfjs-cpu");
 * const loss = generatorLoss(b, b.zeros([4, 1])); // scalar tensor: -log(1/2)
 * console.log(b.read(loss)[0].toFixed(4)); // 0.6931
 * ```
 */
export function generatorLoss(b: Backend, fakeLogits: Tensor): Tensor {
  return bceToConstant(b, fakeLogits, 1);
}

/**
 * Std of the discriminator's input noise at `progress` in [0, 1] of training: linear from
 * `initial` at the start to 0 at the end (clamped outside [0, 1]).
 *
 * @example
 * ```ts
 * import { inputNoiseSigma } from "./loss.ts";
 * console.log(inputNoiseSigma(0.2, 0.5)); // 0.1
 * ```
 */
export function inputNoiseSigma(initial: number, progress: number): number {
  const p = Math.min(1, Math.max(0, progress));
  return initial * (1 - p);
}

/**
 * x + sigma * n with n ~ N(0, I) drawn from the host `rng` (so every backend sees the same
 * noise). Returns `x` itself, drawing nothing, when sigma is 0.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { addInputNoise } from "./loss.ts";
 * using b = await createBackend("tfjs-cpu");
 * const images = b.zeros([2, 3, 4, 4]);
 * const noisy = addInputNoise(b, images, 0.1, new Rng(0)); // [2, 3, 4, 4]
 * console.log(noisy.shape, addInputNoise(b, images, 0, new Rng(0)) === images); // [2, 3, 4, 4] true
 * ```
 */
export function addInputNoise(
  b: Backend,
  x: Tensor,
  sigma: number,
  rng: Rng,
  shard?: { offset: number; total: number },
): Tensor {
  if (sigma <= 0) return x;
  const [n, ...image] = x.shape;
  let per = 1;
  for (const d of image) per *= d;
  // Under data parallelism, noise for the whole global batch is drawn and this rank's slice kept.
  const { offset, total } = shard ?? { offset: 0, total: n };
  const drawn = rng.normal(total * per).subarray(offset * per, (offset + n) * per);
  return b.add(x, b.tensor(drawn.map((v) => v * sigma), x.shape));
}

/**
 * Mean of sigmoid(logits): the discriminator's average "real" probability, D(x) or D(G(z)),
 * as the tutorial logs it. Read back to the host; no gradient.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { meanProbability } from "./loss.ts";
 * using b = await createBackend("tfjs-cpu");
 * const dReal = meanProbability(b, b.tensor([-2, 2], [2, 1])); // (sigmoid(-2) + sigmoid(2)) / 2
 * console.log(dReal.toFixed(4)); // 0.5000
 * ```
 */
export function meanProbability(b: Backend, logits: Tensor): number {
  return b.scope(() => b.read(b.mean(b.sigmoid(b.detach(logits))))[0]);
}
