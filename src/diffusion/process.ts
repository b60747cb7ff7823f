/**
 * The Gaussian diffusion process of Ho et al. 2020 on a backend: the forward process
 * q(x_t | x_0) (eq. 4), its posterior q(x_{t-1} | x_t, x_0) (eqs. 6-7) and the reverse-process
 * mean and variance for an epsilon-predicting model (eq. 11). Timesteps are per sample.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import type { Schedule } from "./schedule.ts";

/**
 * Variance sigma_t^2 of the reverse process p(x_{t-1} | x_t) (Ho et al. 2020 Sec. 3.2):
 * "beta" (sigma_t^2 = beta_t, optimal for x_0 ~ N(0, I)) or "posterior"
 * (sigma_t^2 = betaTilde_t, optimal for a deterministic x_0).
 */
export type VarianceType = "beta" | "posterior";

/** A Gaussian over images by its mean, variance and log-variance, each broadcastable to x. */
export interface Gaussian {
  /** The mean, [B, C, H, W]. */
  mean: Tensor;
  /** The variance, broadcastable to the mean. */
  variance: Tensor;
  /** log of {@link Gaussian.variance}. */
  logVariance: Tensor;
}

/**
 * Names of the per-timestep constants {@link DiffusionProcess.extract} can gather: the
 * {@link Schedule}'s arrays plus log beta_t, 1/sqrt(alphaBar_t), sqrt(1/alphaBar_t - 1),
 * 1/sqrt(alpha_t), the eps coefficient beta_t / sqrt(1 - alphaBar_t) and the posterior's
 * variance, clipped log-variance and two mean coefficients (Ho et al. 2020 eq. 7).
 */
export type ScheduleConstant =
  | "betas"
  | "logBetas"
  | "alphaBar"
  | "alphaBarPrev"
  | "sqrtAlphaBar"
  | "sqrtOneMinusAlphaBar"
  | "sqrtRecipAlphaBar"
  | "sqrtRecipAlphaBarMinusOne"
  | "sqrtRecipAlphas"
  | "epsilonCoef"
  | "posteriorVariance"
  | "posteriorLogVarianceClipped"
  | "posteriorMeanCoef1"
  | "posteriorMeanCoef2";

/** Per-timestep constants uploaded to the backend, each float32 [T]. */
type ScheduleTensors = Record<ScheduleConstant, Tensor>;

/**
 * Holds a {@link Schedule} on a backend and evaluates the diffusion formulas with one timestep
 * per sample (`t` is int32 [B], 0-based: index i is the paper's t = i + 1).
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { makeSchedule } from "./schedule.ts";
 * import { DiffusionProcess } from "./process.ts";
 * using backend = await createBackend("tfjs-cpu");
 * using process = new DiffusionProcess(backend, makeSchedule({ kind: "linear", timesteps: 1000 }));
 * const x0 = backend.zeros([2, 3, 8, 8]);
 * const t = backend.tensor([0, 999], [2], "int32");
 * const xt = process.qSample(x0, t, backend.full([2, 3, 8, 8], 1)); // [2, 3, 8, 8]
 * ```
 */
export class DiffusionProcess {
  /** T, the number of diffusion steps. */
  readonly timesteps: number;
  readonly #tensors: ScheduleTensors;

