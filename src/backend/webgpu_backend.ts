/**
 * `tfjs-webgpu` under Deno: a {@link Backend} on the main thread whose every op is a
 * synchronous request to a worker that owns the GPU (webgpu_worker.ts, over the shared-memory
 * channel of webgpu_channel.ts). Deno has WebGPU but not the OffscreenCanvas 2D context that
 * tfjs-webgpu's synchronous read needs; the worker reads with `mapAsync` while this thread
 * waits (see webgpu_channel.ts for why that works).
 *
 * The tensors here are handles: the worker's id, shape and dtype. Closures never cross
 * threads, so the memory and gradient calls are kept on this side:
 * - `scope` records the handles made while `fn` runs and frees those not returned (variables
 *   excepted), as `tf.tidy` would; frees travel with the next request.
 * - `valueAndGrad` sends "open the tape", runs `lossFn` here (its ops go to the worker as usual
 *   and are recorded there), then "gradients of this loss"; it frees what `lossFn` made.
 * - `noGrad` brackets `fn` with "pause the tape" and "resume it".
 * The worker is at the top of its loop for every request, so `read` works anywhere, inside a
 * scope or a loss function included. Ops and their checks are tfjs.ts's, run in the worker,
 * so errors are the same BackendErrors (op, shapes, detail) as on tfjs-wasm.
 *
 * @module
 */
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
import type { WebGpuAdapterInfo } from "./webgpu.ts";
import { acquireLink, releaseLink, type WebGpuLink } from "./webgpu_link.ts";

/** A tensor living in the GPU worker: its id there, shape and dtype. */
export class WebGpuTensor implements Tensor {
  #disposed = false;
  constructor(
    readonly owner: WebGpuBackend,
    readonly id: number,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly isVariable: boolean,
  ) {}
  get backend(): string {
    return this.owner.name;
  }
  get disposed(): boolean {
    return this.#disposed;
  }
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.owner.release(this);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Starts the GPU worker and returns the backend. Throws {@link BackendUnavailableError} when the
 * worker cannot create a WebGPU device and tfjs-webgpu on it.
 *
 * @example
 * ```ts ignore
 * import { createWebGpuBackend } from "./webgpu_backend.ts";
 * using b = await createWebGpuBackend(null);
 * console.log(b.read(b.add(b.tensor([1, 2], [2]), 1))); // Float32Array [2, 3]
 * ```
 */
export async function createWebGpuBackend(adapter: WebGpuAdapterInfo | null): Promise<Backend> {
  const url = new URL("./webgpu_worker.ts", import.meta.url);
  const link = await acquireLink(url).catch((e) => {
    throw new BackendUnavailableError("tfjs-webgpu", e instanceof Error ? e.message : String(e));
  });
  try {
    const hello = link.call("hello", []) as {
      device: string;
      version: string;
      capabilities: BackendCapabilities;
    };
    return new WebGpuBackend(link, hello.device, hello.version, hello.capabilities, adapter);
  } catch (e) {
    releaseLink(link);
    throw e;
  }
}

/** The main thread's tfjs-webgpu backend; see the module comment. */
export class WebGpuBackend implements Backend {
  readonly name = "tfjs-webgpu";
  /** Handles made inside each open scope (innermost last); variables are never recorded. */
  readonly #scopes: Set<WebGpuTensor>[] = [];
  /** Ids freed here and not yet freed in the worker (they go with the next request). */
  #freed: number[] = [];
  /** Every live handle (variables too), freed in the worker by {@link dispose}. */
  readonly #live = new Set<WebGpuTensor>();
  #disposed = false;

  constructor(
    readonly link: WebGpuLink,
    readonly device: string,
    readonly version: string,
    readonly capabilities: BackendCapabilities,
    /** The WebGPU adapter found on the main thread (null: not probed). */
    readonly adapter: WebGpuAdapterInfo | null,
  ) {}

