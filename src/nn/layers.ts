/**
 * Layers as pairs of plain functions: `defineX` creates the parameters under PyTorch's
 * names with PyTorch's default initialisation, `x` runs the layer from a {@link ParamStore}.
 * A model is a `define` function plus a `forward` function; nothing here knows the backend.
 *
 * @module
 */
import type { Backend, ConvOptions, Tensor } from "../backend/backend.ts";
import type { Rng } from "../core/rng.ts";
import type { ParamStore } from "./params.ts";
import {
  constantInit,
  normalInit,
  torchDefaultBias,
  torchDefaultWeight,
  xavierUniform,
} from "./init.ts";

/** nn.Conv2d(cin, cout, k, bias): `name.weight` [cout, cin, k, k], `name.bias` [cout]. */
export function defineConv2d(
  store: ParamStore,
  rng: Rng,
  name: string,
  cin: number,
  cout: number,
  k: number,
  bias = true,
): void {
  const shape = [cout, cin, k, k];
  store.add(`${name}.weight`, shape, () => torchDefaultWeight(rng, shape));
  if (bias) store.add(`${name}.bias`, [cout], () => torchDefaultBias(rng, shape, cout));
}

/** Runs a conv defined by {@link defineConv2d}. x [N, Cin, H, W] -> [N, Cout, H', W']. */
export function conv2d(
  b: Backend,
  p: ParamStore,
  name: string,
  x: Tensor,
  opts?: ConvOptions,
): Tensor {
  const bias = p.has(`${name}.bias`) ? p.get(`${name}.bias`) : undefined;
  return b.conv2d(x, p.get(`${name}.weight`), bias, opts);
}

/** nn.ConvTranspose2d(cin, cout, k, bias): `name.weight` [cin, cout, k, k]. */
export function defineConvTranspose2d(
  store: ParamStore,
  rng: Rng,
  name: string,
  cin: number,
  cout: number,
  k: number,
  bias = true,
): void {
  const shape = [cin, cout, k, k];
  store.add(`${name}.weight`, shape, () => torchDefaultWeight(rng, shape));
  if (bias) store.add(`${name}.bias`, [cout], () => torchDefaultBias(rng, shape, cout));
}

/** Runs a transposed conv defined by {@link defineConvTranspose2d}. */
export function convTranspose2d(
  b: Backend,
  p: ParamStore,
  name: string,
  x: Tensor,
  opts?: ConvOptions,
): Tensor {
  const bias = p.has(`${name}.bias`) ? p.get(`${name}.bias`) : undefined;
  return b.convTranspose2d(x, p.get(`${name}.weight`), bias, opts);
}

/** nn.Linear(inF, outF, bias): `name.weight` [out, in], `name.bias` [out]. */
export function defineLinear(
  store: ParamStore,
  rng: Rng,
  name: string,
  inFeatures: number,
  outFeatures: number,
  bias = true,
): void {
  const shape = [outFeatures, inFeatures];
  store.add(`${name}.weight`, shape, () => torchDefaultWeight(rng, shape));
  if (bias) {
    store.add(`${name}.bias`, [outFeatures], () => torchDefaultBias(rng, shape, outFeatures));
  }
}

/** Runs a linear layer defined by {@link defineLinear}. x [..., in] -> [..., out]. */
export function linear(b: Backend, p: ParamStore, name: string, x: Tensor): Tensor {
  const bias = p.has(`${name}.bias`) ? p.get(`${name}.bias`) : undefined;
  return b.linear(x, p.get(`${name}.weight`), bias);
}

/** nn.GroupNorm / nn.LayerNorm affine parameters: weight 1, bias 0, both [c]. */
export function defineNormAffine(store: ParamStore, name: string, c: number): void {
  store.add(`${name}.weight`, [c], () => constantInit([c], 1));
  store.add(`${name}.bias`, [c], () => constantInit([c], 0));
}

/** nn.GroupNorm(groups, C) over x [N, C, H, W]; PyTorch's eps 1e-5. */
export function groupNorm(
  b: Backend,
  p: ParamStore,
  name: string,
  x: Tensor,
  groups: number,
): Tensor {
  return b.groupNorm(x, groups, p.get(`${name}.weight`), p.get(`${name}.bias`), 1e-5);
}

