/**
 * The TensorFlow.js backend: `tfjs-wasm` (XNNPACK kernels, SIMD) or the pure-JS `tfjs-cpu`.
 *
 * The interface is NCHW with PyTorch weight layouts; tfjs convolutions are NHWC, so a conv
 * transposes its input and output once each. Pooling and resizing act on each channel alone, so
 * they run on `[N*C, H, W, 1]` views and need no transpose at all.
 *
 * Gradients that wasm lacks, runs slowly or gets wrong (conv, matmul, gather, pooling,
 * resize, abs, BCE) are custom gradients built from fast forward kernels: see tfjs_kernels.ts.
 * wasm runs single-threaded: tfjs disables its threaded build outside browsers.
 *
 * tfjs has a single global engine. Each op switches it to this instance's kernel backend
 * before running, so a wasm and a cpu instance can live in one process; a handle used with the
 * wrong instance, or after {@link Backend.dispose}, raises {@link BackendError}.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
// Registers the "wasm" kernel backend; Deno drops an import that binds nothing unless it is
// a bare side-effect import like this one.
import "@tensorflow/tfjs-backend-wasm";
import {
  type AdamOptions,
  type AdamState,
  type Backend,
  BackendError,
  BackendUnavailableError,
  type BatchNormOptions,
  type ConvOptions,
  type DType,
  type Keepable,
  shapeString,
  sizeOf,
  type Tensor,
  type ValueAndGrad,
} from "./backend.ts";
import {
  absWithGrad,
  bceWithLogitsWithGrad,
  conv2dWithGrad,
  convTranspose2dWithGrad,
  gatherWithGrad,
  matmulWithGrad,
  maxPoolWithGrad,
  normalizeLastAxis,
  padHW,
  perChannel,
  poolScale,
  resizeBilinearWithGrad,
  stopGradient,
  type Tf,
} from "./tfjs_kernels.ts";

/** Which tfjs kernel backend an instance runs on. */
export type TfjsKind = "wasm" | "cpu";

// tfjs prints a "install tfjs-node" banner and debug warnings unless in production mode.
tf.enableProdMode();

