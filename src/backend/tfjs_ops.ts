/**
 * The tfjs backend's tensor ops: elementwise arithmetic and activations, reductions, shape ops,
 * matmul and linear. Elementwise ops and reductions work in their input's layout (a conv's
 * channels-last output stays so); the rest see NCHW (tfjs_engine.ts runs them).
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import type { DType, Tensor } from "./backend.ts";
import {
  absWithGrad,
  gatherWithGrad,
  greaterMask,
  leakyReluWithGrad,
  matmulWithGrad,
  stopGradient,
  type Tf,
} from "./tfjs_kernels.ts";
import { TfjsEngine } from "./tfjs_engine.ts";
import { axesOf, nchw, nhwc, NHWC_AXIS, normAxis, toChannelsLast } from "./tfjs_tensor.ts";
import * as V from "./validate.ts";

/** The tensor ops of a tfjs backend (the layers are in tfjs_nn.ts). */
export abstract class TfjsOps extends TfjsEngine {
  // ---- layout-aware helpers ----

  /** An elementwise op: works in whatever layout its input has. */
  #unary(op: string, a: Tensor, fn: (x: Tf) => Tf): Tensor {
    return this.run(op, [a], (h) => ({ t: fn(h.tf), channelsLast: h.channelsLast }));
  }

  /** A broadcasting binary op; a channels-last operand keeps the result channels-last. */
  #binary(op: string, a: Tensor, b: Tensor | number, f: (x: Tf, y: Tf) => Tf): Tensor {
    if (typeof b === "number") {
      return this.#unary(op, a, (x) => f(x, tf.scalar(b, x.dtype)));
    }
    V.checkBinary(op, a, b);
    return this.run(op, [a, b], (x, y) => {
      if (x.channelsLast === y.channelsLast) {
        return { t: f(x.tf, y.tf), channelsLast: x.channelsLast };
      }
      const other = x.channelsLast ? y : x;
      if (other.tf.rank > 4) return { t: f(nchw(x), nchw(y)), channelsLast: false };
      const moved = toChannelsLast(other.tf);
      return { t: x.channelsLast ? f(x.tf, moved) : f(moved, y.tf), channelsLast: true };
    });
  }

  /** Reduces in the input's layout when the result's axis order allows it. */
  #reduce(
    op: string,
    a: Tensor,
    axes: readonly number[] | undefined,
    keepDims: boolean,
    f: (x: Tf, axes: number[] | undefined, keepDims: boolean) => Tf,
  ): Tensor {
    V.checkAxes(op, a, axes);
    return this.run(op, [a], (h) => {
      if (!h.channelsLast) {
        return { t: f(h.tf, axesOf(axes, h.tf.rank), keepDims), channelsLast: false };
      }
      const logical = axesOf(axes, 4) ?? [0, 1, 2, 3];
      const physical = logical.map((ax) => NHWC_AXIS[ax]);
      if (keepDims) return { t: f(h.tf, physical, true), channelsLast: true };
      // Without kept dims the survivors must come out in NCHW order: true unless C and one of
      // H, W both survive.
      const keepsC = !logical.includes(1);
      const keepsHW = !logical.includes(2) || !logical.includes(3);
      if (keepsC && keepsHW) return { t: f(nchw(h), logical, false), channelsLast: false };
      return { t: f(h.tf, physical, false), channelsLast: false };
    });
  }

  // ---- elementwise ----

  add(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("add", a, b, tf.add);
  }
  sub(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("sub", a, b, tf.sub);
  }
  mul(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("mul", a, b, tf.mul);
  }
  div(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("div", a, b, tf.div);
  }
  pow(a: Tensor, p: number): Tensor {
    return this.#unary("pow", a, (x) => p === 2 ? tf.square(x) : tf.pow(x, tf.scalar(p)));
  }
  neg(a: Tensor): Tensor {
    return this.#unary("neg", a, tf.neg);
  }
  exp(a: Tensor): Tensor {
    return this.#unary("exp", a, tf.exp);
  }
  log(a: Tensor): Tensor {
    return this.#unary("log", a, tf.log);
  }
  sqrt(a: Tensor): Tensor {
    return this.#unary("sqrt", a, tf.sqrt);
  }
  abs(a: Tensor): Tensor {
    return this.#unary("abs", a, absWithGrad);
  }
  clamp(a: Tensor, min: number, max: number): Tensor {
    return this.#unary("clamp", a, (x) => tf.clipByValue(x, min, max));
  }
  greater(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("greater", a, b, greaterMask);
  }
  where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
    V.checkWhere(cond, a, b);
    return this.op("where", [cond, a, b], (c, x, y) => tf.where(tf.notEqual(c, 0), x, y));
  }
  detach(a: Tensor): Tensor {
    return this.#unary("detach", a, stopGradient);
  }
  cast(a: Tensor, dtype: DType): Tensor {
    V.checkDType("cast", [a.shape], dtype);
    return this.#unary("cast", a, (x) => tf.cast(x, dtype));
  }

  // ---- activations ----

  relu(a: Tensor): Tensor {
    return this.#unary("relu", a, tf.relu);
  }
  leakyRelu(a: Tensor, slope: number): Tensor {
    return this.#unary("leakyRelu", a, (x) => leakyReluWithGrad(x, slope));
  }
  gelu(a: Tensor): Tensor {
    // GELU(x) = x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))  (Hendrycks & Gimpel 2016, Sec. 2)
    return this.#unary(
      "gelu",
      a,
      (x) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))),
    );
  }
  silu(a: Tensor): Tensor {
    return this.#unary("silu", a, (x) => tf.mul(x, tf.sigmoid(x)));
  }
  tanh(a: Tensor): Tensor {
    return this.#unary("tanh", a, tf.tanh);
  }
  sigmoid(a: Tensor): Tensor {
    return this.#unary("sigmoid", a, tf.sigmoid);
  }
  softmax(a: Tensor, axis: number): Tensor {
    V.checkAxis("softmax", a, axis);
    return this.op("softmax", [a], (x) => {
      const ax = normAxis(axis, x.rank);
      if (ax === x.rank - 1) return tf.softmax(x);
      // tfjs softmax works on the last axis only: move `axis` there and back.
      const perm = [...Array(x.rank).keys()];
      perm[ax] = x.rank - 1;
      perm[x.rank - 1] = ax;
      return tf.transpose(tf.softmax(tf.transpose(x, perm)), perm);
    });
  }

  // ---- reductions and shape ----

  sum(a: Tensor, axes?: readonly number[], keepDims = false): Tensor {
    return this.#reduce("sum", a, axes, keepDims, tf.sum);
  }
  mean(a: Tensor, axes?: readonly number[], keepDims = false): Tensor {
    return this.#reduce("mean", a, axes, keepDims, tf.mean);
  }
  max(a: Tensor, axes?: readonly number[], keepDims = false): Tensor {
    return this.#reduce("max", a, axes, keepDims, tf.max);
  }
  reshape(a: Tensor, shape: readonly number[]): Tensor {
    V.checkReshape(a, shape);
    return this.op("reshape", [a], (x) => tf.reshape(x, [...shape]));
  }
  permute(a: Tensor, dims: readonly number[]): Tensor {
    V.checkPermute(a, dims);
    return this.op("permute", [a], (x) => tf.transpose(x, dims.map((d) => normAxis(d, x.rank))));
  }
  slice(a: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
    // tfjs-wasm reads past the end without complaint: the shared check rejects it first.
    V.checkSlice(a, begin, size);
    return this.op("slice", [a], (x) => tf.slice(x, [...begin], [...size]));
  }
  cat(xs: readonly Tensor[], axis: number): Tensor {
    V.checkCat(xs, axis);
    return this.run("cat", xs, (...hs) => {
      if (hs[0].tf.rank === 4 && hs.some((h) => h.channelsLast)) {
        return { t: tf.concat(hs.map(nhwc), NHWC_AXIS[normAxis(axis, 4)]), channelsLast: true };
      }
      return { t: tf.concat(hs.map(nchw), normAxis(axis, hs[0].tf.rank)), channelsLast: false };
    });
  }
  gather(a: Tensor, indices: Tensor, axis: number): Tensor {
    const ax = V.checkGather(a, indices, axis);
    // Out-of-range indices would read garbage on wasm; PyTorch raises, and so do we.
    V.checkGatherIndices(a, indices, ax, this.read(indices));
    return this.op("gather", [a, indices], (x, ind) => gatherWithGrad(x, ind, ax));
  }

  // ---- matrix products ----

  matmul(a: Tensor, b: Tensor): Tensor {
    V.checkMatmul(a, b);
    return this.op("matmul", [a, b], matmulWithGrad);
  }
  linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
    const inputs = b ? [x, w, b] : [x, w];
    V.checkLinear(x, w, b);
    return this.op("linear", inputs, (xt, wt, bt) => {
      const flat = tf.reshape(xt, [-1, w.shape[1]]); // [M, in]
      let y = matmulWithGrad(flat, tf.transpose(wt)); // [M, out]
      if (bt) y = tf.add(y, bt);
      return tf.reshape(y, [...x.shape.slice(0, -1), w.shape[0]]);
    });
  }
}
