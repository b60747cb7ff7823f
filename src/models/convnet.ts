/**
 * A small convolutional denoiser without attention: a stride-2 Conv encoder and a
 * ConvTranspose decoder with additive skips, GroupNorm(1) + SiLU, and the time embedding added
 * per block through a Linear of SiLU(embedding). Names match `ConvNet` in
 * bench/reference/unet.py.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import type { Rng } from "../core/rng.ts";
import type { ParamStore } from "../nn/params.ts";
import {
  conv2d,
  convTranspose2d,
  defineConv2d,
  defineConvTranspose2d,
  defineEmbedding,
  defineLinear,
  defineNormAffine,
  groupNorm,
  linear,
} from "../nn/layers.ts";

/** Shape of a {@link convnetForward} model. */
export interface ConvNetConfig {
  /** Image channels in and out. */
  channels: number;
  /** Base width w; the encoder goes w -> 2w -> 4w. */
  width: number;
  /** Dimension of the sinusoidal time embedding. */
  timeDim: number;
  /** Classes for conditioning (0 = unconditional); one extra "null" row. */
  numClasses: number;
}

/** The blocks after `inc`: [conv name, norm name, embedding name, cin, cout]. */
function blocks(w: number): [string, string, string, number, number][] {
  return [
    ["enc1", "norm1", "emb1", w, 2 * w],
    ["enc2", "norm2", "emb2", 2 * w, 4 * w],
    ["mid", "norm3", "emb3", 4 * w, 4 * w],
    ["dec2", "norm4", "emb4", 4 * w, 2 * w],
    ["dec1", "norm5", "emb5", 2 * w, w],
  ];
}

/**
 * Creates the parameters in PyTorch state_dict order.
 *
 * @example
 * ```ts
 * import { Rng } from "../core/rng.ts";
 * import { ParamStore } from "../nn/params.ts";
 * import { defineConvNet } from "./convnet.ts";
 * const store = ParamStore.shapeOnly(); // names and shapes only; pass a backend for weights
 * defineConvNet(store, new Rng(0), { channels: 3, width: 64, timeDim: 256, numClasses: 0 });
 * console.log(store.names()[0], store.shape("inc.weight")); // inc.weight [64, 3, 3, 3]
 * ```
 */
export function defineConvNet(s: ParamStore, rng: Rng, cfg: ConvNetConfig): void {
  defineConv2d(s, rng, "inc", cfg.channels, cfg.width, 3);
  for (const [conv, norm, emb, cin, cout] of blocks(cfg.width)) {
    if (conv.startsWith("dec")) defineConvTranspose2d(s, rng, conv, cin, cout, 4);
    else defineConv2d(s, rng, conv, cin, cout, conv === "mid" ? 3 : 4);
    defineNormAffine(s, norm, cout);
    defineLinear(s, rng, emb, cfg.timeDim, cout);
  }
  defineConv2d(s, rng, "outc", cfg.width, cfg.channels, 3);
  if (cfg.numClasses > 0) defineEmbedding(s, rng, "label_emb", cfg.numClasses + 1, cfg.timeDim);
}

/**
 * Predicts the noise: x [B, C, H, W] (H, W divisible by 4), temb [B, timeDim] -> [B, C, H, W].
 */
export function convnetForward(
  b: Backend,
  p: ParamStore,
  cfg: ConvNetConfig,
  x: Tensor,
  temb: Tensor,
): Tensor {
  const activated = b.silu(temb);
  const block = (h: Tensor, [conv, norm, emb]: [string, string, string, number, number]) => {
    const opts = conv === "mid" ? { padding: 1 } : { stride: 2, padding: 1 };
    const y = conv.startsWith("dec")
      ? convTranspose2d(b, p, conv, h, opts)
      : conv2d(b, p, conv, h, opts);
    const e = linear(b, p, emb, activated); // [B, C]
    const shifted = b.add(
      groupNorm(b, p, norm, y, 1),
      b.reshape(e, [y.shape[0], y.shape[1], 1, 1]),
    );
    return b.silu(shifted);
  };
  const [enc1, enc2, mid, dec2, dec1] = blocks(cfg.width);
  const h0 = b.silu(conv2d(b, p, "inc", x, { padding: 1 })); // [B, w, H, W]
  const h1 = block(h0, enc1); // [B, 2w, H/2, W/2]
  const h2 = block(h1, enc2); // [B, 4w, H/4, W/4]
  let h = b.add(block(h2, mid), h2);
  h = b.add(block(h, dec2), h1); // [B, 2w, H/2, W/2]
  h = b.add(block(h, dec1), h0); // [B, w, H, W]
  return conv2d(b, p, "outc", h, { padding: 1 });
}