/** A {@link Tensor} handle over one tfjs tensor (or tf.Variable). */
class TfjsTensor implements Tensor {
  constructor(readonly owner: TfjsBackend, readonly tf: Tf) {}
  get shape(): readonly number[] {
    return this.tf.shape;
  }
  get dtype(): DType {
    return this.tf.dtype as DType;
  }
  get backend(): string {
    return this.owner.name;
  }
  get disposed(): boolean {
    return this.tf.isDisposed;
  }
  dispose(): void {
    if (!this.tf.isDisposed) this.tf.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Creates a TensorFlow.js backend. Throws {@link BackendUnavailableError} when the kernel
 * backend cannot initialise (e.g. WebAssembly missing).
 *
 * @example
 * ```ts
 * import { createTfjsBackend } from "./tfjs.ts";
 * const b = await createTfjsBackend("wasm");
 * const x = b.tensor([1, 2, 3, 4], [1, 1, 2, 2]);
 * console.log(b.read(b.mean(x))); // Float32Array [2.5]
 * b.dispose();
 * ```
 */
export async function createTfjsBackend(kind: TfjsKind): Promise<Backend> {
  let ok = false;
  try {
    ok = await tf.setBackend(kind);
  } catch (e) {
    throw new BackendUnavailableError(`tfjs-${kind}`, errorText(e));
  }
  if (!ok || tf.getBackend() !== kind) {
    throw new BackendUnavailableError(`tfjs-${kind}`, `tf.setBackend("${kind}") failed`);
  }
  return new TfjsBackend(kind);
}

class TfjsBackend implements Backend {
  readonly name: string;
  readonly device: string;
  readonly version: string = tf.version.tfjs;
  readonly #kind: TfjsKind;
  /** Every tfjs tensor this instance handed out, for dispose(); pruned of freed ones lazily. */
  #owned = new Set<Tf>();
  #pruneAt = 4096;
  #disposed = false;

  constructor(kind: TfjsKind) {
    this.#kind = kind;
    this.name = `tfjs-${kind}`;
    this.device = kind === "wasm"
      ? `wasm (${tf.env().getBool("WASM_HAS_SIMD_SUPPORT") ? "SIMD" : "no SIMD"}, 1 thread)`
      : "cpu (pure JavaScript)";
  }

  // ---- plumbing ----

  #activate(op: string): void {
    if (this.#disposed) throw new BackendError(op, [], `backend ${this.name} was disposed`);
    if (tf.getBackend() !== this.#kind) {
      // The backend is initialised, so setBackend switches synchronously; the promise it
      // returns carries nothing more.
      void tf.setBackend(this.#kind);
    }
  }

  #unwrap(op: string, t: Tensor, all: readonly Tensor[]): Tf {
    const shapes = all.map((x) => x.shape);
    if (!(t instanceof TfjsTensor) || t.owner !== this) {
      throw new BackendError(op, shapes, `got a tensor of backend ${t.backend}, not ${this.name}`);
    }
    if (t.tf.isDisposed) throw new BackendError(op, shapes, "a tensor was already disposed");
    return t.tf;
  }

  #wrap(t: Tf): TfjsTensor {
    this.#owned.add(t);
    if (this.#owned.size >= this.#pruneAt) {
      for (const x of this.#owned) if (x.isDisposed) this.#owned.delete(x);
      this.#pruneAt = Math.max(4096, 2 * this.#owned.size);
    }
    return new TfjsTensor(this, t);
  }

  /** Runs one op: checks the handles, switches the engine, frees temporaries, names errors. */
  #op(op: string, inputs: readonly Tensor[], fn: (...xs: Tf[]) => Tf): Tensor {
    const xs = inputs.map((t) => this.#unwrap(op, t, inputs));
    this.#activate(op);
    try {
      return this.#wrap(tf.tidy(() => fn(...xs)));
    } catch (e) {
      if (e instanceof BackendError) throw e;
      throw new BackendError(op, inputs.map((t) => t.shape), errorText(e));
    }
  }

  #check(op: string, inputs: readonly Tensor[], ok: boolean, detail: string): void {
    if (!ok) throw new BackendError(op, inputs.map((t) => t.shape), detail);
  }

  #binary(op: string, a: Tensor, b: Tensor | number, f: (x: Tf, y: Tf) => Tf): Tensor {
    if (typeof b === "number") return this.#op(op, [a], (x) => f(x, tf.scalar(b, x.dtype)));
    this.#check(op, [a, b], a.dtype === b.dtype, `dtypes differ: ${a.dtype} and ${b.dtype}`);
    return this.#op(op, [a, b], f);
  }

  // ---- creation and reading ----

  tensor(data: Float32Array | Int32Array | number[], shape: readonly number[], dtype?: DType) {
    const type: DType = dtype ?? (data instanceof Int32Array ? "int32" : "float32");
    if (data.length !== sizeOf(shape)) {
      throw new BackendError(
        "tensor",
        [shape],
        `${data.length} values do not fill shape ${shapeString(shape)}`,
      );
    }
    // Always copy: the cpu kernels would otherwise keep the caller's array as storage.
    const copy = type === "int32" ? Int32Array.from(data) : Float32Array.from(data);
    return this.#op("tensor", [], () => tf.tensor(copy, [...shape], type));
  }

  zeros(shape: readonly number[]): Tensor {
    return this.#op("zeros", [], () => tf.zeros([...shape]));
  }

  full(shape: readonly number[], value: number): Tensor {
    return this.#op("full", [], () => tf.fill([...shape], value));
  }

  read(t: Tensor): Float32Array | Int32Array {
    const x = this.#unwrap("read", t, [t]);
    this.#activate("read");
    const data = x.dataSync() as Float32Array | Int32Array;
    // The cpu backend returns its own storage; hand out a copy so callers cannot corrupt it.
    return this.#kind === "cpu" ? data.slice() : data;
  }

  variable(init: Tensor, trainable: boolean): Tensor {
    return this.#op("variable", [init], (x) => tf.variable(x, trainable));
  }

