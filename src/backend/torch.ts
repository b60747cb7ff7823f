/**
 * The libtorch backend: Deno FFI over the C shim in native/ (torch-cuda, torch-cpu).
 *
 * The shim is found at `$DENO_DIFFUSION_NATIVE` (the library file or its folder), else in
 * native/build/ next to this module; a missing or stale shim makes the backend unavailable with
 * a message saying to run `deno task build:native` (nothing is built here). Gradients are recorded only inside
 * {@link Backend.valueAndGrad}.
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
  sizeOf,
  type Tensor,
  type ValueAndGrad,
} from "./backend.ts";

import {
  BINARY,
  CONV_ACTIVATION,
  cString,
  type Lib,
  loadLibrary,
  MAX_RANK,
  REDUCE,
  UNARY,
} from "./torch_ffi.ts";
import { collectTensors, shapesOf, type Slot, TorchTensor } from "./torch_tensor.ts";
import * as V from "./validate.ts";

/**
 * A replacement for the shim's training-mode dd_batch_norm with the same arguments and result
 * (dd_dist_sync_batch_norm of a process group); `lastError` explains a non-zero status.
 */
export interface TrainingBatchNorm {
  run(
    x: Deno.PointerObject,
    weight: Deno.PointerObject | null,
    bias: Deno.PointerObject | null,
    runningMean: Deno.PointerObject,
    runningVar: Deno.PointerObject,
    momentum: number,
    eps: number,
    out: BigInt64Array,
  ): number;
  lastError(): string;
}

/** What src/backend/distributed.ts reaches inside a torch backend. */
export interface TorchInternals {
  addresses(ts: readonly Tensor[], op: string): BigInt64Array;
  setTrainingBatchNorm(hook: TrainingBatchNorm | null): void;
}

/**
 * The torch-only hooks of `backend`, or null when it is not a torch backend (tfjs).
 *
 * @example
 * ```ts ignore
 * import { torchInternals } from "./torch.ts";
 * if (torchInternals(backend) === null) throw new Error("data parallelism needs torch-cpu or torch-cuda");
 * ```
 */
export function torchInternals(backend: Backend): TorchInternals | null {
  return backend instanceof TorchBackend ? backend : null;
}

/** libtorch through the shim. Create with {@link createTorchBackend}. */
class TorchBackend implements Backend {
  readonly name: string;
  readonly device: string;
  readonly version: string;
  readonly capabilities: BackendCapabilities;
  readonly #lib: Lib;
  readonly #cuda: number;
  readonly #out = new BigInt64Array(3 + MAX_RANK);
  readonly #slots = new Map<number, Slot>();
  readonly #scopes: Set<TorchTensor>[] = [];
  readonly #finalizer: FinalizationRegistry<number>;
  #nextId = 1;
  #bytes = 0;
  #closed = false;
  #trainingBatchNorm: TrainingBatchNorm | null = null;

