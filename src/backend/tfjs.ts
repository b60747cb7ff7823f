/**
 * The TensorFlow.js backend: `tfjs-wasm` (XNNPACK kernels, SIMD), the pure-JS `tfjs-cpu`, or
 * `tfjs-webgpu` (directly where synchronous reads exist, a browser; under Deno inside the GPU
 * worker of webgpu_backend.ts, see webgpu.ts for why).
 *
 * The interface is NCHW with PyTorch weight layouts; tfjs convolutions are NHWC. A conv's
 * output therefore stays channels-last (the handle records it and reports the NCHW shape), and
 * the ops that usually follow a conv (elementwise, broadcasting with per-channel tensors, group
 * and batch norm, pooling, resize, cat, reductions) work on it directly, so a chain of
 * conv -> norm -> activation -> conv runs without transposes. Any other op gets the NCHW order
 * by one transpose. Pooling and resizing of NCHW tensors run on `[N*C, H, W, 1]` views, also
 * without transposes.
 *
 * Gradients that wasm lacks, runs slowly or gets wrong (conv, matmul, gather, pooling,
 * resize, abs, BCE) are custom gradients built from fast forward kernels: see tfjs_kernels.ts
 * and tfjs_conv.ts.
 * wasm runs single-threaded: tfjs disables its threaded build outside browsers.
 *
 * tfjs has a single global engine. Each op switches it to this instance's kernel backend
 * before running, so a wasm and a cpu instance can live in one process; a handle used with the
 * wrong instance, or after {@link Backend.dispose}, raises {@link BackendError}.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
// Registers the "wasm" kernel backend; Deno drops an import that binds nothing unless it is
// a bare side-effect import like this one.
import "npm:@tensorflow/tfjs-backend-wasm@4.22.0";
import { acquireConvWorker, type ConvWorker, releaseConvWorker } from "./tfjs_worker.ts";
import {
  type AdamOptions,
  type AdamState,
  type Backend,
  type BackendCapabilities,
  BackendError,
  BackendUnavailableError,
  type BatchNormOptions,
  type Conv2dOptions,
  type ConvOptions,
  type DType,
  type Keepable,
  type Tensor,
  type ValueAndGrad,
} from "./backend.ts";
import {
  absWithGrad,
  bceWithLogitsWithGrad,
  gatherWithGrad,
  greaterMask,
  matmulWithGrad,
  maxPoolWithGrad,
  normalizeOver,
  padHW,
  perChannel,
  poolScale,
  resizeBilinearWithGrad,
  stopGradient,
  type Tf,
} from "./tfjs_kernels.ts";
import { conv2dWithGrad, convTranspose2dWithGrad } from "./tfjs_conv.ts";
import {
  axesOf,
  collectTensors,
  errorText,
  nchw,
  nhwc,
  NHWC_AXIS,
  normAxis,
  type Out,
  sameLayout,
  TfjsTensor,
  toChannelsLast,
} from "./tfjs_tensor.ts";
import * as V from "./validate.ts";
import { groupedAttention, needsGrouping } from "./tfjs_attention.ts";
import { probeWebGpu, type WebGpuAdapterInfo, webGpuSyncReadProblem } from "./webgpu.ts";
import {
  type HeapMeter,
  heapMeterOf,
  isWasmFault,
  WASM_TENSOR_BUDGET,
  wasmFaultDetail,
} from "./tfjs_memory.ts";

/** Which tfjs kernel backend an instance runs on ("webgl" only in browsers: src/web/browser). */
export type TfjsKind = "wasm" | "cpu" | "webgpu" | "webgl";

// tfjs prints a "install tfjs-node" banner and debug warnings unless in production mode.
tf.enableProdMode();

