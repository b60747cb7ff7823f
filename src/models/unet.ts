/**
 * The DDPM U-Net family of dome272's Diffusion-Models-pytorch (after Ho et al. 2020): DoubleConv
 * blocks with GroupNorm(1) and GELU, max-pool downsampling, bilinear upsampling with skip
 * concatenation, self-attention after every down and up block, and a sinusoidal time embedding
 * (plus an optional class embedding) injected per block through SiLU + Linear.
 *
 * Parameters carry the PyTorch module names of that architecture (`inc.double_conv.0.weight`,
 * `down1.maxpool_conv.1.double_conv.0.weight`, `sa1.mha.in_proj_weight`, `label_emb.weight`),
 * so a state_dict of bench/reference/unet.py loads one-to-one.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import type { Rng } from "../core/rng.ts";
import type { ParamStore } from "../nn/params.ts";
import {
  conv2d,
  defineConv2d,
  defineEmbedding,
  defineLinear,
  defineMultiheadAttention,
  defineNormAffine,
  groupNorm,
  layerNorm,
  linear,
  multiheadSelfAttention,
} from "../nn/layers.ts";

/** Shape of a U-Net of this family. */
export interface UNetConfig {
  /** Image channels in and out (3 for RGB). */
  channels: number;
  /** Width of `inc` followed by the output width of each Down block (one per level). */
  widths: number[];
  /** Widths inside the bottleneck: last width -> b[0] -> ... -> b[n-1] -> last width. */
  bottleneck: number[];
  /** Dimension of the sinusoidal time embedding (256 in the reference). */
  timeDim: number;
  /** Classes for conditioning (0 = unconditional); the embedding has one extra "null" row. */
  numClasses: number;
  /** Attention heads of every SelfAttention block (4 in the reference). */
  heads: number;
}

/** Presets of the study: widths of `inc` and each Down level, and the bottleneck. */
export const UNET_PRESETS = {
  /** 3 down / 3 up levels; 23,332,739 parameters unconditional. */
  "unet-3x": { widths: [64, 128, 256, 256], bottleneck: [512, 512] },
  /** 2 down / 2 up levels, bottleneck 256 -> 512 -> 256. */
  "unet-2xud": { widths: [64, 128, 256], bottleneck: [512] },
  /** unet-2xud with every width halved. */
  "unet-2xud-half": { widths: [32, 64, 128], bottleneck: [256] },
} as const satisfies Record<string, { widths: readonly number[]; bottleneck: readonly number[] }>;

/** Name of a U-Net preset. */
export type UNetPreset = keyof typeof UNET_PRESETS;

/** Channel plan of the Up blocks: [in, out] of up1..upL (input = below + skip channels). */
function upChannels(widths: readonly number[]): [number, number][] {
  const levels = widths.length - 1;
  const plan: [number, number][] = [];
  let below = widths[levels];
  for (let k = 1; k <= levels; k++) {
    const skip = widths[levels - k];
    const out = k < levels ? widths[levels - k - 1] : widths[0];
    plan.push([below + skip, out]);
    below = out;
  }
  return plan;
}

// ---- building blocks: define (names + init) and forward ----

function defineDoubleConv(
  s: ParamStore,
  rng: Rng,
  name: string,
  cin: number,
  cout: number,
  mid = cout,
): void {
  defineConv2d(s, rng, `${name}.double_conv.0`, cin, mid, 3, false);
  defineNormAffine(s, `${name}.double_conv.1`, mid);
  defineConv2d(s, rng, `${name}.double_conv.3`, mid, cout, 3, false);
  defineNormAffine(s, `${name}.double_conv.4`, cout);
}

/** conv3x3 -> GroupNorm(1) -> GELU -> conv3x3 -> GroupNorm(1); residual: GELU(x + that). */
function doubleConv(b: Backend, p: ParamStore, name: string, x: Tensor, residual = false): Tensor {
  let h = conv2d(b, p, `${name}.double_conv.0`, x, { padding: 1 });
  h = b.gelu(groupNorm(b, p, `${name}.double_conv.1`, h, 1));
  h = conv2d(b, p, `${name}.double_conv.3`, h, { padding: 1 });
  h = groupNorm(b, p, `${name}.double_conv.4`, h, 1);
  return residual ? b.gelu(b.add(x, h)) : h;
}

/** SiLU + Linear of the time embedding, added per channel. emb [B, D], x [B, C, H, W]. */
function addEmbedding(b: Backend, p: ParamStore, name: string, x: Tensor, emb: Tensor): Tensor {
  const e = linear(b, p, `${name}.emb_layer.1`, b.silu(emb)); // [B, C]
  return b.add(x, b.reshape(e, [x.shape[0], x.shape[1], 1, 1]));
}

function defineSelfAttention(s: ParamStore, rng: Rng, name: string, c: number): void {
  defineMultiheadAttention(s, rng, `${name}.mha`, c);
  defineNormAffine(s, `${name}.ln`, c);
  defineNormAffine(s, `${name}.ff_self.0`, c);
  defineLinear(s, rng, `${name}.ff_self.1`, c, c);
  defineLinear(s, rng, `${name}.ff_self.3`, c, c);
}

/**
 * Pre-LayerNorm multi-head self-attention over the H*W positions plus a feed-forward
 * residual. Unlike the reference, the spatial size comes from the input, not the constructor.
 */