/** nn.LayerNorm(D) over the last dim; PyTorch's eps 1e-5. */
export function layerNorm(b: Backend, p: ParamStore, name: string, x: Tensor): Tensor {
  return b.layerNorm(x, p.get(`${name}.weight`), p.get(`${name}.bias`), 1e-5);
}

/**
 * nn.BatchNorm2d(C): weight, bias, and buffers running_mean, running_var. The weight init is
 * overridable because the DCGAN tutorial draws it from N(1, 0.02).
 */
export function defineBatchNorm(
  store: ParamStore,
  name: string,
  c: number,
  weight: Float32Array = constantInit([c], 1),
  affine = true,
): void {
  if (affine) {
    store.add(`${name}.weight`, [c], weight);
    store.add(`${name}.bias`, [c], () => constantInit([c], 0));
  }
  store.add(`${name}.running_mean`, [c], () => constantInit([c], 0), false);
  store.add(`${name}.running_var`, [c], () => constantInit([c], 1), false);
}

/** Runs a BatchNorm defined by {@link defineBatchNorm}; `eps` 1e-5 as PyTorch unless given. */
export function batchNorm(
  b: Backend,
  p: ParamStore,
  name: string,
  x: Tensor,
  training: boolean,
  eps = 1e-5,
): Tensor {
  const affine = p.has(`${name}.weight`);
  return b.batchNorm(
    x,
    affine ? p.get(`${name}.weight`) : undefined,
    affine ? p.get(`${name}.bias`) : undefined,
    p.get(`${name}.running_mean`),
    p.get(`${name}.running_var`),
    { training, momentum: 0.1, eps },
  );
}

/** nn.Embedding(n, dim): `name.weight` [n, dim] ~ N(0, 1) unless `std` is given. */
export function defineEmbedding(
  store: ParamStore,
  rng: Rng,
  name: string,
  n: number,
  dim: number,
  std = 1,
): void {
  store.add(`${name}.weight`, [n, dim], () => normalInit(rng, [n, dim], 0, std));
}

/** Looks up rows of an embedding. labels int32 [B] -> [B, dim]. */
export function embedding(b: Backend, p: ParamStore, name: string, labels: Tensor): Tensor {
  return b.gather(p.get(`${name}.weight`), labels, 0);
}

/**
 * nn.MultiheadAttention(dim, heads, batch_first=True): `in_proj_weight` [3D, D] (xavier),
 * `in_proj_bias` [3D] (0), `out_proj.weight` [D, D], `out_proj.bias` [D] (0).
 */
export function defineMultiheadAttention(
  store: ParamStore,
  rng: Rng,
  name: string,
  dim: number,
): void {
  store.add(`${name}.in_proj_weight`, [3 * dim, dim], () => xavierUniform(rng, [3 * dim, dim]));
  store.add(`${name}.in_proj_bias`, [3 * dim], () => constantInit([3 * dim], 0));
  store.add(`${name}.out_proj.weight`, [dim, dim], () => torchDefaultWeight(rng, [dim, dim]));
  store.add(`${name}.out_proj.bias`, [dim], () => constantInit([dim], 0));
}

/** Multi-head self-attention. x [B, L, D] -> [B, L, D]. */
export function multiheadSelfAttention(
  b: Backend,
  p: ParamStore,
  name: string,
  x: Tensor,
  heads: number,
): Tensor {
  const [batch, length, dim] = x.shape;
  const headDim = dim / heads;
  const qkv = b.linear(x, p.get(`${name}.in_proj_weight`), p.get(`${name}.in_proj_bias`)); // [B, L, 3D]
  const split = b.permute(b.reshape(qkv, [batch, length, 3, heads, headDim]), [2, 0, 3, 1, 4]); // [3, B, h, L, d]
  const pick = (i: number) =>
    b.reshape(b.slice(split, [i, 0, 0, 0, 0], [1, -1, -1, -1, -1]), [
      batch,
      heads,
      length,
      headDim,
    ]);
  const attended = b.attention(pick(0), pick(1), pick(2)); // [B, h, L, d]
  const merged = b.reshape(b.permute(attended, [0, 2, 1, 3]), [batch, length, dim]);
  return b.linear(merged, p.get(`${name}.out_proj.weight`), p.get(`${name}.out_proj.bias`));
}