/**
 * Creates a TensorFlow.js backend. Throws {@link BackendUnavailableError} when the kernel
 * backend cannot initialise (e.g. WebAssembly missing). Under Deno, tfjs-webgpu is made by
 * webgpu_backend.ts (this backend in a worker); `opts.readsAsync` is that worker's.
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
export async function createTfjsBackend(
  kind: TfjsKind,
  opts: { readsAsync?: boolean } = {},
): Promise<Backend> {
  let adapter: WebGpuAdapterInfo | null = null;
  if (kind === "webgpu") {
    adapter = await probeWebGpu();
    if (!adapter) {
      throw new BackendUnavailableError(
        "tfjs-webgpu",
        "no WebGPU adapter (navigator.gpu found none; on Linux a Vulkan driver is needed)",
      );
    }
    // `readsAsync`: the caller (the GPU worker of webgpu_worker.ts) reads tensors with tfjs's
    // async data(), never through this backend's synchronous read().
    const problem = opts.readsAsync ? null : webGpuSyncReadProblem();
    if (problem) {
      const soft = adapter.software ? ", software" : "";
      throw new BackendUnavailableError(
        "tfjs-webgpu",
        `adapter ${adapter.description}${soft} found, but ${problem}`,
      );
    }
    // Registers the "webgpu" kernel backend; only where it can run (see webgpu.ts).
    await import("npm:@tensorflow/tfjs-backend-webgpu@4.22.0");
  }
  let ok = false;
  try {
    ok = await tf.setBackend(kind);
  } catch (e) {
    throw new BackendUnavailableError(`tfjs-${kind}`, errorText(e));
  }
  if (!ok || tf.getBackend() !== kind) {
    throw new BackendUnavailableError(`tfjs-${kind}`, `tf.setBackend("${kind}") failed`);
  }
  if (kind === "webgpu") {
    const backend = new TfjsBackend(kind);
    backend.adapter = adapter;
    return backend;
  }
  if (kind !== "wasm") return new TfjsBackend(kind);
  return new TfjsBackend(kind, acquireConvWorker(), heapMeterOf(tf.backend()));
}

class TfjsBackend implements Backend {
  readonly name: string;
  readonly version: string = tf.version.tfjs;
  readonly capabilities: BackendCapabilities = {
    eighFloat64: false,
    autocast: false,
    fusedConvActivation: false,
    memoryLimitBytes: null,
  };
  readonly #kind: TfjsKind;
  /** Tensor bytes on the wasm heap (wasm only): peakBytes() and out-of-memory errors. */
  readonly #heap: HeapMeter | undefined;
  /** Computes half of each large conv on a second core (tfjs_worker.ts); wasm only. */
  #convWorker: ConvWorker | undefined;
  /** Every tfjs tensor this instance handed out, for dispose(); pruned of freed ones lazily. */
  #owned = new Set<Tf>();
  #pruneAt = 4096;
  #disposed = false;

  constructor(kind: TfjsKind, convWorker?: ConvWorker, heap?: HeapMeter) {
    this.#kind = kind;
    this.#heap = heap;
    if (heap) this.capabilities = { ...this.capabilities, memoryLimitBytes: WASM_TENSOR_BUDGET };
    this.name = `tfjs-${kind}`;
    this.#convWorker = convWorker;
  }

  /** The WebGPU adapter (tfjs-webgpu only). */
  adapter: WebGpuAdapterInfo | null = null;

  get device(): string {
    if (this.#kind === "cpu") return "cpu (pure JavaScript)";
    if (this.#kind === "webgpu") {
      const a = this.adapter;
      return `webgpu (${a?.description ?? "unknown adapter"}${a?.software ? ", software" : ""})`;
    }
    if (this.#kind === "webgl") return `webgl ${tf.env().getNumber("WEBGL_VERSION")}`;
    const simd = tf.env().getBool("WASM_HAS_SIMD_SUPPORT") ? "SIMD" : "no SIMD";
    const worker = this.#convWorker;
    if (!worker) return `wasm (${simd}, 1 thread)`;
    if (worker.failure !== undefined && !this.#disposed) {
      return `wasm (${simd}, 1 thread; conv worker off: ${worker.failure})`;
    }
    return `wasm (${simd}, 1 thread + 1 worker for large convs)`;
  }

  // ---- plumbing ----

  #activate(op: string): void {
    if (this.#disposed) throw new BackendError(op, [], `backend ${this.name} was disposed`);
    if (this.#heap?.broken) {
      throw new BackendError(op, [], wasmFaultDetail(this.#heap.broken, this.#heap));
    }
    if (tf.getBackend() !== this.#kind) {
      // The backend is initialised, so setBackend switches synchronously; the promise it
      // returns carries nothing more.
      void tf.setBackend(this.#kind);
    }
  }

  /** The handle behind `t`, checked to be this instance's and alive. */
  #handle(op: string, t: Tensor, all: readonly Tensor[]): TfjsTensor {
    const shapes = all.map((x) => x.shape);
    if (!(t instanceof TfjsTensor) || t.owner !== this) {
      throw new BackendError(op, shapes, `got a tensor of backend ${t.backend}, not ${this.name}`);
    }
    if (t.tf.isDisposed) throw new BackendError(op, shapes, "a tensor was already disposed");
    return t;
  }

  #wrap(t: Tf, channelsLast = false): TfjsTensor {
    this.#owned.add(t);
    if (this.#owned.size >= this.#pruneAt) {
      for (const x of this.#owned) if (x.isDisposed) this.#owned.delete(x);
      this.#pruneAt = Math.max(4096, 2 * this.#owned.size);
    }
    return new TfjsTensor(this, t, channelsLast && t.rank === 4);
  }

  /** Runs one op: checks the handles, switches the engine, frees temporaries, names errors. */
  #run(op: string, inputs: readonly Tensor[], fn: (...hs: TfjsTensor[]) => Out): Tensor {
    const hs = inputs.map((t) => this.#handle(op, t, inputs));
    this.#activate(op);
    try {
      let channelsLast = false;
      const t = tf.tidy(() => {
        const out = fn(...hs);
        channelsLast = out.channelsLast;
        return out.t;
      });
      return this.#wrap(t, channelsLast);
    } catch (e) {
      if (e instanceof BackendError) throw e;
      throw new BackendError(op, inputs.map((t) => t.shape), this.#failure(e));
    }
  }

  /** The detail of a kernel's failure: a wasm fault says what memory it needed and what to do. */
  #failure(e: unknown): string {
    return this.#kind === "wasm" && isWasmFault(e) ? wasmFaultDetail(e, this.#heap) : errorText(e);
  }

  /** An op on NCHW tensors with an NCHW result. */
  #op(op: string, inputs: readonly Tensor[], fn: (...xs: Tf[]) => Tf): Tensor {
    return this.#run(op, inputs, (...hs) => ({ t: fn(...hs.map(nchw)), channelsLast: false }));
  }

  /** An elementwise op: works in whatever layout its input has. */
  #unary(op: string, a: Tensor, fn: (x: Tf) => Tf): Tensor {
    return this.#run(op, [a], (h) => ({ t: fn(h.tf), channelsLast: h.channelsLast }));
  }

  #check(op: string, inputs: readonly Tensor[], ok: boolean, detail: string): void {
    if (!ok) throw new BackendError(op, inputs.map((t) => t.shape), detail);
  }

  /** A broadcasting binary op; a channels-last operand keeps the result channels-last. */
  #binary(op: string, a: Tensor, b: Tensor | number, f: (x: Tf, y: Tf) => Tf): Tensor {
    if (typeof b === "number") {
      return this.#unary(op, a, (x) => f(x, tf.scalar(b, x.dtype)));
    }
    V.checkBinary(op, a, b);
    return this.#run(op, [a, b], (x, y) => {
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
    return this.#run(op, [a], (h) => {
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

  // ---- creation and reading ----

  tensor(data: Float32Array | Int32Array | number[], shape: readonly number[], dtype?: DType) {
    const type: DType = dtype ?? (data instanceof Int32Array ? "int32" : "float32");
    V.checkTensorData(data.length, shape, type);
    // Always copy: the cpu kernels would otherwise keep the caller's array as storage.
    const copy = type === "int32" ? Int32Array.from(data) : Float32Array.from(data);
    return this.#op("tensor", [], () => tf.tensor(copy, [...shape], type));
  }

  zeros(shape: readonly number[]): Tensor {
    V.checkShape("zeros", shape);
    return this.#op("zeros", [], () => tf.zeros([...shape]));
  }

  full(shape: readonly number[], value: number): Tensor {
    V.checkShape("full", shape);
    return this.#op("full", [], () => tf.fill([...shape], value));
  }

  read(t: Tensor): Float32Array | Int32Array {
    const h = this.#handle("read", t, [t]);
    this.#activate("read");
    const x = h.channelsLast ? tf.tidy(() => nchw(h)) : h.tf;
    try {
      const data = x.dataSync() as Float32Array | Int32Array;
      // The cpu backend returns its own storage; hand out a copy so callers cannot corrupt it.
      return this.#kind === "cpu" && x === h.tf ? data.slice() : data;
    } finally {
      if (x !== h.tf) x.dispose();
    }
  }

  variable(init: Tensor, trainable: boolean): Tensor {
    return this.#op("variable", [init], (x) => tf.variable(x, trainable));
  }

  assign(variable: Tensor, value: Tensor): void {
    V.checkAssign(variable, value);
    const v = this.#handle("assign", variable, [variable, value]).tf;
    const x = this.#handle("assign", value, [variable, value]);
    const ok = v instanceof tf.Variable;
    this.#check("assign", [variable, value], ok, "target is not a variable");
    this.#activate("assign");
    tf.tidy(() => (v as tf.Variable).assign(nchw(x)));
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

  peakBytes(fn: () => Keepable): number {
    const heap = this.#heap;
    const run = () => {
      this.scope(() => {
        fn();
      });
    };
    if (!heap) {
      run();
      return NaN;
    }
    return heap.peak(run);
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
    return this.#op("where", [cond, a, b], (c, x, y) => tf.where(tf.notEqual(c, 0), x, y));
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
    return this.#unary("leakyRelu", a, (x) => tf.leakyRelu(x, slope));
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
    return this.#op("reshape", [a], (x) => tf.reshape(x, [...shape]));
  }
  permute(a: Tensor, dims: readonly number[]): Tensor {
    V.checkPermute(a, dims);
    return this.#op("permute", [a], (x) => tf.transpose(x, dims.map((d) => normAxis(d, x.rank))));
  }
  slice(a: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
    // tfjs-wasm reads past the end without complaint: the shared check rejects it first.
    V.checkSlice(a, begin, size);
    return this.#op("slice", [a], (x) => tf.slice(x, [...begin], [...size]));
  }
  cat(xs: readonly Tensor[], axis: number): Tensor {
    V.checkCat(xs, axis);
    return this.#run("cat", xs, (...hs) => {
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
    return this.#op("gather", [a, indices], (x, ind) => gatherWithGrad(x, ind, ax));
  }

  // ---- linear algebra and layers ----

  matmul(a: Tensor, b: Tensor): Tensor {
    V.checkMatmul(a, b);
    return this.#op("matmul", [a, b], matmulWithGrad);
  }
  linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
    const inputs = b ? [x, w, b] : [x, w];
    V.checkLinear(x, w, b);
    return this.#op("linear", inputs, (xt, wt, bt) => {
      const flat = tf.reshape(xt, [-1, w.shape[1]]); // [M, in]
      let y = matmulWithGrad(flat, tf.transpose(wt)); // [M, out]
      if (bt) y = tf.add(y, bt);
      return tf.reshape(y, [...x.shape.slice(0, -1), w.shape[0]]);
    });
  }
  conv2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts: Conv2dOptions = {}): Tensor {
    const inputs = b ? [x, w, b] : [x, w];
    const { stride = 1, padding = 0, activation } = opts;
    const [ph, pw] = typeof padding === "number" ? [padding, padding] : padding;
    V.checkConv2d(x, w, b, { stride, padding: [ph, pw], activation });
    const s = stride;
    return this.#run("conv2d", inputs, (xh, wh, bh) => {
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
    return this.#run("convTranspose2d", inputs, (xh, wh, bh) => {
      const y = convTranspose2dWithGrad(nhwc(xh), nchw(wh), s, p, op); // [N, Ho, Wo, Cout]
      return { t: bh ? tf.add(y, bh.tf) : y, channelsLast: true };
    });
  }
  groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    V.checkGroupNorm(x, groups, weight, bias);
    const c = x.shape[1];
    return this.#run("groupNorm", [x, weight, bias], (xh, wh, bh) => {
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
    return this.#op("layerNorm", [x, weight, bias], (xt, wt, bt) => {
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
    const rm = this.#handle("batchNorm", runningMean, inputs).tf;
    const rv = this.#handle("batchNorm", runningVar, inputs).tf;
    this.#check(
      "batchNorm",
      inputs,
      !training || (rm instanceof tf.Variable && rv instanceof tf.Variable),
      "running statistics must be variables",
    );
    return this.#run("batchNorm", inputs, (xh) => {
      const xt = xh.tf;
      // Per-channel statistics broadcast as [1, C, 1, 1], or as [C] over channels-last.
      const axes = xh.channelsLast ? [0, 1, 2] : [0, 2, 3];
      const statShape = xh.channelsLast ? [c] : [1, c, 1, 1];
      let mean: Tf, variance: Tf;
      if (training) {
        mean = tf.reshape(tf.mean(xt, axes), statShape);
        variance = tf.reshape(tf.mean(tf.square(tf.sub(xt, mean)), axes), statShape);
        // Running statistics: new = (1 - m) * old + m * batch, with the unbiased variance.
        const unbiased = tf.mul(tf.reshape(variance, [c]), count / (count - 1));
        const newMean = tf.add(tf.mul(rm, 1 - momentum), tf.mul(tf.reshape(mean, [c]), momentum));
        const newVar = tf.add(tf.mul(rv, 1 - momentum), tf.mul(unbiased, momentum));
        (rm as tf.Variable).assign(newMean);
        (rv as tf.Variable).assign(newVar);
      } else {
        mean = tf.reshape(rm, statShape);
        variance = tf.reshape(rv, statShape);
      }
      let y = tf.mul(tf.sub(xt, mean), tf.rsqrt(tf.add(variance, eps)));
      if (weight) {
        y = tf.mul(y, tf.reshape(this.#handle("batchNorm", weight, inputs).tf, statShape));
      }
      if (bias) y = tf.add(y, tf.reshape(this.#handle("batchNorm", bias, inputs).tf, statShape));
      return { t: y, channelsLast: xh.channelsLast };
    });
  }
  maxPool2d(x: Tensor, kernel: number, stride: number, padding = 0): Tensor {
    V.checkPool("maxPool2d", x, kernel, stride, padding);
    // Pad with -inf ourselves so padded cells never win, as in PyTorch.
    const pool = (v: Tf) => maxPoolWithGrad(padHW(v, padding, -Infinity), kernel, stride);
    return this.#run("maxPool2d", [x], (h) => ({
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
    return this.#run("avgPool2d", [x], (h) => ({
      t: h.channelsLast ? pool(h.tf) : perChannel(h.tf, pool),
      channelsLast: h.channelsLast,
    }));
  }
  interpolateBilinear(x: Tensor, size: readonly [number, number], alignCorners: boolean) {
    V.checkInterpolate(x, size);
    // tfjs halfPixelCenters is PyTorch's align_corners=False (source = (i + 0.5) * scale - 0.5,
    // clamped at 0); alignCorners is the same in both.
    const resize = (v: Tf) => resizeBilinearWithGrad(v, size[0], size[1], alignCorners);
    return this.#run("interpolateBilinear", [x], (h) => ({
      t: h.channelsLast ? resize(h.tf) : perChannel(h.tf, resize),
      channelsLast: h.channelsLast,
    }));
  }
  attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const [qs, ks] = [q.shape, k.shape];
    V.checkAttention(q, k, v);
    return this.#op("attention", [q, k, v], (qt, kt, vt) => {
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
    return this.#run("mseLoss", [pred, target], (p, t) => {
      const [x, y] = sameLayout(p, t);
      return { t: tf.mean(tf.square(tf.sub(x, y))), channelsLast: false };
    });
  }
  bceWithLogits(logits: Tensor, targets: Tensor): Tensor {
    V.checkSameShape("bceWithLogits", logits, targets);
    return this.#run("bceWithLogits", [logits, targets], (l, t) => {
      return { t: bceWithLogitsWithGrad(...sameLayout(l, t)), channelsLast: false };
    });
  }

  // ---- autograd and optimisation ----

  valueAndGrad(lossFn: () => Tensor, params: readonly Tensor[]): ValueAndGrad {
    const vars = params.map((p) => this.#handle("valueAndGrad", p, params).tf);
    vars.forEach((v, i) => {
      const ok = v instanceof tf.Variable && v.trainable;
      this.#check("valueAndGrad", [params[i]], ok, `parameter ${i} is not a trainable variable`);
    });
    this.#activate("valueAndGrad");
    let forwardDone = false;
    let result: ReturnType<typeof tf.variableGrads>;
    try {
      result = tf.variableGrads(() => {
        const loss = lossFn();
        const t = this.#handle("valueAndGrad", loss, [loss]).tf;
        if (t.size !== 1) {
          throw new BackendError("valueAndGrad", [loss.shape], "the loss must be a scalar");
        }
        forwardDone = true;
        return tf.reshape(t, []) as tf.Scalar;
      }, vars as tf.Variable[]);
    } catch (e) {
      // Errors of lossFn pass through as they are; a failure while back-propagating is ours.
      if (!forwardDone || e instanceof BackendError) throw e;
      throw new BackendError("valueAndGrad", params.map((p) => p.shape), this.#failure(e));
    }
    const { value, grads } = result;
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
    V.checkAdam(params, grads, state.m, state.v);
    const n = params.length;
    const hs = all.map((t) => this.#handle("adamStep", t, all));
    this.#activate("adamStep");
    const { lr, beta1, beta2, eps, weightDecay } = opts;
    const step = state.step + 1;
    // Bias corrections (Kingma & Ba 2015, Algorithm 1); decoupled decay (Loshchilov & Hutter
    // 2019, Algorithm 2), in the order of torch.optim.AdamW.
    const bc1 = 1 - beta1 ** step;
    const bc2 = 1 - beta2 ** step;
    tf.tidy(() => {
      for (let i = 0; i < n; i++) {
        const [p, m, v] = [hs[i].tf, hs[2 * n + i].tf, hs[3 * n + i].tf] as tf.Variable[];
        const g = nchw(hs[n + i]);
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
    V.checkPairs("emaUpdate", targets, sources, ["targets", "sources"]);
    const hs = all.map((t) => this.#handle("emaUpdate", t, all));
    this.#activate("emaUpdate");
    tf.tidy(() => {
      targets.forEach((_, i) => {
        const target = hs[i].tf as tf.Variable;
        const source = nchw(hs[targets.length + i]);
        target.assign(tf.add(tf.mul(target, decay), tf.mul(source, 1 - decay)));
      });
    });
  }

  eighFloat64(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
    V.checkEigh(this.capabilities, a.length, n);
    throw new BackendError("eighFloat64", [[a.length]], "unreachable: declared unsupported");
  }

  setAutocast(dtype: "bfloat16" | "float32"): void {
    V.checkAutocast(this.capabilities, dtype); // "float32" is the only mode and stays on
  }

  dispose(): void {
    if (this.#disposed) return;
    for (const t of this.#owned) if (!t.isDisposed) t.dispose();
    this.#owned.clear();
    this.#disposed = true;
    if (this.#convWorker) releaseConvWorker();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
