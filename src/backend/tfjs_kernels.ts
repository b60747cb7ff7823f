/**
 * TensorFlow.js kernels with the gradients PyTorch has, built from kernels that exist and run
 * fast on both tfjs backends. Inputs and outputs are raw tfjs tensors; callers run these inside
 * a tidy.
 *
 * Convolutions and their gradients live in tfjs_conv.ts.
 *
 * What the wasm backend (4.22) lacks or gets wrong, and what replaces it here:
 * - BatchMatMul runs XNNPACK only for one matrix pair without transposes; with transposeA/B or
 *   a batch it is a scalar loop (~1 GFLOP/s): transposes are explicit, a batch of products is
 *   one depthwise conv ({@link batchMatMul}), one matrix times a batch is one 2-D matmul.
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
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
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

/** Multiply-adds per slice from which {@link batchMatMul} on wasm runs slice by slice. */
export const PER_SLICE_MACS = 1 << 20;

/**
 * op(a) op(b) for a [...batch, M, K] and b [...batch, K, N] (op transposes the last two axes
 * when asked) -> [...batch, M, N].
 *
 * wasm runs BatchMatMul through XNNPACK only for a single matrix pair without transposes; any
 * batch falls back to a scalar loop (~1 GFLOP/s). A batch of equal-shaped pairs is therefore
 * one depthwise conv instead, which XNNPACK runs as a grouped GEMM: each slice s is a channel,
 * the rows of A are the images ([M, 1, K, S]: a 1xK image per row and channel) and B is a 1xK
 * filter with N outputs per channel ([1, K, S, N]). Measured 2.5-7x faster than BatchMatMul
 * for attention shapes ([256, 64, 64] x [256, 64, 64]: 35 vs 94 ms; [8, 1024, 64] x
 * [8, 64, 1024]: 0.37 vs 2.8 s). But the depthwise layout costs three transposes, of A, B and
 * the result, and for a large product per slice (at least {@link PER_SLICE_MACS}
 * multiply-adds) one 2-D matmul per slice is faster: XNNPACK packs only B's slice, and A and
 * the result keep their layout (the U-Net's 32x32 attention, 8 slices of [1024, 1024] x
 * [1024, 8]: 11 ms against 32; 44 slices of [256, 16] x [16, 256]: 28 against 32). Other
 * cases (broadcast batches, cpu) use tf.matMul, on wasm with explicit transposes (its
 * transposeA/B path is ~15x slower).
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs@4.22.0";
 * import { batchMatMul } from "./tfjs_kernels.ts";
 * const q = tf.randomNormal([8, 16, 4]);
 * console.log(batchMatMul(q, q, false, true).shape); // [8, 16, 16]
 * ```
 */
export function batchMatMul(a: Tf, b: Tf, transposeA = false, transposeB = false): Tf {
  const wasm = tf.getBackend() === "wasm";
  const batch = dims(a).slice(0, -2);
  const sameBatch = a.rank === b.rank && batch.join() === dims(b).slice(0, -2).join();
  const slices = sizeOf(batch);
  if (!wasm || a.rank < 3 || !sameBatch || slices < 2 || a.size === 0 || b.size === 0) {
    if (!wasm) return tf.matMul(a, b, transposeA, transposeB);
    return tf.matMul(transposeA ? swapLastTwo(a) : a, transposeB ? swapLastTwo(b) : b);
  }
  const a3 = tf.reshape(a, [slices, ...dims(a).slice(-2)]); // [S, M, K] or [S, K, M]
  const b3 = tf.reshape(b, [slices, ...dims(b).slice(-2)]); // [S, K, N] or [S, N, K]
  const [, a1, a2] = dims(a3);
  const [, b1, b2] = dims(b3);
  const [m, k] = transposeA ? [a2, a1] : [a1, a2];
  const n = transposeB ? b1 : b2;
  if (m * k * n >= PER_SLICE_MACS) {
    const aa = transposeA ? swapLastTwo(a3) : a3; // [S, M, K]
    const bb = transposeB ? swapLastTwo(b3) : b3; // [S, K, N]
    const slice = (t: Tf, s: number, rows: number, cols: number) =>
      tf.reshape(tf.slice(t, [s, 0, 0], [1, rows, cols]), [rows, cols]);
    // Each slice's copies of A and B are freed as soon as its product exists.
    const products = Array.from(
      { length: slices },
      (_, s) => tf.tidy(() => tf.matMul(slice(aa, s, m, k), slice(bb, s, k, n))),
    ); // S x [M, N]
    return tf.reshape(tf.stack(products), [...batch, m, n]);
  }
  const rowsPerm = transposeA ? [2, 1, 0] : [1, 2, 0];
  const filterPerm = transposeB ? [2, 0, 1] : [1, 0, 2];
  const rows = tf.reshape(tf.transpose(a3, rowsPerm), [m, 1, k, slices]); // [M, 1, K, S]
  const filter = tf.reshape(tf.transpose(b3, filterPerm), [1, k, slices, n]); // [1, K, S, N]
  // [M, 1, 1, S*N]: row i of slice s times column j of slice s at channel s*N + j.
  const y = tf.depthwiseConv2d(rows as tf.Tensor4D, filter as tf.Tensor4D, 1, "valid");
  const out = tf.transpose(tf.reshape(y, [m, slices, n]), [1, 0, 2]); // [S, M, N]
  return tf.reshape(out, [...batch, m, n]);
}

