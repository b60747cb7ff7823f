/**
 * PyTorch's default initialisations, drawn from the host {@link Rng} so every backend starts
 * from the same weights under the same seed.
 *
 * @module
 */
import type { Rng } from "../core/rng.ts";
import { sizeOf } from "../backend/backend.ts";

/**
 * fan_in as torch.nn.init computes it: dim 1 times the receptive field. For a conv weight
 * [Cout, Cin, k, k] that is Cin*k*k; for a transposed conv [Cin, Cout, k, k] it is Cout*k*k.
 */
export function fanIn(shape: readonly number[]): number {
  return shape.length < 2 ? shape[0] : shape[1] * sizeOf(shape.slice(2));
}

/** U(-bound, bound). */
export function uniformInit(rng: Rng, shape: readonly number[], bound: number): Float32Array {
  return rng.uniformArray(sizeOf(shape), -bound, bound);
}

/**
 * nn.Linear / nn.Conv2d / nn.ConvTranspose2d default weight init: kaiming_uniform_(a=sqrt(5)),
 * which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
 */
export function torchDefaultWeight(rng: Rng, shape: readonly number[]): Float32Array {
  return uniformInit(rng, shape, 1 / Math.sqrt(fanIn(shape)));
}

/** nn.Linear / nn.Conv2d default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of the weight. */
export function torchDefaultBias(
  rng: Rng,
  weightShape: readonly number[],
  n: number,
): Float32Array {
  return uniformInit(rng, [n], 1 / Math.sqrt(fanIn(weightShape)));
}

/** xavier_uniform_: U(-a, a), a = sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform(rng: Rng, shape: readonly number[]): Float32Array {
  const receptive = sizeOf(shape.slice(2));
  const fanOut = shape[0] * receptive;
  return uniformInit(rng, shape, Math.sqrt(6 / (fanIn(shape) + fanOut)));
}

/** N(mean, std). */
export function normalInit(rng: Rng, shape: readonly number[], mean = 0, std = 1): Float32Array {
  const out = rng.normal(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = mean + std * out[i];
  return out;
}

/** A constant. */
export function constantInit(shape: readonly number[], value: number): Float32Array {
  return new Float32Array(sizeOf(shape)).fill(value);
}