function selfAttention(b: Backend, p: ParamStore, name: string, x: Tensor, heads: number): Tensor {
  const [n, c, h, w] = x.shape;
  const tokens = b.permute(b.reshape(x, [n, c, h * w]), [0, 2, 1]); // [B, HW, C]
  const attended = b.add(
    multiheadSelfAttention(b, p, `${name}.mha`, layerNorm(b, p, `${name}.ln`, tokens), heads),
    tokens,
  );
  let ff = layerNorm(b, p, `${name}.ff_self.0`, attended);
  ff = linear(b, p, `${name}.ff_self.3`, b.gelu(linear(b, p, `${name}.ff_self.1`, ff)));
  const out = b.add(ff, attended); // [B, HW, C]
  return b.reshape(b.permute(out, [0, 2, 1]), [n, c, h, w]);
}

/**
 * Creates the parameters of a U-Net in PyTorch state_dict order.
 *
 * @example
 * ```ts
 * import { Rng } from "../core/rng.ts";
 * import { ParamStore } from "../nn/params.ts";
 * import { countParams } from "./denoiser.ts";
 * import { defineUNet, unetConfig } from "./unet.ts";
 * const store = ParamStore.shapeOnly(); // names and shapes only; pass a backend for weights
 * defineUNet(store, new Rng(0), unetConfig("unet-2xud-half", { channels: 3, numClasses: 0 }));
 * console.log(store.count() === countParams("unet-2xud-half", 0)); // true
 * ```
 */
export function defineUNet(s: ParamStore, rng: Rng, cfg: UNetConfig): void {
  const { widths, bottleneck, timeDim } = cfg;
  const levels = widths.length - 1;
  defineDoubleConv(s, rng, "inc", cfg.channels, widths[0]);
  for (let l = 1; l <= levels; l++) {
    const [cin, cout] = [widths[l - 1], widths[l]];
    defineDoubleConv(s, rng, `down${l}.maxpool_conv.1`, cin, cin);
    defineDoubleConv(s, rng, `down${l}.maxpool_conv.2`, cin, cout);
    defineLinear(s, rng, `down${l}.emb_layer.1`, timeDim, cout);
    defineSelfAttention(s, rng, `sa${l}`, cout);
  }
  const botWidths = [widths[levels], ...bottleneck, widths[levels]];
  for (let i = 1; i < botWidths.length; i++) {
    defineDoubleConv(s, rng, `bot${i}`, botWidths[i - 1], botWidths[i]);
  }
  upChannels(widths).forEach(([cin, cout], k) => {
    defineDoubleConv(s, rng, `up${k + 1}.conv.0`, cin, cin);
    defineDoubleConv(s, rng, `up${k + 1}.conv.1`, cin, cout, Math.floor(cin / 2));
    defineLinear(s, rng, `up${k + 1}.emb_layer.1`, timeDim, cout);
    defineSelfAttention(s, rng, `sa${levels + k + 1}`, cout);
  });
  defineConv2d(s, rng, "outc", widths[0], cfg.channels, 1);
  if (cfg.numClasses > 0) defineEmbedding(s, rng, "label_emb", cfg.numClasses + 1, timeDim);
}

/**
 * Predicts the noise: x [B, C, H, W] (H, W divisible by 2^levels), temb [B, timeDim] the
 * time embedding (plus class embedding) -> [B, C, H, W].
 */
export function unetForward(
  b: Backend,
  p: ParamStore,
  cfg: UNetConfig,
  x: Tensor,
  temb: Tensor,
): Tensor {
  const levels = cfg.widths.length - 1;
  const skips = [doubleConv(b, p, "inc", x)]; // [B, w0, H, W]
  let h = skips[0];
  for (let l = 1; l <= levels; l++) {
    h = b.maxPool2d(h, 2, 2);
    h = doubleConv(b, p, `down${l}.maxpool_conv.1`, h, true);
    h = doubleConv(b, p, `down${l}.maxpool_conv.2`, h);
    h = addEmbedding(b, p, `down${l}`, h, temb);
    h = selfAttention(b, p, `sa${l}`, h, cfg.heads); // [B, w_l, H/2^l, W/2^l]
    skips.push(h);
  }
  for (let i = 1; i <= cfg.bottleneck.length + 1; i++) h = doubleConv(b, p, `bot${i}`, h);
  for (let k = 1; k <= levels; k++) {
    const skip = skips[levels - k];
    h = b.interpolateBilinear(h, [skip.shape[2], skip.shape[3]], true);
    h = b.cat([skip, h], 1);
    h = doubleConv(b, p, `up${k}.conv.0`, h, true);
    h = doubleConv(b, p, `up${k}.conv.1`, h);
    h = addEmbedding(b, p, `up${k}`, h, temb);
    h = selfAttention(b, p, `sa${levels + k}`, h, cfg.heads);
  }
  return conv2d(b, p, "outc", h);
}

/**
 * The config of a preset, optionally with widths rescaled to a different base width.
 *
 * @example
 * ```ts
 * import { unetConfig } from "./unet.ts";
 * console.log(unetConfig("unet-2xud-half", { channels: 3, numClasses: 0 }).widths); // [32, 64, 128]
 * ```
 */
export function unetConfig(
  preset: UNetPreset,
  options: { channels: number; numClasses: number; baseWidth?: number },
): UNetConfig {
  const spec = UNET_PRESETS[preset];
  const scale = (options.baseWidth ?? spec.widths[0]) / spec.widths[0];
  const scaled = (ws: readonly number[]) => ws.map((w) => Math.round(w * scale));
  const widths = scaled(spec.widths);
  for (const w of [...widths, ...scaled(spec.bottleneck)]) {
    if (w < 4 || w % 4 !== 0) {
      throw new RangeError(`${preset}: base width gives width ${w}, not a multiple of 4 heads`);
    }
  }
  return {
    channels: options.channels,
    widths,
    bottleneck: scaled(spec.bottleneck),
    timeDim: 256,
    numClasses: options.numClasses,
    heads: 4,
  };
}