  /** Frees a handle's tensor in the worker (with the next request). */
  release(t: WebGpuTensor): void {
    if (this.#disposed) return;
    this.#live.delete(t);
    this.#freed.push(t.id);
    for (const scope of this.#scopes) scope.delete(t);
  }

  /** Sends one request and returns its result with tensors as new handles. */
  #call(op: string, inputs: readonly Tensor[], args: unknown[]): unknown {
    if (this.#disposed) throw new BackendError(op, [], `backend ${this.name} was disposed`);
    for (const t of inputs) this.#check(op, t, inputs);
    const free = this.#freed;
    this.#freed = [];
    return this.link.call(op, args, {
      free,
      shapes: inputs.map((t) => t.shape),
      toWire: (v) => v instanceof WebGpuTensor ? { $t: v.id } : undefined,
      fromWire: (w) => {
        const t = new WebGpuTensor(this, w.id, w.shape, w.dtype, op === "variable");
        this.#live.add(t);
        if (!t.isVariable) this.#scopes.at(-1)?.add(t);
        return t;
      },
    });
  }

  #check(op: string, t: Tensor, all: readonly Tensor[]): void {
    const shapes = all.map((x) => x.shape);
    if (!(t instanceof WebGpuTensor) || t.owner !== this) {
      throw new BackendError(op, shapes, `got a tensor of backend ${t.backend}, not ${this.name}`);
    }
    if (t.disposed) throw new BackendError(op, shapes, "a tensor was already disposed");
  }

  /** An op whose arguments are `inputs` (tensors) and then `rest`, returning one tensor. */
  #op(op: string, inputs: readonly (Tensor | undefined)[], ...rest: unknown[]): Tensor {
    const present = inputs.filter((t): t is Tensor => t !== undefined);
    return this.#call(op, present, [...inputs, ...rest]) as Tensor;
  }

  /** A broadcasting binary op whose second operand may be a number. */
  #binary(op: string, a: Tensor, b: Tensor | number): Tensor {
    if (typeof b === "number") return this.#call(op, [a], [a, b]) as Tensor;
    return this.#op(op, [a, b]);
  }

  // ---- creation and reading ----

  tensor(data: Float32Array | Int32Array | number[], shape: readonly number[], dtype?: DType) {
    const type: DType = dtype ?? (data instanceof Int32Array ? "int32" : "float32");
    // Typed arrays travel as binary; the worker's tensor() checks length and shape.
    const payload = Array.isArray(data)
      ? (type === "int32" ? Int32Array.from(data) : Float32Array.from(data))
      : data;
    return this.#op("tensor", [], payload, shape, type);
  }
  zeros(shape: readonly number[]): Tensor {
    return this.#op("zeros", [], shape);
  }
  full(shape: readonly number[], value: number): Tensor {
    return this.#op("full", [], shape, value);
  }
  read(t: Tensor): Float32Array | Int32Array {
    return this.#call("read", [t], [t]) as Float32Array | Int32Array;
  }
  variable(init: Tensor, trainable: boolean): Tensor {
    return this.#op("variable", [init], trainable);
  }
  assign(variable: Tensor, value: Tensor): void {
    this.#call("assign", [variable, value], [variable, value]);
  }

  // ---- memory ----

  scope<T extends Keepable>(fn: () => T): T {
    if (this.#disposed) throw new BackendError("scope", [], `backend ${this.name} was disposed`);
    const made = new Set<WebGpuTensor>();
    this.#scopes.push(made);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.#endScope(made, new Set());
      throw e;
    }
    const kept = new Set<WebGpuTensor>();
    collectHandles(result, kept);
    this.#endScope(made, kept);
    // What survives belongs to the enclosing scope, as with tf.tidy.
    for (const t of kept) if (!t.isVariable && !t.disposed) this.#scopes.at(-1)?.add(t);
    return result;
  }

