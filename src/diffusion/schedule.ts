/**
 * Noise schedules of DDPM, computed once on the host in Float64 (Ho et al. 2020, "Denoising
 * Diffusion Probabilistic Models"; cosine: Nichol & Dhariwal 2021, "Improved Denoising Diffusion
 * Probabilistic Models").
 *
 * Index convention: array index `i` in 0..T-1 is the paper's timestep t = i + 1, so `betas[0]` is
 * beta_1 and `alphaBar[T - 1]` is alphaBar_T. Models receive the 0-based index.
 *
 * @module
 */

/** Which beta schedule. */
export type ScheduleKind = "linear" | "cosine";

/** Options of {@link makeSchedule}. */
export interface ScheduleOptions {
  /** "linear" (Ho et al. 2020 Sec. 4) or "cosine" (Nichol & Dhariwal 2021 eq. 17). */
  kind: ScheduleKind;
  /** Number of diffusion steps T (e.g. 1000). */
  timesteps: number;
}

/** Every per-timestep constant the forward process, losses and samplers need, each [T]. */
export interface Schedule {
  /** The beta schedule it was built from. */
  readonly kind: ScheduleKind;
  /** T. */
  readonly timesteps: number;
  /** beta_t. */
  readonly betas: Float64Array;
  /** alpha_t = 1 - beta_t. */
  readonly alphas: Float64Array;
  /** alphaBar_t = prod_{s<=t} alpha_s; q(x_t|x_0) has variance 1 - alphaBar_t. */
  readonly alphaBar: Float64Array;
  /** alphaBar_{t-1}, with alphaBar_0 = 1. */
  readonly alphaBarPrev: Float64Array;
  /** sqrt(alphaBar_t). */
  readonly sqrtAlphaBar: Float64Array;
  /** sqrt(1 - alphaBar_t). */
  readonly sqrtOneMinusAlphaBar: Float64Array;
  /** betaTilde_t of eq. 7 (0 at t = 1). */
  readonly posteriorVariance: Float64Array;
  /** log betaTilde_t with the t = 1 entry replaced by t = 2's (it would be log 0). */
  readonly posteriorLogVarianceClipped: Float64Array;
  /** Coefficient of x_0 in muTilde_t (eq. 7). */
  readonly posteriorMeanCoef1: Float64Array;
  /** Coefficient of x_t in muTilde_t (eq. 7). */
  readonly posteriorMeanCoef2: Float64Array;
}

/** Linear schedule endpoints of Ho et al. 2020 Sec. 4. */
export const LINEAR_BETA_START = 1e-4;
export const LINEAR_BETA_END = 0.02;
/** Cosine schedule offset s of Nichol & Dhariwal 2021 eq. 17. */
export const COSINE_OFFSET = 0.008;
/** Upper bound of cosine betas (Nichol & Dhariwal 2021 Sec. 3.2) to avoid singularities at t=T. */
export const COSINE_MAX_BETA = 0.999;

/**
 * beta_1..beta_T of the chosen kind.
 *
 * @example
 * ```ts
 * import { betaSchedule } from "./schedule.ts";
 * const betas = betaSchedule("linear", 1000);
 * console.log(betas[0], betas[999]); // 0.0001 0.02
 * ```
 */
export function betaSchedule(kind: ScheduleKind, timesteps: number): Float64Array {
  if (!Number.isInteger(timesteps) || timesteps < 2) {
    throw new RangeError(`timesteps must be an integer >= 2, got ${timesteps}`);
  }
  const betas = new Float64Array(timesteps);
  if (kind === "linear") {
    // Ho et al. 2020 Sec. 4: betas increase linearly from 1e-4 to 0.02.
    const step = (LINEAR_BETA_END - LINEAR_BETA_START) / (timesteps - 1);
    for (let i = 0; i < timesteps; i++) betas[i] = LINEAR_BETA_START + i * step;
  } else if (kind === "cosine") {
    // Nichol & Dhariwal 2021 eq. 17: alphaBar_t = f(t) / f(0), f(t) = cos((t/T + s)/(1 + s) * pi/2)^2
    const f = (t: number) =>
      Math.cos(((t / timesteps + COSINE_OFFSET) / (1 + COSINE_OFFSET)) * Math.PI / 2) ** 2;
    for (let i = 0; i < timesteps; i++) {
      // beta_t = 1 - alphaBar_t / alphaBar_{t-1}, clipped at 0.999 (Sec. 3.2)
      betas[i] = Math.min(1 - f(i + 1) / f(i), COSINE_MAX_BETA);
    }
  } else {
    throw new RangeError(`unknown schedule "${kind}": use "linear" or "cosine"`);
  }
  return betas;
}

/**
 * Builds a {@link Schedule}: betas of the chosen kind and every derived constant.
 *
 * @example
 * ```ts
 * import { makeSchedule } from "./schedule.ts";
 * const s = makeSchedule({ kind: "cosine", timesteps: 1000 });
 * console.log(s.alphaBar[999] < 1e-4); // true: x_T is almost pure noise
 * ```
 */
export function makeSchedule(options: ScheduleOptions): Schedule {
  const { kind, timesteps } = options;
  const betas = betaSchedule(kind, timesteps);
  const n = timesteps;
  const alphas = new Float64Array(n);
  const alphaBar = new Float64Array(n);
  const alphaBarPrev = new Float64Array(n);
  const sqrtAlphaBar = new Float64Array(n);
  const sqrtOneMinusAlphaBar = new Float64Array(n);
  const posteriorVariance = new Float64Array(n);
  const posteriorLogVarianceClipped = new Float64Array(n);
  const posteriorMeanCoef1 = new Float64Array(n);
  const posteriorMeanCoef2 = new Float64Array(n);
  let product = 1;
  for (let i = 0; i < n; i++) {
    alphas[i] = 1 - betas[i]; // alpha_t := 1 - beta_t (Ho et al. 2020, above eq. 4)
    alphaBarPrev[i] = product;
    product *= alphas[i]; // alphaBar_t := prod_{s=1}^t alpha_s (above eq. 4)
    alphaBar[i] = product;
    sqrtAlphaBar[i] = Math.sqrt(product); // eq. 4 mean factor
    sqrtOneMinusAlphaBar[i] = Math.sqrt(1 - product); // eq. 4 standard deviation
    // eq. 7: betaTilde_t = (1 - alphaBar_{t-1}) / (1 - alphaBar_t) * beta_t
    posteriorVariance[i] = (1 - alphaBarPrev[i]) / (1 - product) * betas[i];
    // eq. 7: muTilde_t = sqrt(alphaBar_{t-1}) beta_t / (1 - alphaBar_t) x_0
    //                  + sqrt(alpha_t) (1 - alphaBar_{t-1}) / (1 - alphaBar_t) x_t
    posteriorMeanCoef1[i] = Math.sqrt(alphaBarPrev[i]) * betas[i] / (1 - product);
    posteriorMeanCoef2[i] = Math.sqrt(alphas[i]) * (1 - alphaBarPrev[i]) / (1 - product);
  }
  // betaTilde_1 = 0, so its log is clipped to betaTilde_2's (as in Ho et al.'s code).
  for (let i = 0; i < n; i++) {
    posteriorLogVarianceClipped[i] = Math.log(posteriorVariance[i === 0 ? 1 : i]);
  }
  return {
    kind,
    timesteps,
    betas,
    alphas,
    alphaBar,
    alphaBarPrev,
    sqrtAlphaBar,
    sqrtOneMinusAlphaBar,
    posteriorVariance,
    posteriorLogVarianceClipped,
    posteriorMeanCoef1,
    posteriorMeanCoef2,
  };
}