  constructor(lib: Lib, cuda: boolean) {
    this.#lib = lib;
    this.#cuda = cuda ? 1 : 0;
    this.name = cuda ? "torch-cuda" : "torch-cpu";
    this.device = cString(lib.dd_device_name(this.#cuda));
    this.version = `libtorch ${cString(lib.dd_version())}`;
    this.capabilities = {
      eighFloat64: true,
      autocast: cuda,
      fusedConvActivation: true,
      // libtorch allocates from host or device memory and fails with a clean error.
      memoryLimitBytes: null,
    };
    // Safety net only: a handle dropped without dispose() is freed when collected.
    this.#finalizer = new FinalizationRegistry((id) => this.#free(id));
  }

  // ---- bookkeeping ----

  holds(id: number): boolean {
    return this.#slots.has(id);
  }

  release(t: TorchTensor): void {
    if (this.#free(t.id)) this.#finalizer.unregister(t);
  }

  #free(id: number): boolean {
    const slot = this.#slots.get(id);
    if (!slot) return false;
    this.#slots.delete(id);
    this.#bytes -= slot.bytes;
    this.#lib.dd_free(slot.ptr);
    return true;
  }

  #adopt(
    addr: bigint,
    shape: number[],
    dtype: DType,
    variable = false,
    trainable = false,
  ): TorchTensor {
    const ptr = Deno.UnsafePointer.create(addr);
    if (ptr === null) throw new BackendError("adopt", [shape], "the shim returned a null handle");
    const id = this.#nextId++;
    const bytes = sizeOf(shape) * 4;
    this.#slots.set(id, { ptr, addr, bytes });
    this.#bytes += bytes;
    const t = new TorchTensor(this, id, shape, dtype, variable, trainable);
    this.#finalizer.register(t, id, t);
    if (!variable) this.#scopes.at(-1)?.add(t);
    return t;
  }

  #error(op: string, inputs: readonly (Tensor | number | undefined)[]): BackendError {
    return new BackendError(op, shapesOf(inputs), cString(this.#lib.dd_last_error()).trim());
  }

  /** Turns a status + dd_out into a tracked tensor (or a BackendError). */
  #result(
    status: number,
    op: string,
    inputs: readonly (Tensor | number | undefined)[],
  ): TorchTensor {
    if (status !== 0) throw this.#error(op, inputs);
    const out = this.#out;
    const rank = Number(out[2]);
    const shape = new Array<number>(rank);
    for (let i = 0; i < rank; i++) shape[i] = Number(out[3 + i]);
    return this.#adopt(out[0], shape, out[1] === 1n ? "int32" : "float32");
  }

  /** The live handle of `t`, or a BackendError naming the op. */
  #h(t: Tensor, op: string): Deno.PointerObject {
    if (!(t instanceof TorchTensor) || t.owner !== this) {
      throw new BackendError(
        op,
        [t.shape],
        `tensor belongs to backend ${t.backend}, not ${this.name}`,
      );
    }
    const slot = this.#slots.get(t.id);
    if (!slot) throw new BackendError(op, [t.shape], "tensor was disposed");
    return slot.ptr;
  }