  #endScope(made: Set<WebGpuTensor>, kept: Set<WebGpuTensor>): void {
    const at = this.#scopes.lastIndexOf(made);
    if (at >= 0) this.#scopes.splice(at, 1);
    for (const t of made) if (!kept.has(t)) t.dispose();
  }

  liveTensors(): number {
    return (this.#call("liveTensors", [], []) as { tensors: number }).tensors;
  }
  liveBytes(): number {
    return this.#call("liveBytes", [], []) as number;
  }
  peakBytes(fn: () => Keepable): number {
    // The worker's tfjs-webgpu counts no peak (memoryLimitBytes is null): run and say NaN.
    this.scope(() => {
      fn();
    });
    return NaN;
  }

  // ---- elementwise, activations ----

  add(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("add", a, b);
  }
  sub(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("sub", a, b);
  }
  mul(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("mul", a, b);
  }
  div(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("div", a, b);
  }
  greater(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("greater", a, b);
  }
  pow(a: Tensor, p: number): Tensor {
    return this.#op("pow", [a], p);
  }
  neg(a: Tensor): Tensor {
    return this.#op("neg", [a]);
  }
  exp(a: Tensor): Tensor {
    return this.#op("exp", [a]);
  }
  log(a: Tensor): Tensor {
    return this.#op("log", [a]);
  }
  sqrt(a: Tensor): Tensor {
    return this.#op("sqrt", [a]);
  }
  abs(a: Tensor): Tensor {
    return this.#op("abs", [a]);
  }
  clamp(a: Tensor, min: number, max: number): Tensor {
    return this.#op("clamp", [a], min, max);
  }
  where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
    return this.#op("where", [cond, a, b]);
  }
  detach(a: Tensor): Tensor {
    return this.#op("detach", [a]);
  }
  cast(a: Tensor, dtype: DType): Tensor {
    return this.#op("cast", [a], dtype);
  }
  relu(a: Tensor): Tensor {
    return this.#op("relu", [a]);
  }
  leakyRelu(a: Tensor, slope: number): Tensor {
    return this.#op("leakyRelu", [a], slope);
  }
  gelu(a: Tensor): Tensor {
    return this.#op("gelu", [a]);
  }
  silu(a: Tensor): Tensor {
    return this.#op("silu", [a]);
  }
  tanh(a: Tensor): Tensor {
    return this.#op("tanh", [a]);
  }
  sigmoid(a: Tensor): Tensor {
    return this.#op("sigmoid", [a]);
  }
  softmax(a: Tensor, axis: number): Tensor {
    return this.#op("softmax", [a], axis);
  }

  // ---- reductions and shape ----

  sum(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor {
    return this.#op("sum", [a], axes, keepDims);
  }
  mean(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor {
    return this.#op("mean", [a], axes, keepDims);
  }
  max(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor {
    return this.#op("max", [a], axes, keepDims);
  }
  reshape(a: Tensor, shape: readonly number[]): Tensor {
    return this.#op("reshape", [a], shape);
  }
  permute(a: Tensor, dims: readonly number[]): Tensor {
    return this.#op("permute", [a], dims);
  }
  slice(a: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
    return this.#op("slice", [a], begin, size);
  }
  cat(xs: readonly Tensor[], axis: number): Tensor {
    return this.#call("cat", xs, [xs, axis]) as Tensor;
  }
  gather(a: Tensor, indices: Tensor, axis: number): Tensor {
    return this.#op("gather", [a, indices], axis);
  }

  // ---- linear algebra and layers ----

  matmul(a: Tensor, b: Tensor): Tensor {
    return this.#op("matmul", [a, b]);
  }
  linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
    return this.#op("linear", [x, w, b]);
  }
  conv2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts?: Conv2dOptions): Tensor {
    return this.#op("conv2d", [x, w, b], opts);
  }
  convTranspose2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts?: ConvOptions): Tensor {
    return this.#op("convTranspose2d", [x, w, b], opts);
  }
  groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps?: number): Tensor {
    return this.#call("groupNorm", [x, weight, bias], [x, groups, weight, bias, eps]) as Tensor;
  }
  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps?: number): Tensor {
    return this.#op("layerNorm", [x, weight, bias], eps);
  }
  batchNorm(
    x: Tensor,
    weight: Tensor | undefined,
    bias: Tensor | undefined,
    runningMean: Tensor,
    runningVar: Tensor,
    opts: BatchNormOptions,
  ): Tensor {
    return this.#op("batchNorm", [x, weight, bias, runningMean, runningVar], opts);
  }
  maxPool2d(x: Tensor, kernel: number, stride: number, padding?: number): Tensor {
    return this.#op("maxPool2d", [x], kernel, stride, padding);
  }
  avgPool2d(
    x: Tensor,
    kernel: number,
    stride: number,
    padding?: number,
    countIncludePad?: boolean,
  ): Tensor {
    return this.#op("avgPool2d", [x], kernel, stride, padding, countIncludePad);
  }
  interpolateBilinear(x: Tensor, size: readonly [number, number], alignCorners: boolean) {
    return this.#op("interpolateBilinear", [x], size, alignCorners);
  }
  attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
    return this.#op("attention", [q, k, v]);
  }
  mseLoss(pred: Tensor, target: Tensor): Tensor {
    return this.#op("mseLoss", [pred, target]);
  }
  bceWithLogits(logits: Tensor, targets: Tensor): Tensor {
    return this.#op("bceWithLogits", [logits, targets]);
  }

  // ---- autograd and optimisation ----

  valueAndGrad(lossFn: () => Tensor, params: readonly Tensor[]): ValueAndGrad {
    this.#call("vg.begin", params, [params]);
    const made = new Set<WebGpuTensor>();
    this.#scopes.push(made);
    let loss: Tensor;
    try {
      loss = lossFn();
    } catch (e) {
      this.#endScope(made, new Set());
      this.#abortTape();
      throw e; // errors of lossFn pass through as they are
    }
    // The gradients belong to the enclosing scope, not to lossFn's.
    this.#endScope(made, new Set(loss instanceof WebGpuTensor ? [loss] : []));
    try {
      return this.#call("vg.end", [loss, ...params], [loss, params]) as ValueAndGrad;
    } catch (e) {
      // The tape stays open when the request never reached it (a foreign or freed loss).
      this.#abortTape();
      throw e;
    } finally {
      // Only a loss made by lossFn is freed (it may return a variable).
      if (loss instanceof WebGpuTensor && made.has(loss)) loss.dispose();
    }
  }
  /** Closes the worker's tape after a failure; never hides that failure with its own. */
  #abortTape(): void {
    if (this.#disposed || !this.link.usable) return;
    try {
      this.#call("vg.abort", [], []);
    } catch {
      // the worker is gone: the original error says more
    }
  }

  noGrad<T>(fn: () => T): T {
    this.#call("noGrad.begin", [], []);
    try {
      return fn();
    } finally {
      if (!this.#disposed && this.link.usable) this.#call("noGrad.end", [], []);
    }
  }
  adamStep(
    params: readonly Tensor[],
    grads: readonly Tensor[],
    state: AdamState,
    opts: AdamOptions,
  ): void {
    const all = [...params, ...grads, ...state.m, ...state.v];
    const { step } = this.#call("adamStep", all, [params, grads, state, opts]) as { step: number };
    state.step = step;
  }
  emaUpdate(targets: readonly Tensor[], sources: readonly Tensor[], decay: number): void {
    this.#call("emaUpdate", [...targets, ...sources], [targets, sources, decay]);
  }
  eighFloat64(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
    return this.#call("eighFloat64", [], [a, n]) as { values: Float64Array; vectors: Float64Array };
  }
  eigvalshFloat64(a: Float64Array, n: number): Float64Array {
    return this.#call("eigvalshFloat64", [], [a, n]) as Float64Array;
  }
  setAutocast(dtype: "bfloat16" | "float32"): void {
    this.#call("setAutocast", [], [dtype]);
  }

  dispose(): void {
    if (this.#disposed) return;
    // The worker outlives this backend (others share it): free what this one holds there and
    // drop a gradient tape or noGrad section it left open.
    const free = [...this.#freed, ...[...this.#live].map((t) => t.id)];
    this.#disposed = true;
    this.#scopes.length = 0;
    this.#live.clear();
    this.#freed = [];
    try {
      if (this.link.usable) this.link.call("reset", [], { free });
    } finally {
      releaseLink(this.link);
    }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

function collectHandles(value: unknown, out: Set<WebGpuTensor>): void {
  if (value instanceof WebGpuTensor) out.add(value);
  else if (Array.isArray(value)) { for (const v of value) collectHandles(v, out); }
  else if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) collectHandles(v, out);
  }
}
