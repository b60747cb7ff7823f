/**
 * TensorFlow.js kernels with the gradients PyTorch has, built from kernels that exist and run
 * fast on both tfjs backends. Inputs and outputs are raw tfjs tensors; callers run these inside
 * a tidy.
 *
 * What the wasm backend (4.22) lacks or gets wrong, and what replaces it here:
 * - Conv2DBackpropFilter is missing and Conv2DBackpropInput is a plain loop: both conv
 *   gradients are written as forward convs (XNNPACK).
 * - BatchMatMul with transposeA/B is ~15x slower than with explicit transposes: matmul's
 *   gradient transposes explicitly.
 * - UnsortedSegmentSum (gather's gradient) is missing: a one-hot matmul instead; OneHot ignores
 *   a float32 dtype, so it is cast.
 * - MaxPoolWithArgmax starts from FLT_MIN instead of -inf, and MaxPoolGrad routes gradients
 *   wrongly for windows of negative values (both measured): max pooling's gradient is built
 *   from strided slices.
 * - ResizeBilinearGrad ignores halfPixelCenters (both backends) and swaps H and W of
 *   non-square inputs (cpu): the gradient is two matmuls with interpolation matrices.
 * - Abs's gradient is -1 at 0 (PyTorch: 0), and BCE-with-logits composed of max/abs/log1p gets
 *   a wrong gradient at a logit of exactly 0: both have explicit gradients.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { sizeOf } from "./backend.ts";

/** A raw tfjs tensor of any rank. */
export type Tf = tf.Tensor;

/** A tensor's shape as a plain array (tfjs types it as a rank-indexed tuple). */
export function dims(t: Tf): number[] {
  return t.shape as number[];
}

/** (x - mean) / sqrt(var + eps) over `axes`, with the biased variance. */
export function normalizeOver(x: Tf, axes: number[], eps: number): Tf {
  const mean = tf.mean(x, axes, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), axes, true);
  return tf.mul(centered, tf.rsqrt(tf.add(variance, eps)));
}

/** Runs a per-channel NHWC op on x [N, C, H, W] viewed as [N*C, H, W, 1]: no transposes. */
export function perChannel(x: Tf, f: (v: tf.Tensor4D) => Tf): Tf {
  const [n, c, h, w] = x.shape;
  const y = f(tf.reshape(x, [n * c, h, w, 1]));
  const [, ho, wo] = y.shape as number[];
  return tf.reshape(y, [n, c, ho, wo]);
}

/** Pads the H and W axes of [N, H, W, C] by p on each side with `value`. */
export function padHW(v: Tf, p: number, value: number): tf.Tensor4D {
  if (p === 0) return v as tf.Tensor4D;
  return tf.pad(v, [[0, 0], [p, p], [p, p], [0, 0]], value) as tf.Tensor4D;
}

/** k*k / (number of unpadded cells in each window): turns a padded average into PyTorch's. */
export function poolScale(
  h: number,
  w: number,
  ho: number,
  wo: number,
  k: number,
  s: number,
  p: number,
): Float32Array {
  const inside = (start: number, size: number) =>
    Math.min(start + k, size + p) - Math.max(start, p);
  const out = new Float32Array(ho * wo);
  for (let i = 0; i < ho; i++) {
    for (let j = 0; j < wo; j++) out[i * wo + j] = (k * k) / (inside(i * s, h) * inside(j * s, w));
  }
  return out;
}

/** Sums a broadcast gradient back down to `shape`. */
function sumToShape(g: Tf, shape: readonly number[]): Tf {
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return tf.reshape(axes.length ? tf.sum(g, axes) : g, [...shape]);
}

function swapLastTwo(x: Tf): Tf {
  const perm = [...Array(x.rank).keys()];
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return tf.transpose(x, perm);
}

/**
 * Batched matmul whose gradient uses explicit transposes: dA = dY Bᵀ, dB = Aᵀ dY, summed over
 * broadcast batch dims.
 */
export function matmulWithGrad(a: Tf, b: Tf): Tf {
  return tf.customGrad((x, y, save) => {
    const [at, bt] = [x as Tf, y as Tf];
    (save as tf.GradSaveFunc)([at, bt]);
    return {
      value: tf.matMul(at, bt),
      gradFunc: (dy: Tf, [sa, sb]: Tf[]) => [
        sumToShape(tf.matMul(dy, swapLastTwo(sb)), sa.shape),
        sumToShape(tf.matMul(swapLastTwo(sa), dy), sb.shape),
      ],
    };
  })(a, b);
}