  /** Uploads `schedule`'s per-timestep constants to `backend`. */
  constructor(readonly backend: Backend, readonly schedule: Schedule) {
    this.timesteps = schedule.timesteps;
    const s = schedule;
    const derived = (f: (i: number) => number) =>
      Float64Array.from({ length: s.timesteps }, (_, i) => f(i));
    const host: Record<keyof ScheduleTensors, Float64Array> = {
      betas: s.betas,
      logBetas: derived((i) => Math.log(s.betas[i])),
      alphaBar: s.alphaBar,
      alphaBarPrev: s.alphaBarPrev,
      sqrtAlphaBar: s.sqrtAlphaBar,
      sqrtOneMinusAlphaBar: s.sqrtOneMinusAlphaBar,
      sqrtRecipAlphaBar: derived((i) => 1 / Math.sqrt(s.alphaBar[i])),
      sqrtRecipAlphaBarMinusOne: derived((i) => Math.sqrt(1 / s.alphaBar[i] - 1)),
      sqrtRecipAlphas: derived((i) => 1 / Math.sqrt(s.alphas[i])),
      epsilonCoef: derived((i) => s.betas[i] / s.sqrtOneMinusAlphaBar[i]),
      posteriorVariance: s.posteriorVariance,
      posteriorLogVarianceClipped: s.posteriorLogVarianceClipped,
      posteriorMeanCoef1: s.posteriorMeanCoef1,
      posteriorMeanCoef2: s.posteriorMeanCoef2,
    };
    const upload = (a: Float64Array) =>
      backend.scope(() =>
        backend.variable(backend.tensor(Float32Array.from(a), [a.length]), false)
      );
    this.#tensors = Object.fromEntries(
      Object.entries(host).map(([k, v]) => [k, upload(v)]),
    ) as unknown as ScheduleTensors;
  }

  /**
   * Gathers `name`[t] for each sample and shapes it [B, 1, 1, 1] (ones for each dim of `like`
   * after the first) so it broadcasts over an image batch.
   */
  extract(name: ScheduleConstant, t: Tensor, like: Tensor): Tensor {
    const b = this.backend;
    const values = b.gather(this.#tensors[name], t, 0); // [B]
    return b.reshape(values, [t.shape[0], ...like.shape.slice(1).map(() => 1)]);
  }

  /**
   * Samples x_t ~ q(x_t | x_0) = N(sqrt(alphaBar_t) x_0, (1 - alphaBar_t) I) with the given
   * noise (eq. 4, reparameterised as in Algorithm 1). x0, noise [B, ...]; t int32 [B].
   */
  qSample(x0: Tensor, t: Tensor, noise: Tensor): Tensor {
    const b = this.backend;
    // eq. 4: x_t = sqrt(alphaBar_t) x_0 + sqrt(1 - alphaBar_t) eps
    return b.add(
      b.mul(this.extract("sqrtAlphaBar", t, x0), x0),
      b.mul(this.extract("sqrtOneMinusAlphaBar", t, x0), noise),
    );
  }

  /** Mean, variance and log-variance of q(x_t | x_0) (eq. 4). */
  qMeanVariance(x0: Tensor, t: Tensor): Gaussian {
    const b = this.backend;
    const variance = b.add(b.neg(this.extract("alphaBar", t, x0)), 1); // 1 - alphaBar_t
    return {
      mean: b.mul(this.extract("sqrtAlphaBar", t, x0), x0),
      variance,
      logVariance: b.log(variance),
    };
  }

  /** The posterior q(x_{t-1} | x_t, x_0) = N(muTilde_t, betaTilde_t I) (eqs. 6-7). */
  posteriorMeanVariance(x0: Tensor, xt: Tensor, t: Tensor): Gaussian {
    const b = this.backend;
    // eq. 7: muTilde_t(x_t, x_0) = coef1 x_0 + coef2 x_t
    const mean = b.add(
      b.mul(this.extract("posteriorMeanCoef1", t, x0), x0),
      b.mul(this.extract("posteriorMeanCoef2", t, xt), xt),
    );
    return {
      mean,
      variance: this.extract("posteriorVariance", t, x0),
      logVariance: this.extract("posteriorLogVarianceClipped", t, x0),
    };
  }

  /** x_0 implied by x_t and a noise prediction: inverts eq. 4 (used in eq. 9 / 11). */
  predictX0FromEpsilon(xt: Tensor, t: Tensor, epsilon: Tensor): Tensor {
    const b = this.backend;
    // x_0 = (x_t - sqrt(1 - alphaBar_t) eps) / sqrt(alphaBar_t)
    return b.sub(
      b.mul(this.extract("sqrtRecipAlphaBar", t, xt), xt),
      b.mul(this.extract("sqrtRecipAlphaBarMinusOne", t, xt), epsilon),
    );
  }

  /** sigma_t^2 and log sigma_t^2 of the reverse process for the chosen {@link VarianceType}. */
  reverseVariance(t: Tensor, like: Tensor, varianceType: VarianceType): {
    variance: Tensor;
    logVariance: Tensor;
  } {
    if (varianceType === "beta") {
      return {
        variance: this.extract("betas", t, like),
        logVariance: this.extract("logBetas", t, like),
      };
    }
    return {
      variance: this.extract("posteriorVariance", t, like),
      logVariance: this.extract("posteriorLogVarianceClipped", t, like),
    };
  }

  /**
   * p(x_{t-1} | x_t) of an epsilon-predicting model. Without clipping the mean is eq. 11,
   * mu = (x_t - beta_t / sqrt(1 - alphaBar_t) eps) / sqrt(alpha_t); with `clipX0` the predicted
   * x_0 is clamped to [-1, 1] and the mean is the posterior mean of eq. 7 at that x_0 (the two
   * agree without clipping).
   */
  pMeanVariance(
    epsilon: Tensor,
    xt: Tensor,
    t: Tensor,
    varianceType: VarianceType,
    clipX0 = false,
  ): Gaussian {
    const b = this.backend;
    let mean: Tensor;
    if (clipX0) {
      const x0 = b.clamp(this.predictX0FromEpsilon(xt, t, epsilon), -1, 1);
      mean = this.posteriorMeanVariance(x0, xt, t).mean;
    } else {
      // eq. 11
      mean = b.mul(
        this.extract("sqrtRecipAlphas", t, xt),
        b.sub(xt, b.mul(this.extract("epsilonCoef", t, xt), epsilon)),
      );
    }
    return { mean, ...this.reverseVariance(t, xt, varianceType) };
  }

  /** Frees the schedule tensors. */
  dispose(): void {
    for (const t of Object.values(this.#tensors)) (t as Tensor).dispose();
  }

  /** {@link DiffusionProcess.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