  #hOpt(t: Tensor | undefined, op: string): Deno.PointerObject | null {
    return t === undefined ? null : this.#h(t, op);
  }

  #addrs(ts: readonly Tensor[], op: string): BigInt64Array {
    const a = new BigInt64Array(ts.length);
    for (let i = 0; i < ts.length; i++) {
      this.#h(ts[i], op);
      a[i] = this.#slots.get((ts[i] as TorchTensor).id)!.addr;
    }
    return a;
  }

  #ints(xs: readonly number[], op: string, shapes: readonly Tensor[] = []): BigInt64Array {
    const a = new BigInt64Array(xs.length);
    for (let i = 0; i < xs.length; i++) {
      if (!Number.isInteger(xs[i])) {
        throw new BackendError(op, shapesOf(shapes), `expected integers, got [${xs.join(",")}]`);
      }
      a[i] = BigInt(xs[i]);
    }
    return a;
  }

  #checkOpen(op: string): void {
    if (this.#closed) throw new BackendError(op, [], `backend ${this.name} was disposed`);
  }

  // ---- hooks for native/distributed/ (same layer: src/backend/distributed.ts) ----

  /** The shim handles of `ts` as integers (for collectives over them). */
  addresses(ts: readonly Tensor[], op: string): BigInt64Array {
    this.#checkOpen(op);
    return this.#addrs(ts, op);
  }

  /** Routes training-mode batchNorm through `hook` (null: the shim's own again). */
  setTrainingBatchNorm(hook: TrainingBatchNorm | null): void {
    this.#trainingBatchNorm = hook;
  }

  // ---- creation and reading ----

  tensor(
    data: Float32Array | Int32Array | number[],
    shape: readonly number[],
    dtype?: DType,
  ): Tensor {
    this.#checkOpen("tensor");
    const type: DType = dtype ?? (data instanceof Int32Array ? "int32" : "float32");
    V.checkTensorData(data.length, shape, type);
    const host = type === "int32"
      ? (data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>))
      : (data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>));
    const status = this.#lib.dd_from_data(
      host,
      type === "int32" ? 1 : 0,
      this.#ints(shape, "tensor"),
      shape.length,
      this.#cuda,
      this.#out,
    );
    return this.#result(status, "tensor", []);
  }

  zeros(shape: readonly number[]): Tensor {
    V.checkShape("zeros", shape);
    return this.full(shape, 0);
  }

  full(shape: readonly number[], value: number): Tensor {
    V.checkShape("full", shape);
    this.#checkOpen("full");
    const dims = this.#ints(shape, "full");
    return this.#result(
      this.#lib.dd_full(dims, shape.length, value, this.#cuda, this.#out),
      "full",
      [],
    );
  }

  read(t: Tensor): Float32Array | Int32Array {
    const h = this.#h(t, "read");
    const n = sizeOf(t.shape);
    const dst = t.dtype === "int32" ? new Int32Array(n) : new Float32Array(n);
    if (this.#lib.dd_read(h, dst, BigInt(dst.byteLength)) !== 0) throw this.#error("read", [t]);
    return dst;
  }

  variable(init: Tensor, trainable: boolean): Tensor {
    const status = this.#lib.dd_variable(this.#h(init, "variable"), trainable ? 1 : 0, this.#out);
    if (status !== 0) throw this.#error("variable", [init]);
    const out = this.#out;
    const shape = [...init.shape];
    return this.#adopt(out[0], shape, out[1] === 1n ? "int32" : "float32", true, trainable);
  }

  assign(variable: Tensor, value: Tensor): void {
    V.checkAssign(variable, value);
    const dst = this.#h(variable, "assign");
    if (!(variable as TorchTensor).isVariable) {
      throw new BackendError("assign", shapesOf([variable, value]), "target is not a variable");
    }
    if (this.#lib.dd_assign(dst, this.#h(value, "assign")) !== 0) {
      throw this.#error("assign", [variable, value]);
    }
  }

  // ---- memory ----

  scope<T extends Keepable>(fn: () => T): T {
    const created = new Set<TorchTensor>();
    this.#scopes.push(created);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.#scopes.pop();
      for (const t of created) t.dispose();
      throw e;
    }
    this.#scopes.pop();
    const keep = new Set<Tensor>();
    collectTensors(result, keep);
    const parent = this.#scopes.at(-1);
    for (const t of created) {
      if (keep.has(t)) parent?.add(t);
      else t.dispose();
    }
    return result;
  }

  liveTensors(): number {
    return this.#slots.size;
  }

  liveBytes(): number {
    return this.#bytes;
  }

  peakBytes(fn: () => Keepable): number {
    // Autograd's saved tensors live inside libtorch, out of this count: no peak to report.
    this.scope(() => {
      fn();
    });
    return NaN;
  }

  /** Handles alive inside the shim for this thread (all torch backends of this worker). */
  nativeLiveHandles(): number {
    return Number(this.#lib.dd_live_handles());
  }

  // ---- elementwise ----

  #unary(op: keyof typeof UNARY, a: Tensor): Tensor {
    return this.#result(this.#lib.dd_unary(UNARY[op], this.#h(a, op), this.#out), op, [a]);
  }

  #binary(op: keyof typeof BINARY, a: Tensor, b: Tensor | number): Tensor {
    V.checkBinary(op, a, b);
    const ha = this.#h(a, op);
    const status = typeof b === "number"
      ? this.#lib.dd_binary_scalar(BINARY[op], ha, b, this.#out)
      : this.#lib.dd_binary(BINARY[op], ha, this.#h(b, op), this.#out);
    return this.#result(status, op, [a, b]);
  }

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
  pow(a: Tensor, p: number): Tensor {
    return this.#binary("pow", a, p);
  }
  greater(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("greater", a, b);
  }
  leakyRelu(a: Tensor, slope: number): Tensor {
    return this.#binary("leakyRelu", a, slope);
  }
  neg(a: Tensor): Tensor {
    return this.#unary("neg", a);
  }
  exp(a: Tensor): Tensor {
    return this.#unary("exp", a);
  }
  log(a: Tensor): Tensor {
    return this.#unary("log", a);
  }
  sqrt(a: Tensor): Tensor {
    return this.#unary("sqrt", a);
  }
  abs(a: Tensor): Tensor {
    return this.#unary("abs", a);
  }
  detach(a: Tensor): Tensor {
    return this.#unary("detach", a);
  }
  relu(a: Tensor): Tensor {
    return this.#unary("relu", a);
  }
  gelu(a: Tensor): Tensor {
    return this.#unary("gelu", a);
  }
  silu(a: Tensor): Tensor {
    return this.#unary("silu", a);
  }
  tanh(a: Tensor): Tensor {
    return this.#unary("tanh", a);
  }
  sigmoid(a: Tensor): Tensor {
    return this.#unary("sigmoid", a);
  }

  clamp(a: Tensor, min: number, max: number): Tensor {
    return this.#result(this.#lib.dd_clamp(this.#h(a, "clamp"), min, max, this.#out), "clamp", [
      a,
    ]);
  }

  where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
    V.checkWhere(cond, a, b);
    const status = this.#lib.dd_where(
      this.#h(cond, "where"),
      this.#h(a, "where"),
      this.#h(b, "where"),
      this.#out,
    );
    return this.#result(status, "where", [cond, a, b]);
  }

  cast(a: Tensor, dtype: DType): Tensor {
    V.checkDType("cast", [a.shape], dtype);
    const code = dtype === "int32" ? 1 : 0;
    return this.#result(this.#lib.dd_cast(this.#h(a, "cast"), code, this.#out), "cast", [a]);
  }

  softmax(a: Tensor, axis: number): Tensor {
    V.checkAxis("softmax", a, axis);
    const h = this.#h(a, "softmax");
    return this.#result(this.#lib.dd_softmax(h, axis, this.#out), "softmax", [a]);
  }

  // ---- reductions and shape ----

  #reduce(op: keyof typeof REDUCE, a: Tensor, axes?: readonly number[], keepDims = false): Tensor {
    V.checkAxes(op, a, axes);
    const h = this.#h(a, op);
    const dims = this.#ints(axes ?? a.shape.map((_, i) => i), op, [a]);
    const status = this.#lib.dd_reduce(
      REDUCE[op],
      h,
      dims,
      dims.length,
      keepDims ? 1 : 0,
      this.#out,
    );
    return this.#result(status, op, [a]);
  }

  sum(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor {
    return this.#reduce("sum", a, axes, keepDims);
  }
  mean(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor {
    return this.#reduce("mean", a, axes, keepDims);
  }
  max(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor {
    return this.#reduce("max", a, axes, keepDims);
  }

  reshape(a: Tensor, shape: readonly number[]): Tensor {
    V.checkReshape(a, shape);
    const h = this.#h(a, "reshape");
    const dims = this.#ints(shape, "reshape", [a]);
    const status = this.#lib.dd_reshape(h, dims, dims.length, this.#out);
    return this.#result(status, "reshape", [a]);
  }

  permute(a: Tensor, dims: readonly number[]): Tensor {
    V.checkPermute(a, dims);
    const h = this.#h(a, "permute");
    const d = this.#ints(dims, "permute", [a]);
    return this.#result(this.#lib.dd_permute(h, d, d.length, this.#out), "permute", [a]);
  }

  slice(a: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
    V.checkSlice(a, begin, size);
    const h = this.#h(a, "slice");
    const b = this.#ints(begin, "slice", [a]);
    const s = this.#ints(size, "slice", [a]);
    return this.#result(this.#lib.dd_slice(h, b, s, b.length, this.#out), "slice", [a]);
  }

  cat(xs: readonly Tensor[], axis: number): Tensor {
    V.checkCat(xs, axis);
    const handles = this.#addrs(xs, "cat");
    return this.#result(this.#lib.dd_cat(handles, xs.length, axis, this.#out), "cat", xs);
  }

  gather(a: Tensor, indices: Tensor, axis: number): Tensor {
    V.checkGather(a, indices, axis);
    // libtorch's own out-of-range message differs from the other backends': check here.
    V.checkGatherIndices(a, indices, axis, this.read(indices));
    const status = this.#lib.dd_gather(
      this.#h(a, "gather"),
      this.#h(indices, "gather"),
      axis,
      this.#out,
    );
    return this.#result(status, "gather", [a, indices]);
  }

  // ---- linear algebra and layers ----

  matmul(a: Tensor, b: Tensor): Tensor {
    V.checkMatmul(a, b);
    const status = this.#lib.dd_matmul(this.#h(a, "matmul"), this.#h(b, "matmul"), this.#out);
    return this.#result(status, "matmul", [a, b]);
  }

  linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
    V.checkLinear(x, w, b);
    const status = this.#lib.dd_linear(
      this.#h(x, "linear"),
      this.#h(w, "linear"),
      this.#hOpt(b, "linear"),
      this.#out,
    );
    return this.#result(status, "linear", [x, w, b]);
  }

  conv2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts: Conv2dOptions = {}): Tensor {
    const { padding = 0, activation } = opts;
    const [padRows, padCols] = typeof padding === "number" ? [padding, padding] : padding;
    V.checkConv2d(x, w, b, { stride: opts.stride ?? 1, padding: [padRows, padCols], activation });
    const status = this.#lib.dd_conv2d(
      this.#h(x, "conv2d"),
      this.#h(w, "conv2d"),
      this.#hOpt(b, "conv2d"),
      opts.stride ?? 1,
      padRows,
      padCols,
      CONV_ACTIVATION[activation ?? "none"],
      this.#out,
    );
    return this.#result(status, "conv2d", [x, w, b]);
  }

  convTranspose2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts: ConvOptions = {}): Tensor {
    const op = "convTranspose2d";
    V.checkConvTranspose2d(x, w, b, opts.stride ?? 1, opts.padding ?? 0, opts.outputPadding ?? 0);
    const status = this.#lib.dd_conv_transpose2d(
      this.#h(x, op),
      this.#h(w, op),
      this.#hOpt(b, op),
      opts.stride ?? 1,
      opts.padding ?? 0,
      opts.outputPadding ?? 0,
      this.#out,
    );
    return this.#result(status, op, [x, w, b]);
  }

  groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    const op = "groupNorm";
    V.checkGroupNorm(x, groups, weight, bias);
    const status = this.#lib.dd_group_norm(
      this.#h(x, op),
      groups,
      this.#h(weight, op),
      this.#h(bias, op),
      eps,
      this.#out,
    );
    return this.#result(status, op, [x, weight, bias]);
  }

  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    const op = "layerNorm";
    V.checkLayerNorm(x, weight, bias);
    const status = this.#lib.dd_layer_norm(
      this.#h(x, op),
      this.#h(weight, op),
      this.#h(bias, op),
      eps,
      this.#out,
    );
    return this.#result(status, op, [x, weight, bias]);
  }

  batchNorm(
    x: Tensor,
    weight: Tensor | undefined,
    bias: Tensor | undefined,
    runningMean: Tensor,
    runningVar: Tensor,
    opts: BatchNormOptions,
  ): Tensor {
    const op = "batchNorm";
    V.checkBatchNorm(x, weight, bias, runningMean, runningVar, opts.training);
    for (const stat of [runningMean, runningVar]) {
      if (!(stat instanceof TorchTensor && stat.isVariable)) {
        throw new BackendError(
          op,
          shapesOf([x, runningMean, runningVar]),
          "running statistics must be variables (they are updated in place)",
        );
      }
    }
    const hook = opts.training ? this.#trainingBatchNorm : null;
    if (hook) {
      const status = hook.run(
        this.#h(x, op),
        this.#hOpt(weight, op),
        this.#hOpt(bias, op),
        this.#h(runningMean, op),
        this.#h(runningVar, op),
        opts.momentum ?? 0.1,
        opts.eps ?? 1e-5,
        this.#out,
      );
      if (status !== 0) {
        throw new BackendError(op, shapesOf([x, weight, bias]), hook.lastError());
      }
      return this.#result(0, op, [x, weight, bias, runningMean, runningVar]);
    }
    const status = this.#lib.dd_batch_norm(
      this.#h(x, op),
      this.#hOpt(weight, op),
      this.#hOpt(bias, op),
      this.#h(runningMean, op),
      this.#h(runningVar, op),
      opts.training ? 1 : 0,
      opts.momentum ?? 0.1,
      opts.eps ?? 1e-5,
      this.#out,
    );
    return this.#result(status, op, [x, weight, bias, runningMean, runningVar]);
  }

  maxPool2d(x: Tensor, kernel: number, stride: number, padding = 0): Tensor {
    V.checkPool("maxPool2d", x, kernel, stride, padding);
    const h = this.#h(x, "maxPool2d");
    const status = this.#lib.dd_max_pool2d(h, kernel, stride, padding, this.#out);
    return this.#result(status, "maxPool2d", [x]);
  }

  avgPool2d(
    x: Tensor,
    kernel: number,
    stride: number,
    padding = 0,
    countIncludePad = true,
  ): Tensor {
    V.checkPool("avgPool2d", x, kernel, stride, padding);
    const h = this.#h(x, "avgPool2d");
    const include = countIncludePad ? 1 : 0;
    const status = this.#lib.dd_avg_pool2d(h, kernel, stride, padding, include, this.#out);
    return this.#result(status, "avgPool2d", [x]);
  }

  interpolateBilinear(x: Tensor, size: readonly [number, number], alignCorners: boolean): Tensor {
    const op = "interpolateBilinear";
    V.checkInterpolate(x, size);
    const h = this.#h(x, op);
    const status = this.#lib.dd_interpolate_bilinear(
      h,
      size[0],
      size[1],
      alignCorners ? 1 : 0,
      this.#out,
    );
    return this.#result(status, op, [x]);
  }

  attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const op = "attention";
    V.checkAttention(q, k, v);
    const status = this.#lib.dd_attention(
      this.#h(q, op),
      this.#h(k, op),
      this.#h(v, op),
      this.#out,
    );
    return this.#result(status, op, [q, k, v]);
  }

  // ---- losses ----

  mseLoss(pred: Tensor, target: Tensor): Tensor {
    const op = "mseLoss";
    V.checkSameShape(op, pred, target);
    const status = this.#lib.dd_mse_loss(this.#h(pred, op), this.#h(target, op), this.#out);
    return this.#result(status, op, [pred, target]);
  }

  bceWithLogits(logits: Tensor, targets: Tensor): Tensor {
    const op = "bceWithLogits";
    V.checkSameShape(op, logits, targets);
    const status = this.#lib.dd_bce_with_logits(
      this.#h(logits, op),
      this.#h(targets, op),
      this.#out,
    );
    return this.#result(status, op, [logits, targets]);
  }

  // ---- autograd and optimisation ----

  valueAndGrad(lossFn: () => Tensor, params: readonly Tensor[]): ValueAndGrad {
    const op = "valueAndGrad";
    params.forEach((p, i) => {
      this.#h(p, op);
      if (!(p as TorchTensor).trainable) {
        throw new BackendError(op, [p.shape], `parameter ${i} is not a trainable variable`);
      }
    });
    const paramAddrs = this.#addrs(params, op);
    const gradAddrs = new BigInt64Array(params.length);
    let value = NaN;
    const previous = this.#lib.dd_set_grad_enabled(1);
    try {
      this.scope(() => {
        const loss = lossFn();
        if (sizeOf(loss.shape) !== 1) {
          throw new BackendError(op, [loss.shape], "lossFn must return a scalar");
        }
        const status = this.#lib.dd_grad(this.#h(loss, op), paramAddrs, params.length, gradAddrs);
        if (status !== 0) throw this.#error(op, [loss]);
        value = this.read(loss)[0];
      });
    } finally {
      this.#lib.dd_set_grad_enabled(previous);
    }
    const grads = params.map((p, i) => this.#adopt(gradAddrs[i], [...p.shape], "float32"));
    return { value, grads };
  }

  noGrad<T>(fn: () => T): T {
    const previous = this.#lib.dd_set_grad_enabled(0);
    try {
      return fn();
    } finally {
      this.#lib.dd_set_grad_enabled(previous);
    }
  }

  adamStep(
    params: readonly Tensor[],
    grads: readonly Tensor[],
    state: AdamState,
    opts: AdamOptions,
  ): void {
    const op = "adamStep";
    V.checkAdam(params, grads, state.m, state.v);
    const n = params.length;
    const step = state.step + 1;
    const status = this.#lib.dd_adam_step(
      this.#addrs(params, op),
      this.#addrs(grads, op),
      this.#addrs(state.m, op),
      this.#addrs(state.v, op),
      n,
      step,
      opts.lr,
      opts.beta1,
      opts.beta2,
      opts.eps,
      opts.weightDecay,
    );
    if (status !== 0) throw this.#error(op, []);
    state.step = step;
  }

  emaUpdate(targets: readonly Tensor[], sources: readonly Tensor[], decay: number): void {
    const op = "emaUpdate";
    V.checkPairs(op, targets, sources, ["targets", "sources"]);
    const status = this.#lib.dd_ema_update(
      this.#addrs(targets, op),
      this.#addrs(sources, op),
      targets.length,
      decay,
    );
    if (status !== 0) throw this.#error(op, []);
  }

  eighFloat64(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
    V.checkEigh(this.capabilities, a.length, n);
    const values = new Float64Array(n);
    const vectors = new Float64Array(n * n);
    if (this.#lib.dd_eigh_f64(a, n, values, vectors) !== 0) {
      throw this.#error("eighFloat64", []);
    }
    return { values, vectors };
  }

  eigvalshFloat64(a: Float64Array, n: number): Float64Array {
    V.checkEigh(this.capabilities, a.length, n, "eigvalshFloat64");
    const values = new Float64Array(n);
    if (this.#lib.dd_eigvalsh_f64(a, n, values) !== 0) throw this.#error("eigvalshFloat64", []);
    return values;
  }

  setAutocast(dtype: "bfloat16" | "float32"): void {
    V.checkAutocast(this.capabilities, dtype);
    if (this.#lib.dd_set_autocast(dtype === "bfloat16" ? 1 : 0) !== 0) {
      throw this.#error("setAutocast", []);
    }
  }

  dispose(): void {
    if (this.#closed) return;
    for (const id of [...this.#slots.keys()]) this.#free(id);
    this.#closed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Loads the shim (never building it) and returns a libtorch backend on the given device. CPU
 * ops use every core unless `DENO_DIFFUSION_TORCH_THREADS` says otherwise (1 is faster for tiny
 * tensors on a busy machine). Throws {@link BackendUnavailableError} with the paths tried or the
 * reason the device cannot be used.
 *
 * @example
 * ```ts
 * import { createTorchBackend } from "./torch.ts";
 * const torch = await createTorchBackend("cpu");
 * const x = torch.tensor([1, 2, 3], [3]);
 * console.log(torch.read(torch.mul(x, 2))); // Float32Array [2, 4, 6]
 * torch.dispose();
 * ```
 */
export async function createTorchBackend(device: "cuda" | "cpu"): Promise<Backend> {
  const name = device === "cuda" ? "torch-cuda" : "torch-cpu";
  let lib: Lib;
  try {
    lib = await loadLibrary(name);
  } catch (e) {
    const why = e instanceof BackendUnavailableError
      ? e.reason
      : e instanceof Error
      ? e.message
      : String(e);
    throw new BackendUnavailableError(name, why);
  }
  const cuda = device === "cuda" ? 1 : 0;
  const threadsEnv = Deno.env.get("DENO_DIFFUSION_TORCH_THREADS");
  const threads = threadsEnv ? Number(threadsEnv) : navigator.hardwareConcurrency ?? 0;
  if (!Number.isInteger(threads) || threads < 0) {
    throw new BackendUnavailableError(
      name,
      `DENO_DIFFUSION_TORCH_THREADS must be a non-negative integer, got "${threadsEnv}"`,
    );
  }
  if (lib.dd_init(cuda, threads) !== 0) {
    throw new BackendUnavailableError(name, cString(lib.dd_last_error()));
  }
  return new TorchBackend(lib, cuda === 1);
}

/**
 * Number of CUDA GPUs libtorch sees (0 without CUDA); throws when the shim cannot load.
 *
 * @example
 * ```ts
 * import { torchCudaDeviceCount } from "./torch.ts";
 * console.log(await torchCudaDeviceCount()); // 0 on a CPU-only libtorch
 * ```
 */
export async function torchCudaDeviceCount(): Promise<number> {
  return (await loadLibrary()).dd_cuda_device_count();
}

/**
 * The libtorch version the shim was built against.
 *
 * @example
 * ```ts
 * import { torchVersion } from "./torch.ts";
 * console.log(await torchVersion()); // "1.13.0"
 * ```
 */
export async function torchVersion(): Promise<string> {
  return cString((await loadLibrary()).dd_version());
}