/** tf.gather with a gradient by one-hot matmul (wasm has no UnsortedSegmentSum). */
export function gatherWithGrad(x: Tf, indices: Tf, axis: number): Tf {
  return tf.customGrad((xv, iv, save) => {
    const [xt, it] = [xv as Tf, iv as Tf];
    (save as tf.GradSaveFunc)([it]);
    return {
      value: tf.gather(xt, it, axis),
      gradFunc: (dy: Tf, [ind]: Tf[]) => {
        const outer = sizeOf(xt.shape.slice(0, axis));
        const inner = sizeOf(xt.shape.slice(axis + 1));
        const dim = xt.shape[axis];
        const flat = tf.reshape(ind, [-1]);
        // wasm OneHot ignores a float32 dtype (writes int bits), so build int32 and cast.
        const oneHotT = tf.transpose(tf.cast(tf.oneHot(flat, dim), "float32")); // [dim, nIdx]
        const g = tf.reshape(dy, [outer, flat.size, inner]); // [outer, nIdx, inner]
        const dx = tf.matMul(tf.broadcastTo(oneHotT, [outer, dim, flat.size]), g);
        return [tf.reshape(dx, xt.shape), tf.zerosLike(ind)];
      },
    };
  })(x, indices);
}

/**
 * Max pooling (valid, x already padded) whose gradient goes to the first maximum of each
 * window in row-major order, as in PyTorch. wasm's MaxPoolGrad and MaxPoolWithArgmax are
 * wrong for windows of negative values, so this is built from strided slices instead. x [N, H, W, C] -> [N, Ho, Wo, C].
 */
export function maxPoolWithGrad(x: Tf, k: number, s: number): Tf {
  return tf.customGrad((xv, save) => {
    const y = tf.maxPool(xv as tf.Tensor4D, k, s, "valid");
    (save as tf.GradSaveFunc)([xv as Tf, y]);
    return {
      value: y,
      gradFunc: (dy: Tf, [sx, sy]: Tf[]) => {
        const [p, h, w, c] = dims(sx);
        const [, ho, wo] = dims(sy);
        const [spanH, spanW] = [(ho - 1) * s + 1, (wo - 1) * s + 1];
        let taken = tf.zerosLike(sy);
        let dx = tf.zerosLike(sx);
        for (let a = 0; a < k; a++) {
          for (let b = 0; b < k; b++) {
            // The cells at offset (a, b) of every window: [N, Ho, Wo, C].
            const end = [p, a + spanH, b + spanW, c];
            const cell = tf.stridedSlice(sx, [0, a, b, 0], end, [1, s, s, 1]);
            const first = tf.mul(tf.cast(tf.equal(cell, sy), "float32"), tf.sub(1, taken));
            taken = tf.add(taken, first);
            const at: [number, number][] = [[0, 0], [a, h - a - spanH], [b, w - b - spanW], [0, 0]];
            dx = tf.add(dx, tf.pad(zeroStuff(tf.mul(first, dy), s), at));
          }
        }
        return dx;
      },
    };
  })(x);
}

/** Row-interpolation matrix [outSize, inSize] of PyTorch's bilinear resize along one axis. */
function bilinearMatrix(inSize: number, outSize: number, alignCorners: boolean): Float32Array {
  const m = new Float32Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    // align_corners=True maps corners to corners; False maps pixel centres (clamped at 0).
    const src = alignCorners
      ? (outSize > 1 ? (o * (inSize - 1)) / (outSize - 1) : 0)
      : Math.max(0, ((o + 0.5) * inSize) / outSize - 0.5);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const frac = src - i0;
    m[o * inSize + i0] += 1 - frac;
    m[o * inSize + i1] += frac;
  }
  return m;
}

/**
 * Bilinear resize with the tfjs kernel forward and a gradient as two matmuls with the
 * interpolation matrices, dx = Ahᵀ dy Aw: tfjs's ResizeBilinearGrad ignores halfPixelCenters,
 * and on cpu swaps H and W of non-square inputs. x [N, H, W, C] -> [N, outH, outW, C].
 */
export function resizeBilinearWithGrad(
  x: Tf,
  outH: number,
  outW: number,
  alignCorners: boolean,
): Tf {
  return tf.customGrad((xv) => {
    const [n, h, w, c] = dims(xv as Tf);
    const value = tf.image.resizeBilinear(
      xv as tf.Tensor4D,
      [outH, outW],
      alignCorners,
      !alignCorners,
    );
    return {
      value,
      gradFunc: (dy: Tf) => {
        const ahT = tf.transpose(tf.tensor2d(bilinearMatrix(h, outH, alignCorners), [outH, h]));
        const awT = tf.transpose(tf.tensor2d(bilinearMatrix(w, outW, alignCorners), [outW, w]));
        // Contract outH: [1, H, outH] x [N, outH, outW*C] -> [N, H, outW*C].
        const rows = tf.matMul(tf.reshape(ahT, [1, h, outH]), tf.reshape(dy, [n, outH, outW * c]));
        // Contract outW: [1, W, outW] x [N*H, outW, C] -> [N*H, W, C].
        const cols = tf.matMul(tf.reshape(awT, [1, w, outW]), tf.reshape(rows, [n * h, outW, c]));
        return tf.reshape(cols, [n, h, w, c]);
      },
    };
  })(x);
}