/**
 * Batched matmul (see {@link batchMatMul}) with the gradient dA = dY Bᵀ, dB = Aᵀ dY, summed
 * over broadcast batch dims.
 */
export function matmulWithGrad(a: Tf, b: Tf): Tf {
  return tf.customGrad((x, y, save) => {
    const [at, bt] = [x as Tf, y as Tf];
    (save as tf.GradSaveFunc)([at, bt]);
    return {
      value: batchMatMul(at, bt),
      gradFunc: (dy: Tf, [sa, sb]: Tf[]) => [
        sumToShape(batchMatMul(dy, sb, false, true), sa.shape),
        sumToShape(batchMatMul(sa, dy, true, false), sb.shape),
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
 * One matrix times every slice of a batch: m [P, Q], x [S, Q, R] -> [S, P, R]. A broadcast
 * BatchMatMul runs wasm's scalar loop; here the slices go side by side ([Q, S*R]) so that the
 * product is one XNNPACK matmul, at the price of two transposes.
 */
function sharedLeftMatMul(m: Tf, x: Tf): Tf {
  const [p, q] = dims(m);
  const [s, , r] = dims(x);
  if (tf.getBackend() !== "wasm") return tf.matMul(tf.reshape(m, [1, p, q]), x);
  const sideBySide = tf.reshape(tf.transpose(x, [1, 0, 2]), [q, s * r]); // [Q, S*R]
  const y = tf.reshape(tf.matMul(m, sideBySide), [p, s, r]); // [P, S, R]
  return tf.transpose(y, [1, 0, 2]);
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
        // Contract outH: [H, outH] x [N, outH, outW*C] -> [N, H, outW*C].
        const rows = sharedLeftMatMul(ahT, tf.reshape(dy, [n, outH, outW * c]));
        // Contract outW: [W, outW] x [N*H, outW, C] -> [N*H, W, C].
        const cols = sharedLeftMatMul(awT, tf.reshape(rows, [n * h, outW, c]));
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

/**
 * Inserts s-1 zeros between pixels: [N, H, W, C] -> [N, (H-1)s+1, (W-1)s+1, C]. Pads stay
 * rank 4 (columns, then rows): tfjs-webgl cannot compile a pad of rank 5 or more.
 */
export function zeroStuff(x: Tf, s: number): Tf {
  if (s === 1) return x;
  const [n, h, w, c] = x.shape;
  const pad = [[0, 0], [0, 0], [0, s - 1], [0, 0]] as [number, number][];
  const columns = tf.pad(tf.reshape(x, [n * h, w, 1, c]), pad); // [N*H, W, s, C]
  const rows = tf.pad(tf.reshape(columns, [n, h, 1, w * s * c]), pad); // [N, H, s, W*s*C]
  return tf.slice(tf.reshape(rows, [n, h * s, w * s, c]), 0, [
    n,
    (h - 1) * s + 1,
    (w - 1) * s + 1,
    c,
  ]);
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

/**
 * The mean of the rows of x [M, C] -> [C]. On wasm as one XNNPACK average pooling of x viewed
 * as a [1, M, 1, C] image: its Mean over a leading axis first transposes x element by element,
 * and a ones[1, M] x [M, C] matmul packs x as weights on every call (measured for [8192, 128]:
 * 0.6 ms against 13 and 18 ms).
 */
function meanRows(x: Tf): Tf {
  const [m, c] = dims(x);
  if (tf.getBackend() !== "wasm") return tf.mean(x, 0);
  const image = tf.reshape(x, [1, m, 1, c]) as tf.Tensor4D;
  return tf.reshape(tf.avgPool(image, [m, 1], 1, "valid"), [c]);
}

/**
 * Training-mode batch norm over the rows of x [M, C] (a channels-last tensor's [N*H*W, C]
 * view) with the biased batch variance, and PyTorch's closed-form gradient instead of tfjs's
 * autodiff of the ~12 ops of the forward pass (each broadcast and per-channel sum of which is a
 * pass over x): with x̂ = (x - mean) * invstd, db = Σ dy, dw = Σ dy x̂ and
 * dx = w invstd (dy - db/M - x̂ dw/M) (Ioffe & Szegedy 2015, §3). `stats` receives the batch
 * mean and biased variance [C] (for the running statistics) while the forward pass runs.
 * weight, bias [C] or undefined -> [M, C].
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs@4.22.0";
 * import { batchNormTrainWithGrad } from "./tfjs_kernels.ts";
 * const y = batchNormTrainWithGrad(tf.tensor2d([[1, 5], [3, 9]]), undefined, undefined, 0);
 * console.log(y.arraySync()); // [[-1, -1], [1, 1]]
 * ```
 */
export function batchNormTrainWithGrad(
  x: Tf,
  weight: Tf | undefined,
  bias: Tf | undefined,
  eps: number,
  stats?: (mean: Tf, variance: Tf) => void,
): Tf {
  const m = x.shape[0];
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return tf.customGrad((...args) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xt, w, b] = [args[0] as Tf, weight && args[1] as Tf, bias && args.at(-1) as Tf];
    const mean = meanRows(xt); // [C]
    const centered = tf.sub(xt, mean);
    const variance = meanRows(tf.square(centered));
    stats?.(mean, variance);
    const invstd = tf.rsqrt(tf.add(variance, eps)); // [C]
    const xhat = tf.mul(centered, invstd);
    const scale = w ? tf.mul(w, invstd) : invstd; // [C]
    save([xhat, scale]);
    let y = w ? tf.mul(xhat, w) : xhat;
    if (b) y = tf.add(y, b);
    return {
      value: y,
      gradFunc: (dy: Tf, [sxhat, sscale]: Tf[]) => {
        const dbMean = meanRows(dy); // db / M, [C]
        const dwMean = meanRows(tf.mul(dy, sxhat)); // dw / M, [C]
        // dx = dy scale - scale (db/M) - x̂ scale (dw/M), the per-channel factors first.
        const k = tf.neg(sscale);
        const dx = tf.add(
          tf.mul(dy, sscale),
          tf.add(tf.mul(sxhat, tf.mul(k, dwMean)), tf.mul(k, dbMean)),
        );
        const grads = [dx];
        if (weight) grads.push(tf.mul(dwMean, m));
        if (bias) grads.push(tf.mul(dbMean, m));
        return grads;
      },
    };
  })(...inputs);
}

/**
 * leakyRelu as x * m with m = step(x, slope) (1 where x > 0, else slope: PyTorch's
 * `x > 0 ? x : slope * x`, signed zeros and NaN included), and the gradient dy * m (NaN at a
 * NaN input, where PyTorch's is slope * dy and the value is NaN already), m saved
 * from the forward pass. On wasm, Step and Multiply are fast vectorised passes while LeakyRelu
 * is a branchy scalar loop (measured on [128, 8, 8, 128]: ~1.6 ms against ~10 ms) and its
 * tfjs gradient runs Greater, Select and Multiply.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs@4.22.0";
 * import { leakyReluWithGrad } from "./tfjs_kernels.ts";
 * const x = tf.tensor1d([-1, 0, 2]);
 * console.log(leakyReluWithGrad(x, 0.2).arraySync()); // [-0.2, 0, 2]
 * console.log(tf.grad((v: tf.Tensor) => leakyReluWithGrad(v, 0.2))(x).arraySync()); // [0.2, 0.2, 1]
 * ```
 */
export function leakyReluWithGrad(x: Tf, slope: number): Tf {
  return tf.customGrad((v, save) => {
    const mask = tf.step(v as Tf, slope);
    (save as tf.GradSaveFunc)([mask]);
    return {
      value: tf.mul(v as Tf, mask),
      gradFunc: (dy: Tf, [m]: Tf[]) => tf.mul(dy, m),
    };
  })(x);
}
