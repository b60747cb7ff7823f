/**
 * TensorFlow.js kernels with the gradients PyTorch has, built from kernels that exist and run
 * fast on both tfjs backends. Inputs and outputs are raw tfjs tensors; callers run these inside
 * a tidy.
 *
 * What the wasm backend (4.22) lacks or gets wrong, and what replaces it here:
 * - Conv2DBackpropFilter is missing and Conv2DBackpropInput is a plain loop: both conv
 *   gradients are written as forward convs (XNNPACK).
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
import * as tf from "@tensorflow/tfjs";
import { sizeOf } from "./backend.ts";
import { CONV_OP, type ConvOp, currentConvWorker, type JobInput } from "./tfjs_worker.ts";

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
 * op(a) op(b) for a [...batch, M, K] and b [...batch, K, N] (op transposes the last two axes
 * when asked) -> [...batch, M, N].
 *
 * wasm runs BatchMatMul through XNNPACK only for a single matrix pair without transposes; any
 * batch falls back to a scalar loop (~1 GFLOP/s). A batch of equal-shaped pairs is therefore
 * one depthwise conv instead, which XNNPACK runs as a grouped GEMM: each slice s is a channel,
 * the rows of A are the images ([M, 1, K, S]: a 1xK image per row and channel) and B is a 1xK
 * filter with N outputs per channel ([1, K, S, N]). Measured 2.5-7x faster than BatchMatMul
 * for attention shapes ([256, 64, 64] x [256, 64, 64]: 35 vs 94 ms; [8, 1024, 64] x
 * [8, 64, 1024]: 0.37 vs 2.8 s). Other cases (broadcast batches, cpu) use tf.matMul, on wasm
 * with explicit transposes (its transposeA/B path is ~15x slower).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
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

/** y = conv(x, w): x [N, H, W, Cin], w [Cout, Cin, kh, kw] -> [N, Ho, Wo, Cout]. */
function convNHWC(x: Tf, w: Tf, s: number, p: number): Tf {
  const filter = tf.transpose(w, [2, 3, 1, 0]); // [kh, kw, Cin, Cout]
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
 * dy [N, Ho, Wo, Cout], w [Cout, Cin, kh, kw] -> [N, outH, outW, Cin]. Each axis uses its own
 * kernel size, so rectangular kernels (1x7, 7x1) work alike.
 */
function convTransposeNHWC(dy: Tf, w: Tf, s: number, p: number, outH: number, outW: number): Tf {
  const [, , kh, kw] = dims(w);
  const filter = tf.transpose(tf.reverse(w, [2, 3]), [2, 3, 0, 1]); // [kh, kw, Cout, Cin]
  let z = zeroStuff(dy, s);
  const pads: number[] = [];
  for (const [axis, out, k] of [[1, outH, kh], [2, outW, kw]]) {
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
 * -> [Cout, Cin, kh, kw].
 */
function convWeightGrad(xCHWN: Tf, dyHWNC: Tf, s: number, p: number, kh: number, kw: number): Tf {
  const r = tf.conv2d(
    xCHWN as tf.Tensor4D,
    dyHWNC as tf.Tensor4D,
    1,
    explicitPad(p, p, p, p),
    "NHWC",
    s,
  ); // [Cin, >=kh, >=kw, Cout]
  const cropped = r.shape[1] === kh && r.shape[2] === kw
    ? r
    : tf.slice(r, [0, 0, 0, 0], [-1, kh, kw, -1]);
  return tf.transpose(cropped, [3, 0, 1, 2]);
}

/**
 * [N, H, W, C] -> [C, H, W, N], the image layout of {@link convWeightGrad}. On wasm a 4-D
 * transpose that swaps the outer and inner axes runs element by element (~190 ms for
 * 64x32x32x128); moving whole C-rows first ([N, HW, C] -> [HW, N, C]) and then transposing
 * one 2-D matrix gives the same tensor in less than half the time (measured ~85 ms).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { toCHWN } from "./tfjs_kernels.ts";
 * console.log(toCHWN(tf.zeros([2, 3, 4, 5])).shape); // [5, 3, 4, 2]
 * ```
 */
export function toCHWN(x: Tf): Tf {
  if (tf.getBackend() !== "wasm") return tf.transpose(x, [3, 1, 2, 0]);
  const [n, h, w, c] = dims(x);
  const rowsFirst = tf.transpose(tf.reshape(x, [n, h * w, c]), [1, 0, 2]); // [HW, N, C]
  return tf.reshape(tf.transpose(tf.reshape(rowsFirst, [h * w * n, c])), [c, h, w, n]);
}

/**
 * One of the three convolutions of a conv layer's forward and backward pass ({@link CONV_OP}),
 * on whatever part of the batch it is given. `outShape` is the result's shape (it carries the
 * input size for the input gradient and (kh, kw) for the weight gradient). The main thread and the
 * conv worker both run exactly this.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { convJob } from "./tfjs_kernels.ts";
 * import { CONV_OP } from "./tfjs_worker.ts";
 * const y = convJob(CONV_OP.forward, tf.ones([1, 4, 4, 2]), tf.ones([3, 2, 3, 3]), 1, 1, [
 *   1, 4, 4, 3,
 * ]);
 * console.log(y.shape); // [1, 4, 4, 3]
 * ```
 */
export function convJob(
  op: ConvOp,
  a: Tf,
  b: Tf,
  s: number,
  p: number,
  outShape: readonly number[],
): Tf {
  switch (op) {
    case CONV_OP.forward:
      return convNHWC(a, b, s, p);
    case CONV_OP.inputGrad:
      return convTransposeNHWC(a, b, s, p, outShape[1], outShape[2]);
    case CONV_OP.weightGrad:
      return convWeightGrad(
        toCHWN(a),
        tf.transpose(b, [1, 2, 0, 3]),
        s,
        p,
        outShape[2],
        outShape[3],
      );
    default:
      throw new Error(`unknown conv job ${op satisfies never}`);
  }
}

/**
 * When a convolution is split between the main thread and the conv worker: at least
 * `minFlops` multiply-adds x2 and a batch of two. Below ~50 MFLOP the copies to and from the
 * worker cost more than the half saves. Tests lower it to split small shapes.
 */
export const convSplitOptions = { minFlops: 50e6 };

/** Multiply-adds x2 of a {@link convJob}: each output value sums (channels in) * kh * kw terms. */
function convJobFlops(op: ConvOp, a: Tf, b: Tf, outShape: readonly number[]): number {
  if (op === CONV_OP.weightGrad) {
    return 2 * sizeOf(outShape) * sizeOf(dims(b).slice(1, 3)) * a.shape[0];
  }
  const [cOut, cIn, kh, kw] = dims(b);
  return 2 * sizeOf(outShape) * (op === CONV_OP.forward ? cIn : cOut) * kh * kw;
}

/**
 * Elements [start, start + count) of a float32 tensor on wasm as a view of the wasm heap, with
 * no copy (`dataSync` copies the whole tensor, a slice op copies again); undefined elsewhere.
 * The view is valid only until the next tfjs op: the heap moves when it grows.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { wasmHeapView } from "./tfjs_kernels.ts";
 * const t = tf.tensor([1, 2, 3, 4]);
 * console.log(wasmHeapView(t, 1, 2)); // Float32Array [2, 3] on wasm, undefined on cpu
 * ```
 */
export function wasmHeapView(t: Tf, start: number, count: number): Float32Array | undefined {
  if (tf.getBackend() !== "wasm" || t.dtype !== "float32") return undefined;
  if (start < 0 || count < 0 || start + count > t.size) throw new RangeError("outside the tensor");
  const backend = tf.backend() as unknown as WasmHeapAccess;
  const stored = backend.dataIdMap.get(t.dataId);
  if (!stored) return undefined;
  return new Float32Array(backend.wasm.HEAPU8.buffer, stored.memoryOffset + 4 * start, count);
}

/** What {@link wasmHeapView} reads of tfjs-wasm's BackendWasm (public fields, untyped there). */
interface WasmHeapAccess {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
}

/** Samples [start, start + count) of a batch-first tensor, as a view on wasm or else a copy. */
function batchData(t: Tf, start: number, count: number): JobInput {
  const shape = [count, ...dims(t).slice(1)];
  const perSample = sizeOf(shape.slice(1));
  const view = wasmHeapView(t, start * perSample, count * perSample);
  if (view) return { data: view, shape };
  const part = tf.slice(t, [start, 0, 0, 0], shape);
  return { data: part.dataSync() as Float32Array, shape };
}

/**
 * {@link convJob} on the whole batch, computed half here and half in the conv worker when one
 * is running and the job is large ({@link convSplitOptions}). The batch axis of `a` (and of
 * `b` for the weight gradient) is split; the halves' outputs are concatenated, or for the
 * weight gradient summed. Per sample the kernels are the same, so forward and input gradient
 * equal the unsplit result exactly; the weight gradient differs by float rounding. If the
 * worker fails, its half runs here and the worker stays off.
 */
function splitConvJob(
  op: ConvOp,
  a: Tf,
  b: Tf,
  s: number,
  p: number,
  outShape: readonly number[],
): Tf {
  const worker = currentConvWorker();
  const n = a.shape[0];
  if (
    !worker || n < 2 || tf.getBackend() !== "wasm" ||
    convJobFlops(op, a, b, outShape) < convSplitOptions.minFlops || !worker.usable()
  ) {
    return convJob(op, a, b, s, p, outShape);
  }
  const here = Math.ceil(n / 2);
  const there = n - here;
  const splitsB = op === CONV_OP.weightGrad;
  const halfShape = (count: number) => splitsB ? [...outShape] : [count, ...outShape.slice(1)];
  /** The job on samples [start, start + count), here. */
  const half = (start: number, count: number) => {
    const part = (t: Tf) => tf.slice(t, [start, 0, 0, 0], [count, -1, -1, -1]);
    return convJob(op, part(a), splitsB ? part(b) : b, s, p, halfShape(count));
  };
  try {
    // Heap views: no tfjs op may run between taking them and submit() copying them.
    const bInput = splitsB ? batchData(b, here, there) : batchData(b, 0, b.shape[0]);
    worker.submit(op, batchData(a, here, there), bInput, s, p, halfShape(there));
  } catch {
    return convJob(op, a, b, s, p, outShape); // larger than the shared buffer may grow
  }
  const mine = half(0, here);
  let theirs: Tf;
  try {
    theirs = tf.tensor(worker.collect(), halfShape(there));
  } catch {
    // The worker is off for good now (its failure shows in the backend's device string).
    theirs = half(here, there);
  }
  return splitsB ? tf.add(mine, theirs) : tf.concat([mine, theirs], 0);
}

/**
 * conv2d on channels-last x [N, H, W, Cin], w [Cout, Cin, kh, kw] -> [N, Ho, Wo, Cout], with a
 * gradient made of forward convs. Only dW needs transposed copies of x and dy. Each of the
 * three convs may be split with the conv worker ({@link splitConvJob}).
 */
export function conv2dWithGrad(x: Tf, w: Tf, s: number, p: number): Tf {
  return tf.customGrad((xv, wv, save) => {
    const [xt, wt] = [xv as Tf, wv as Tf];
    (save as tf.GradSaveFunc)([xt, wt]);
    const [n, h, wd] = dims(xt);
    const [cOut, cIn, kh, kw] = dims(wt);
    const ho = Math.floor((h + 2 * p - kh) / s) + 1;
    const wo = Math.floor((wd + 2 * p - kw) / s) + 1;
    return {
      value: splitConvJob(CONV_OP.forward, xt, wt, s, p, [n, ho, wo, cOut]),
      gradFunc: (dy: Tf, [sx, sw]: Tf[]) => {
        const dx = splitConvJob(CONV_OP.inputGrad, dy, sw, s, p, [n, h, wd, cIn]);
        const dw = splitConvJob(CONV_OP.weightGrad, sx, dy, s, p, [cOut, cIn, kh, kw]);
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
          toCHWN(dy),
          tf.transpose(sx, [1, 2, 0, 3]),
          s,
          p,
          k,
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
