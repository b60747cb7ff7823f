/**
 * The tfjs backend's layers: convolutions (channels-last outputs, custom gradients from
 * tfjs_conv.ts), group/layer/batch norm, pooling and bilinear resizing (on channels-last
 * tensors or per-channel views), attention (grouped when long, tfjs_attention.ts) and the two
 * losses.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import type { BatchNormOptions, Conv2dOptions, ConvOptions, Tensor } from "./backend.ts";
import {
  batchNormTrainWithGrad,
  bceWithLogitsWithGrad,
  matmulWithGrad,
  maxPoolWithGrad,
  normalizeOver,
  padHW,
  perChannel,
  poolScale,
  resizeBilinearWithGrad,
  type Tf,
} from "./tfjs_kernels.ts";
import { conv2dWithGrad, convTranspose2dWithGrad } from "./tfjs_conv.ts";
import { groupedAttention, needsGrouping } from "./tfjs_attention.ts";
import { TfjsOps } from "./tfjs_ops.ts";
import { nchw, nhwc, sameLayout } from "./tfjs_tensor.ts";
import * as V from "./validate.ts";

/** The layers and losses of a tfjs backend. */
export abstract class TfjsNn extends TfjsOps {
  // ---- convolutions ----

  conv2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts: Conv2dOptions = {}): Tensor {
    const inputs = b ? [x, w, b] : [x, w];
    const { stride = 1, padding = 0, activation } = opts;
    const [ph, pw] = typeof padding === "number" ? [padding, padding] : padding;
    V.checkConv2d(x, w, b, { stride, padding: [ph, pw], activation });
    const s = stride;
    return this.run("conv2d", inputs, (xh, wh, bh) => {
      // The conv kernel pads alike on both axes; other padding is added explicitly first.
      const square = ph === pw;
      const xt = square ? nhwc(xh) : tf.pad(nhwc(xh), [[0, 0], [ph, ph], [pw, pw], [0, 0]]);
      let y = conv2dWithGrad(xt, nchw(wh), s, square ? ph : 0); // [N, Ho, Wo, Cout]
      if (bh) y = tf.add(y, bh.tf);
      return { t: activation === "relu" ? tf.relu(y) : y, channelsLast: true };
    });
  }
  convTranspose2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts: ConvOptions = {}): Tensor {
    const inputs = b ? [x, w, b] : [x, w];
    const { stride = 1, padding = 0, outputPadding = 0 } = opts;
    V.checkConvTranspose2d(x, w, b, stride, padding, outputPadding);
    const [s, p, op] = [stride, padding, outputPadding];
    return this.run("convTranspose2d", inputs, (xh, wh, bh) => {
      const y = convTranspose2dWithGrad(nhwc(xh), nchw(wh), s, p, op); // [N, Ho, Wo, Cout]
      return { t: bh ? tf.add(y, bh.tf) : y, channelsLast: true };
    });
  }

  // ---- normalisation ----

  groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    V.checkGroupNorm(x, groups, weight, bias);
    const c = x.shape[1];
    return this.run("groupNorm", [x, weight, bias], (xh, wh, bh) => {
      const xt = xh.tf;
      const n = xt.shape[0];
      if (xh.channelsLast) {
        const [, h, w] = xt.shape as number[];
        const grouped = tf.reshape(xt, [n, h * w, groups, c / groups]); // [N, H*W, G, C/G]
        const xhat = tf.reshape(normalizeOver(grouped, [1, 3], eps), xt.shape);
        return { t: tf.add(tf.mul(xhat, wh.tf), bh.tf), channelsLast: true };
      }
      const grouped = tf.reshape(xt, [n, groups, -1]); // [N, G, C/G * ...]
      const xhat = tf.reshape(normalizeOver(grouped, [2], eps), xt.shape);
      const affineShape = [1, c, ...xt.shape.slice(2).map(() => 1)];
      const y = tf.add(
        tf.mul(xhat, tf.reshape(wh.tf, affineShape)),
        tf.reshape(bh.tf, affineShape),
      );
      return { t: y, channelsLast: false };
    });
  }
  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    V.checkLayerNorm(x, weight, bias);
    return this.op("layerNorm", [x, weight, bias], (xt, wt, bt) => {
      return tf.add(tf.mul(normalizeOver(xt, [-1], eps), wt), bt);
    });
  }
  batchNorm(
    x: Tensor,
    weight: Tensor | undefined,
    bias: Tensor | undefined,
    runningMean: Tensor,
    runningVar: Tensor,
    opts: BatchNormOptions,
  ): Tensor {
    const { training, momentum = 0.1, eps = 1e-5 } = opts;
    const inputs = [
      x,
      runningMean,
      runningVar,
      ...(weight ? [weight] : []),
      ...(bias ? [bias] : []),
    ];
    V.checkBatchNorm(x, weight, bias, runningMean, runningVar, training);
    const c = x.shape[1];
    const count = x.shape[0] * x.shape[2] * x.shape[3];
    const rm = this.handle("batchNorm", runningMean, inputs).tf;
    const rv = this.handle("batchNorm", runningVar, inputs).tf;
    this.check(
      "batchNorm",
      inputs,
      !training || (rm instanceof tf.Variable && rv instanceof tf.Variable),
      "running statistics must be variables",
    );
    const affine = (t: Tensor | undefined) => t && this.handle("batchNorm", t, inputs).tf;
    /** Running statistics: new = (1 - m) * old + m * batch, with the unbiased variance. */
    const updateRunning = (mean: Tf, variance: Tf) => {
      const unbiased = tf.mul(tf.reshape(variance, [c]), count / (count - 1));
      const newMean = tf.add(tf.mul(rm, 1 - momentum), tf.mul(tf.reshape(mean, [c]), momentum));
      const newVar = tf.add(tf.mul(rv, 1 - momentum), tf.mul(unbiased, momentum));
      (rm as tf.Variable).assign(newMean);
      (rv as tf.Variable).assign(newVar);
    };
    return this.run("batchNorm", inputs, (xh) => {
      if (training && xh.channelsLast) {
        // The common case (after a conv): one op with a closed-form gradient on [N*H*W, C].
        const rows = tf.reshape(xh.tf, [count, c]);
        const y = batchNormTrainWithGrad(rows, affine(weight), affine(bias), eps, updateRunning);
        return { t: tf.reshape(y, xh.tf.shape), channelsLast: true };
      }
      // Channels-last runs on its [N*H*W, C] view: tfjs reduces over leading axes by first
      // transposing them last, which takes one fast 2-D transpose here instead of a slow 4-D
      // one (and the gradients' per-channel sums likewise).
      const xt = xh.channelsLast ? tf.reshape(xh.tf, [count, c]) : xh.tf;
      // Per-channel statistics broadcast as [1, C, 1, 1], or as [C] over channels-last.
      const axes = xh.channelsLast ? [0] : [0, 2, 3];
      const statShape = xh.channelsLast ? [c] : [1, c, 1, 1];
      let mean: Tf, variance: Tf;
      let centered: Tf | undefined;
      if (training) {
        mean = tf.reshape(tf.mean(xt, axes), statShape);
        centered = tf.sub(xt, mean);
        variance = tf.reshape(tf.mean(tf.square(centered), axes), statShape);
        updateRunning(mean, variance);
      } else {
        mean = tf.reshape(rm, statShape);
        variance = tf.reshape(rv, statShape);
      }
      let y = tf.mul(centered ?? tf.sub(xt, mean), tf.rsqrt(tf.add(variance, eps)));
      if (weight) y = tf.mul(y, tf.reshape(affine(weight)!, statShape));
      if (bias) y = tf.add(y, tf.reshape(affine(bias)!, statShape));
      return { t: xh.channelsLast ? tf.reshape(y, xh.tf.shape) : y, channelsLast: xh.channelsLast };
    });
  }

  // ---- pooling, resizing, attention ----

  maxPool2d(x: Tensor, kernel: number, stride: number, padding = 0): Tensor {
    V.checkPool("maxPool2d", x, kernel, stride, padding);
    // Pad with -inf ourselves so padded cells never win, as in PyTorch.
    const pool = (v: Tf) => maxPoolWithGrad(padHW(v, padding, -Infinity), kernel, stride);
    return this.run("maxPool2d", [x], (h) => ({
      t: h.channelsLast ? pool(h.tf) : perChannel(h.tf, pool),
      channelsLast: h.channelsLast,
    }));
  }
  avgPool2d(x: Tensor, kernel: number, stride: number, padding = 0, countIncludePad = true) {
    V.checkPool("avgPool2d", x, kernel, stride, padding);
    const pool = (v: Tf) => {
      const sumAvg = tf.avgPool(padHW(v, padding, 0), kernel, stride, "valid");
      if (countIncludePad || padding === 0) return sumAvg;
      // count_include_pad=False divides by the number of real (unpadded) cells instead.
      const [, h, w] = v.shape as number[];
      const [, ho, wo] = sumAvg.shape;
      const scale = poolScale(h, w, ho, wo, kernel, stride, padding); // [Ho, Wo]
      return tf.mul(sumAvg, tf.tensor(scale, [1, ho, wo, 1]));
    };
    return this.run("avgPool2d", [x], (h) => ({
      t: h.channelsLast ? pool(h.tf) : perChannel(h.tf, pool),
      channelsLast: h.channelsLast,
    }));
  }
  interpolateBilinear(x: Tensor, size: readonly [number, number], alignCorners: boolean) {
    V.checkInterpolate(x, size);
    // tfjs halfPixelCenters is PyTorch's align_corners=False (source = (i + 0.5) * scale - 0.5,
    // clamped at 0); alignCorners is the same in both.
    const resize = (v: Tf) => resizeBilinearWithGrad(v, size[0], size[1], alignCorners);
    return this.run("interpolateBilinear", [x], (h) => ({
      t: h.channelsLast ? resize(h.tf) : perChannel(h.tf, resize),
      channelsLast: h.channelsLast,
    }));
  }
  attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const [qs, ks] = [q.shape, k.shape];
    V.checkAttention(q, k, v);
    return this.op("attention", [q, k, v], (qt, kt, vt) => {
      // Long sequences: the scores of all slices at once would not fit the wasm heap.
      if (needsGrouping(qs[0] * qs[1], qs[2], ks[2])) return groupedAttention(qt, kt, vt);
      // softmax(Q Kᵀ / sqrt(d)) V  (Vaswani et al. 2017, eq. 1)
      const scores = tf.mul(
        matmulWithGrad(qt, tf.transpose(kt, [0, 1, 3, 2])),
        1 / Math.sqrt(qs[3]),
      );
      return matmulWithGrad(tf.softmax(scores), vt); // [B, h, Lq, dv]
    });
  }

  // ---- losses ----

  mseLoss(pred: Tensor, target: Tensor): Tensor {
    V.checkSameShape("mseLoss", pred, target);
    return this.run("mseLoss", [pred, target], (p, t) => {
      const [x, y] = sameLayout(p, t);
      return { t: tf.mean(tf.square(tf.sub(x, y))), channelsLast: false };
    });
  }
  bceWithLogits(logits: Tensor, targets: Tensor): Tensor {
    V.checkSameShape("bceWithLogits", logits, targets);
    return this.run("bceWithLogits", [logits, targets], (l, t) => {
      return { t: bceWithLogitsWithGrad(...sameLayout(l, t)), channelsLast: false };
    });
  }
}