/** Mean BCE on logits with PyTorch's gradient (sigmoid(x) - t) / n, exact at x = 0. */
export function bceWithLogitsWithGrad(logits: Tf, targets: Tf): Tf {
  return tf.customGrad((lv, tv, save) => {
    const [x, t] = [lv as Tf, tv as Tf];
    (save as tf.GradSaveFunc)([x, t]);
    // max(x, 0) - x t + log(1 + exp(-|x|)), the stable form of -[t log s + (1-t) log(1-s)].
    const loss = tf.add(tf.sub(tf.relu(x), tf.mul(x, t)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
    return {
      value: tf.mean(loss),
      gradFunc: (dy: Tf, [sx, st]: Tf[]) => {
        const scale = tf.div(dy, sx.size);
        return [tf.mul(tf.sub(tf.sigmoid(sx), st), scale), tf.mul(tf.neg(sx), scale)];
      },
    };
  })(logits, targets);
}

// ---- convolutions: NHWC kernels with PyTorch weight layouts ----

function explicitPad(top: number, bottom: number, left: number, right: number) {
  if (top === 0 && bottom === 0 && left === 0 && right === 0) return "valid" as const;
  return [[0, 0], [top, bottom], [left, right], [0, 0]] as [
    [number, number],
    [number, number],
    [number, number],
    [number, number],
  ];
}

/** y = conv(x, w): x [N, H, W, Cin], w [Cout, Cin, k, k] -> [N, Ho, Wo, Cout]. */
function convNHWC(x: Tf, w: Tf, s: number, p: number): Tf {
  const filter = tf.transpose(w, [2, 3, 1, 0]); // [k, k, Cin, Cout]
  return tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, s, explicitPad(p, p, p, p));
}

/** Inserts s-1 zeros between pixels: [N, H, W, C] -> [N, (H-1)s+1, (W-1)s+1, C]. */
function zeroStuff(x: Tf, s: number): Tf {
  if (s === 1) return x;
  const [n, h, w, c] = x.shape;
  const spread = tf.pad(tf.reshape(x, [n, h, 1, w, 1, c]), [
    [0, 0],
    [0, 0],
    [0, s - 1],
    [0, 0],
    [0, s - 1],
    [0, 0],
  ]); // [N, H, s, W, s, C]
  return tf.slice(tf.reshape(spread, [n, h * s, w * s, c]), 0, [
    n,
    (h - 1) * s + 1,
    (w - 1) * s + 1,
    c,
  ]);
}

/**
 * The transposed convolution (gradient of {@link convNHWC} w.r.t. its input) as a forward
 * conv: zero-stuff dy by the stride, pad by k-1-p, correlate with the flipped kernel.
 * dy [N, Ho, Wo, Cout], w [Cout, Cin, k, k] -> [N, outH, outW, Cin].
 */
function convTransposeNHWC(dy: Tf, w: Tf, s: number, p: number, outH: number, outW: number): Tf {
  const k = dims(w)[2];
  const filter = tf.transpose(tf.reverse(w, [2, 3]), [2, 3, 0, 1]); // [k, k, Cout, Cin]
  let z = zeroStuff(dy, s);
  const pads: number[] = [];
  for (const [axis, out] of [[1, outH], [2, outW]]) {
    let before = k - 1 - p;
    let after = out - z.shape[axis] - before + k - 1;
    // Negative padding means cropping (padding > k - 1).
    if (before < 0 || after < 0) {
      const begin = [0, 0, 0, 0];
      const size = [...z.shape];
      begin[axis] = Math.max(0, -before);
      size[axis] -= Math.max(0, -before) + Math.max(0, -after);
      z = tf.slice(z, begin, size);
      before = Math.max(0, before);
      after = Math.max(0, after);
    }
    pads.push(before, after);
  }
  return tf.conv2d(
    z as tf.Tensor4D,
    filter as tf.Tensor4D,
    1,
    explicitPad(pads[0], pads[1], pads[2], pads[3]),
  );
}

/**
 * dW of y = conv(x, w) as a forward conv over the batch: x as [Cin, H, W, N] images, dy as a
 * [Ho, Wo, N, Cout] filter dilated by the stride. xCHWN [Cin, H, W, N], dyHWNC [Ho, Wo, N, Cout]
 * -> [Cout, Cin, k, k].
 */
function convWeightGrad(xCHWN: Tf, dyHWNC: Tf, s: number, p: number, k: number): Tf {
  const r = tf.conv2d(
    xCHWN as tf.Tensor4D,
    dyHWNC as tf.Tensor4D,
    1,
    explicitPad(p, p, p, p),
    "NHWC",
    s,
  ); // [Cin, >=k, >=k, Cout]
  const cropped = r.shape[1] === k && r.shape[2] === k
    ? r
    : tf.slice(r, [0, 0, 0, 0], [-1, k, k, -1]);
  return tf.transpose(cropped, [3, 0, 1, 2]);
}

/**
 * conv2d on channels-last x [N, H, W, Cin], w [Cout, Cin, k, k] -> [N, Ho, Wo, Cout], with a
 * gradient made of forward convs. Only dW needs transposed copies of x and dy.
 */
export function conv2dWithGrad(x: Tf, w: Tf, s: number, p: number): Tf {
  return tf.customGrad((xv, wv, save) => {
    const [xt, wt] = [xv as Tf, wv as Tf];
    (save as tf.GradSaveFunc)([xt, wt]);
    return {
      value: convNHWC(xt, wt, s, p),
      gradFunc: (dy: Tf, [sx, sw]: Tf[]) => {
        const [, h, wd] = dims(sx);
        const dx = convTransposeNHWC(dy, sw, s, p, h, wd);
        const k = dims(sw)[2];
        const dw = convWeightGrad(
          tf.transpose(sx, [3, 1, 2, 0]),
          tf.transpose(dy, [1, 2, 0, 3]),
          s,
          p,
          k,
        );
        return [dx, dw];
      },
    };
  })(x, w);
}

/**
 * convTranspose2d on channels-last x [N, H, W, Cin], w [Cin, Cout, k, k] (PyTorch layout) ->
 * [N, Ho, Wo, Cout]: the input-gradient of a conv whose weight is w read as
 * [Cout_conv = Cin, Cin_conv = Cout]. Its gradients are that conv's forward pass (dx) and
 * weight gradient (dw), with the roles of x and dy swapped.
 */
export function convTranspose2dWithGrad(x: Tf, w: Tf, s: number, p: number, outPad: number): Tf {
  const k = dims(w)[2];
  const outH = (dims(x)[1] - 1) * s - 2 * p + k + outPad;
  const outW = (dims(x)[2] - 1) * s - 2 * p + k + outPad;
  return tf.customGrad((xv, wv, save) => {
    const [xt, wt] = [xv as Tf, wv as Tf];
    (save as tf.GradSaveFunc)([xt, wt]);
    return {
      value: convTransposeNHWC(xt, wt, s, p, outH, outW),
      gradFunc: (dy: Tf, [sx, sw]: Tf[]) => {
        const dx = convNHWC(dy, sw, s, p); // [N, H, W, Cin]
        const dw = convWeightGrad(
          tf.transpose(dy, [3, 1, 2, 0]),
          tf.transpose(sx, [1, 2, 0, 3]),
          s,
          p,
          k,
        );
        return [dx, dw];
      },
    };
  })(x, w);
}

/** |x| with PyTorch's gradient sign(x) (0 at 0; tfjs's Abs gradient gives -1 there). */
export function absWithGrad(x: Tf): Tf {
  return tf.customGrad((v, save) => {
    (save as tf.GradSaveFunc)([v as Tf]);
    return {
      value: tf.abs(v as Tf),
      gradFunc: (dy: Tf, [s]: Tf[]) => tf.mul(dy, tf.sign(s)),
    };
  })(x);
}

/** A copy of x through which no gradient flows (tfjs has no stopGradient op). */
export function stopGradient(x: Tf): Tf {
  return tf.customGrad((v) => ({
    value: tf.clone(v as Tf),
    gradFunc: (dy: Tf) => tf.zerosLike(dy),
  }))(x);
}

/**
 * 1 where x > y, else 0 (float32), as a constant for autograd: tfjs has no gradient for
 * Greater and would fail when a mask made from it sits on the path to a loss.
 */
export function greaterMask(x: Tf, y: Tf): Tf {
  return tf.customGrad((a, b) => ({
    value: tf.cast(tf.greater(a as Tf, b as Tf), "float32"),
    gradFunc: () => [tf.zerosLike(a as Tf), tf.zerosLike(b as Tf)],
  }))(x, y);
}