  assign(variable: Tensor, value: Tensor): void {
    const v = this.#unwrap("assign", variable, [variable, value]);
    const x = this.#unwrap("assign", value, [variable, value]);
    const ok = v instanceof tf.Variable;
    this.#check("assign", [variable, value], ok, "the target is not a variable");
    const same = shapeString(v.shape) === shapeString(x.shape) && v.dtype === x.dtype;
    this.#check("assign", [variable, value], same, "shape or dtype differs from the variable's");
    this.#activate("assign");
    (v as tf.Variable).assign(x);
  }

  // ---- memory ----

  scope<T extends Keepable>(fn: () => T): T {
    this.#activate("scope");
    let result!: T;
    tf.tidy(() => {
      result = fn();
      const keep: Tf[] = [];
      collectTensors(result, keep);
      return keep;
    });
    return result;
  }

  liveTensors(): number {
    return tf.memory().numTensors;
  }

  liveBytes(): number {
    return tf.memory().numBytes;
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
    return this.#op("pow", [a], (x) => p === 2 ? tf.square(x) : tf.pow(x, tf.scalar(p)));
  }
  neg(a: Tensor): Tensor {
    return this.#op("neg", [a], tf.neg);
  }
  exp(a: Tensor): Tensor {
    return this.#op("exp", [a], tf.exp);
  }
  log(a: Tensor): Tensor {
    return this.#op("log", [a], tf.log);
  }
  sqrt(a: Tensor): Tensor {
    return this.#op("sqrt", [a], tf.sqrt);
  }
  abs(a: Tensor): Tensor {
    return this.#op("abs", [a], absWithGrad);
  }
  clamp(a: Tensor, min: number, max: number): Tensor {
    return this.#op("clamp", [a], (x) => tf.clipByValue(x, min, max));
  }
  greater(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("greater", a, b, (x, y) => tf.cast(tf.greater(x, y), "float32"));
  }
  where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
    return this.#op("where", [cond, a, b], (c, x, y) => tf.where(tf.notEqual(c, 0), x, y));
  }
  detach(a: Tensor): Tensor {
    return this.#op("detach", [a], stopGradient);
  }
  cast(a: Tensor, dtype: DType): Tensor {
    return this.#op("cast", [a], (x) => tf.cast(x, dtype));
  }

  // ---- activations ----

  relu(a: Tensor): Tensor {
    return this.#op("relu", [a], tf.relu);
  }
  leakyRelu(a: Tensor, slope: number): Tensor {
    return this.#op("leakyRelu", [a], (x) => tf.leakyRelu(x, slope));
  }
  gelu(a: Tensor): Tensor {
    // GELU(x) = x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))  (Hendrycks & Gimpel 2016, eq. 1)
    return this.#op(
      "gelu",
      [a],
      (x) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))),
    );
  }
  silu(a: Tensor): Tensor {
    return this.#op("silu", [a], (x) => tf.mul(x, tf.sigmoid(x)));
  }
  tanh(a: Tensor): Tensor {
    return this.#op("tanh", [a], tf.tanh);
  }
  sigmoid(a: Tensor): Tensor {
    return this.#op("sigmoid", [a], tf.sigmoid);
  }
  softmax(a: Tensor, axis: number): Tensor {
    return this.#op("softmax", [a], (x) => {
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
    return this.#op("sum", [a], (x) => tf.sum(x, axesOf(axes, x.rank), keepDims));
  }
  mean(a: Tensor, axes?: readonly number[], keepDims = false): Tensor {
    return this.#op("mean", [a], (x) => tf.mean(x, axesOf(axes, x.rank), keepDims));
  }
  max(a: Tensor, axes?: readonly number[], keepDims = false): Tensor {
    return this.#op("max", [a], (x) => tf.max(x, axesOf(axes, x.rank), keepDims));
  }
  reshape(a: Tensor, shape: readonly number[]): Tensor {
    return this.#op("reshape", [a], (x) => tf.reshape(x, [...shape]));
  }
  permute(a: Tensor, dims: readonly number[]): Tensor {
    const ok = dims.length === a.shape.length &&
      [...dims].map((d) => normAxis(d, dims.length)).sort((p, q) => p - q).every((d, i) => d === i);
    this.#check("permute", [a], ok, `dims [${dims}] are not a permutation of the axes`);
    return this.#op("permute", [a], (x) => tf.transpose(x, dims.map((d) => normAxis(d, x.rank))));
  }
  slice(a: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
    return this.#op("slice", [a], (x) => tf.slice(x, [...begin], [...size]));
  }
  cat(xs: readonly Tensor[], axis: number): Tensor {
    this.#check("cat", xs, xs.length > 0, "needs at least one tensor");
    return this.#op("cat", xs, (...ts) => tf.concat(ts, normAxis(axis, ts[0].rank)));
  }
  gather(a: Tensor, indices: Tensor, axis: number): Tensor {
    this.#check("gather", [a, indices], indices.dtype === "int32", "indices must be int32");
    const ax = normAxis(axis, a.shape.length);
    const dim = a.shape[ax];
    // Out-of-range indices would read garbage on wasm; PyTorch raises, and so do we.
    const idx = this.read(indices);
    for (const i of idx) {
      this.#check(
        "gather",
        [a, indices],
        i >= 0 && i < dim,
        `index ${i} out of range 0..${dim - 1}`,
      );
    }
    return this.#op("gather", [a, indices], (x, ind) => gatherWithGrad(x, ind, ax));
  }

  // ---- linear algebra and layers ----

  matmul(a: Tensor, b: Tensor): Tensor {
    const ok = a.shape.length >= 2 && b.shape.length >= 2 && a.shape.at(-1) === b.shape.at(-2);
    this.#check("matmul", [a, b], ok, "expects [..., n, k] x [..., k, m]");
    return this.#op("matmul", [a, b], matmulWithGrad);
  }
  linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
    const inputs = b ? [x, w, b] : [x, w];
    const ok = w.shape.length === 2 && x.shape.at(-1) === w.shape[1] &&
      (!b || shapeString(b.shape) === shapeString([w.shape[0]]));
    this.#check("linear", inputs, ok, "expects x [..., in], w [out, in], b [out]");
    return this.#op("linear", inputs, (xt, wt, bt) => {
      const flat = tf.reshape(xt, [-1, w.shape[1]]); // [M, in]
      let y = matmulWithGrad(flat, tf.transpose(wt)); // [M, out]
      if (bt) y = tf.add(y, bt);
      return tf.reshape(y, [...x.shape.slice(0, -1), w.shape[0]]);
    });
  }
  conv2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts: ConvOptions = {}): Tensor {
    const inputs = b ? [x, w, b] : [x, w];
    const { stride = 1, padding = 0 } = opts;
    const ok = x.shape.length === 4 && w.shape.length === 4 && x.shape[1] === w.shape[1] &&
      w.shape[2] === w.shape[3] && (!b || shapeString(b.shape) === shapeString([w.shape[0]]));
    this.#check("conv2d", inputs, ok, "expects x [N, Cin, H, W], w [Cout, Cin, k, k], b [Cout]");
    const [k, s, p] = [w.shape[2], stride, padding];
    const outOk = x.shape[2] + 2 * p >= k && x.shape[3] + 2 * p >= k && s >= 1 && p >= 0;
    this.#check("conv2d", inputs, outOk, `kernel ${k} larger than padded input (padding ${p})`);
    return this.#op("conv2d", inputs, (xt, wt, bt) => {
      const y = conv2dWithGrad(xt, wt, s, p); // [N, Cout, Ho, Wo]
      return bt ? tf.add(y, tf.reshape(bt, [1, -1, 1, 1])) : y;
    });
  }
  convTranspose2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts: ConvOptions = {}): Tensor {
    const inputs = b ? [x, w, b] : [x, w];
    const { stride = 1, padding = 0, outputPadding = 0 } = opts;
    const ok = x.shape.length === 4 && w.shape.length === 4 && x.shape[1] === w.shape[0] &&
      w.shape[2] === w.shape[3] && (!b || shapeString(b.shape) === shapeString([w.shape[1]]));
    this.#check(
      "convTranspose2d",
      inputs,
      ok,
      "expects x [N, Cin, H, W], w [Cin, Cout, k, k], b [Cout]",
    );
    const [k, s, p, op] = [w.shape[2], stride, padding, outputPadding];
    const optsOk = s >= 1 && p >= 0 && op >= 0 && op < s && (x.shape[2] - 1) * s - 2 * p + k > 0;
    this.#check("convTranspose2d", inputs, optsOk, `bad stride ${s} / padding ${p} / ${op}`);
    return this.#op("convTranspose2d", inputs, (xt, wt, bt) => {
      const y = convTranspose2dWithGrad(xt, wt, s, p, op); // [N, Cout, Ho, Wo]
      return bt ? tf.add(y, tf.reshape(bt, [1, -1, 1, 1])) : y;
    });
  }
  groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    const c = x.shape[1];
    const ok = x.shape.length >= 2 && c % groups === 0 && weight.shape.join() === `${c}` &&
      bias.shape.join() === `${c}`;
    this.#check("groupNorm", [x, weight, bias], ok, `${groups} groups for x [N, C, ...], w/b [C]`);
    return this.#op("groupNorm", [x, weight, bias], (xt, wt, bt) => {
      const n = xt.shape[0];
      const xhat = normalizeLastAxis(tf.reshape(xt, [n, groups, -1]), eps); // [N, G, C/G * ...]
      const affineShape = [1, c, ...xt.shape.slice(2).map(() => 1)];
      return tf.add(
        tf.mul(tf.reshape(xhat, xt.shape), tf.reshape(wt, affineShape)),
        tf.reshape(bt, affineShape),
      );
    });
  }
  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    const d = `${x.shape.at(-1)}`;
    const ok = weight.shape.join() === d && bias.shape.join() === d;
    this.#check("layerNorm", [x, weight, bias], ok, "weight and bias must be [D] for x [..., D]");
    return this.#op("layerNorm", [x, weight, bias], (xt, wt, bt) => {
      return tf.add(tf.mul(normalizeLastAxis(xt, eps), wt), bt);
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
    const c = x.shape[1];
    const perChannel = [runningMean, runningVar, weight, bias].every((t) =>
      !t || t.shape.join() === `${c}`
    );
    this.#check("batchNorm", inputs, x.shape.length === 4 && perChannel, "x [N, C, H, W], [C]");
    const count = x.shape[0] * x.shape[2] * x.shape[3];
    this.#check(
      "batchNorm",
      inputs,
      !training || count > 1,
      "training needs more than 1 value per channel",
    );
    const rm = this.#unwrap("batchNorm", runningMean, inputs);
    const rv = this.#unwrap("batchNorm", runningVar, inputs);
    this.#check(
      "batchNorm",
      inputs,
      !training || (rm instanceof tf.Variable && rv instanceof tf.Variable),
      "running statistics must be variables",
    );
    return this.#op("batchNorm", inputs, (xt) => {
      const wt = weight && this.#unwrap("batchNorm", weight, inputs);
      const bt = bias && this.#unwrap("batchNorm", bias, inputs);
      let mean: Tf, variance: Tf; // [1, C, 1, 1]
      if (training) {
        mean = tf.mean(xt, [0, 2, 3], true);
        variance = tf.mean(tf.square(tf.sub(xt, mean)), [0, 2, 3], true);
        // Running statistics: new = (1 - m) * old + m * batch, with the unbiased variance.
        const unbiased = tf.mul(tf.reshape(variance, [c]), count / (count - 1));
        const newMean = tf.add(tf.mul(rm, 1 - momentum), tf.mul(tf.reshape(mean, [c]), momentum));
        const newVar = tf.add(tf.mul(rv, 1 - momentum), tf.mul(unbiased, momentum));
        (rm as tf.Variable).assign(newMean);
        (rv as tf.Variable).assign(newVar);
      } else {
        mean = tf.reshape(rm, [1, c, 1, 1]);
        variance = tf.reshape(rv, [1, c, 1, 1]);
      }
      let y = tf.mul(tf.sub(xt, mean), tf.rsqrt(tf.add(variance, eps)));
      if (wt) y = tf.mul(y, tf.reshape(wt, [1, c, 1, 1]));
      if (bt) y = tf.add(y, tf.reshape(bt, [1, c, 1, 1]));
      return y;
    });
  }
  maxPool2d(x: Tensor, kernel: number, stride: number, padding = 0): Tensor {
    this.#checkPool("maxPool2d", x, kernel, stride, padding);
    // Pad with -inf ourselves so padded cells never win, as in PyTorch.
    return this.#op(
      "maxPool2d",
      [x],
      (xt) => perChannel(xt, (v) => maxPoolWithGrad(padHW(v, padding, -Infinity), kernel, stride)),
    );
  }
  avgPool2d(x: Tensor, kernel: number, stride: number, padding = 0, countIncludePad = true) {
    this.#checkPool("avgPool2d", x, kernel, stride, padding);
    return this.#op("avgPool2d", [x], (xt) =>
      perChannel(xt, (v) => {
        const sumAvg = tf.avgPool(padHW(v, padding, 0), kernel, stride, "valid");
        if (countIncludePad || padding === 0) return sumAvg;
        // count_include_pad=False divides by the number of real (unpadded) cells instead.
        const [, h, w] = v.shape;
        const [ho, wo] = sumAvg.shape.slice(1, 3);
        const scale = poolScale(h, w, ho, wo, kernel, stride, padding); // [Ho, Wo]
        return tf.mul(sumAvg, tf.tensor(scale, [1, ho, wo, 1]));
      }));
  }
  #checkPool(op: string, x: Tensor, kernel: number, stride: number, padding: number): void {
    const ok = x.shape.length === 4 && kernel >= 1 && stride >= 1 && padding >= 0 &&
      2 * padding <= kernel && x.shape[2] + 2 * padding >= kernel &&
      x.shape[3] + 2 * padding >= kernel;
    this.#check(op, [x], ok, `kernel ${kernel}, stride ${stride}, padding ${padding} for x`);
  }
  interpolateBilinear(x: Tensor, size: readonly [number, number], alignCorners: boolean) {
    const ok = x.shape.length === 4 && size[0] >= 1 && size[1] >= 1;
    this.#check("interpolateBilinear", [x], ok, `x [N, C, H, W] to size [${size}]`);
    // tfjs halfPixelCenters is PyTorch's align_corners=False (source = (i + 0.5) * scale - 0.5,
    // clamped at 0); alignCorners is the same in both.
    return this.#op(
      "interpolateBilinear",
      [x],
      (xt) => perChannel(xt, (v) => resizeBilinearWithGrad(v, size[0], size[1], alignCorners)),
    );
  }
  attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const [qs, ks, vs] = [q.shape, k.shape, v.shape];
    const ok = qs.length === 4 && ks.length === 4 && vs.length === 4 &&
      qs[0] === ks[0] && qs[1] === ks[1] && qs[3] === ks[3] && ks.slice(0, 3).join() ===
        vs.slice(0, 3).join() &&
      vs[0] === qs[0];
    this.#check(
      "attention",
      [q, k, v],
      ok,
      "expects q [B, h, Lq, d], k [B, h, L, d], v [B, h, L, dv]",
    );
    return this.#op("attention", [q, k, v], (qt, kt, vt) => {
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
    const ok = pred.shape.join() === target.shape.join();
    this.#check("mseLoss", [pred, target], ok, "pred and target shapes differ");
    return this.#op("mseLoss", [pred, target], (p, t) => tf.mean(tf.square(tf.sub(p, t))));
  }
  bceWithLogits(logits: Tensor, targets: Tensor): Tensor {
    const ok = logits.shape.join() === targets.shape.join();
    this.#check("bceWithLogits", [logits, targets], ok, "logits and targets shapes differ");
    return this.#op("bceWithLogits", [logits, targets], bceWithLogitsWithGrad);
  }

  // ---- autograd and optimisation ----

  valueAndGrad(lossFn: () => Tensor, params: readonly Tensor[]): ValueAndGrad {
    const vars = params.map((p) => this.#unwrap("valueAndGrad", p, params));
    vars.forEach((v, i) => {
      const ok = v instanceof tf.Variable && v.trainable;
      this.#check("valueAndGrad", [params[i]], ok, `parameter ${i} is not a trainable variable`);
    });
    this.#activate("valueAndGrad");
    const { value, grads } = tf.variableGrads(() => {
      const loss = lossFn();
      const t = this.#unwrap("valueAndGrad", loss, [loss]);
      if (t.size !== 1) {
        throw new BackendError("valueAndGrad", [loss.shape], "the loss must be a scalar");
      }
      return tf.reshape(t, []) as tf.Scalar;
    }, vars as tf.Variable[]);
    const lossValue = value.dataSync()[0];
    value.dispose();
    // A parameter the loss does not reach gets a zero gradient (PyTorch would give None).
    const out = vars.map((v) => this.#wrap(grads[(v as tf.Variable).name] ?? tf.zerosLike(v)));
    return { value: lossValue, grads: out };
  }

  noGrad<T>(fn: () => T): T {
    // tfjs records only inside gradient calls; suspend that recording for `fn`. The engine
    // has no public switch, so park the tape state and restore it afterwards.
    const state = tf.engine().state;
    const [depth, tape] = [state.gradientDepth, state.activeTape];
    state.gradientDepth = 0;
    try {
      return fn();
    } finally {
      state.gradientDepth = depth;
      state.activeTape = tape;
    }
  }

  adamStep(
    params: readonly Tensor[],
    grads: readonly Tensor[],
    state: AdamState,
    opts: AdamOptions,
  ): void {
    const all = [...params, ...grads, ...state.m, ...state.v];
    const n = params.length;
    const ok = grads.length === n && state.m.length === n && state.v.length === n &&
      params.every((p, i) =>
        [grads[i], state.m[i], state.v[i]].every((t) => t.shape.join() === p.shape.join())
      );
    this.#check("adamStep", all, ok, "params, grads and moments must match one to one");
    const ts = all.map((t) => this.#unwrap("adamStep", t, all));
    this.#activate("adamStep");
    const { lr, beta1, beta2, eps, weightDecay } = opts;
    const step = state.step + 1;
    // Bias corrections (Kingma & Ba 2015, Algorithm 1); decoupled decay (Loshchilov & Hutter
    // 2019, Algorithm 2), in the order of torch.optim.AdamW.
    const bc1 = 1 - beta1 ** step;
    const bc2 = 1 - beta2 ** step;
    tf.tidy(() => {
      for (let i = 0; i < n; i++) {
        const [p, g, m, v] = [ts[i], ts[n + i], ts[2 * n + i], ts[3 * n + i]] as tf.Variable[];
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
        const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
        const decayed = weightDecay ? tf.mul(p, 1 - lr * weightDecay) : p;
        const denom = tf.add(tf.div(tf.sqrt(v1), Math.sqrt(bc2)), eps);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m1, denom), lr / bc1)));
        m.assign(m1);
        v.assign(v1);
      }
    });
    state.step = step;
  }

  emaUpdate(targets: readonly Tensor[], sources: readonly Tensor[], decay: number): void {
    const all = [...targets, ...sources];
    const ok = targets.length === sources.length &&
      targets.every((t, i) => t.shape.join() === sources[i].shape.join());
    this.#check("emaUpdate", all, ok, "targets and sources must match one to one");
    const ts = all.map((t) => this.#unwrap("emaUpdate", t, all));
    this.#activate("emaUpdate");
    tf.tidy(() => {
      targets.forEach((_, i) => {
        const target = ts[i] as tf.Variable;
        target.assign(tf.add(tf.mul(target, decay), tf.mul(ts[targets.length + i], 1 - decay)));
      });
    });
  }

  dispose(): void {
    if (this.#disposed) return;
    for (const t of this.#owned) if (!t.isDisposed) t.dispose();
    this.#owned.clear();
    this.#disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

// ---- helpers ----

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

function axesOf(axes: readonly number[] | undefined, rank: number): number[] | undefined {
  return axes?.map((a) => normAxis(a, rank));
}

function collectTensors(value: unknown, out: Tf[]): void {
  if (value instanceof TfjsTensor) out.push(value.tf);
  else if (Array.isArray(value)) { for (const v of value) collectTensors(v, out); }
  else if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) collectTensors(v, out);
  }
}
