/**
 * The tensor layer's contract. Every model, loss, sampler and metric is written against
 * {@link Backend}; each backend implements it (`torch.ts`, `tfjs.ts`, each over a few files of
 * its own). Op names and semantics follow PyTorch so formulas read the same as in the papers'
 * reference code.
 *
 * Layout is always NCHW at this interface (a backend may store channels_last internally).
 *
 * @module
 */

/** Element types a tensor may hold. Labels and timesteps are int32; everything else float32. */
export type DType = "float32" | "int32";

/** Host-side data for a tensor of the given dtype. */
export type TypedArrayFor<D extends DType> = D extends "int32" ? Int32Array : Float32Array;

/**
 * An opaque handle to a tensor owned by a backend. Model code never looks inside; it reads
 * data only through {@link Backend.read}.
 */
export interface Tensor {
  /** Dimensions, PyTorch order (NCHW for images). */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Name of the backend that owns the handle (for error messages). */
  readonly backend: string;
  /** Frees the tensor now. Idempotent. Using it afterwards throws {@link BackendError}. */
  dispose(): void;
  /** {@link Tensor.dispose}, for `using`. */
  [Symbol.dispose](): void;
  /** True once disposed. */
  readonly disposed: boolean;
}

/** Raised for every failure inside a backend: the op, the shapes involved and the cause. */
export class BackendError extends Error {
  /**
   * @example
   * ```ts
   * import { BackendError } from "./backend.ts";
   * const e = new BackendError("conv2d", [[1, 3, 8, 8], [4, 2, 3, 3]], "channel mismatch");
   * console.log(e.message); // conv2d([1,3,8,8], [4,2,3,3]): channel mismatch
   * ```
   */
  /** `op` is the backend op that failed, `shapes` its inputs' shapes, `detail` what was wrong. */
  constructor(
    readonly op: string,
    readonly shapes: readonly (readonly number[])[],
    readonly detail: string,
  ) {
    super(`${op}(${shapeSummary(shapes)}): ${detail}`);
    this.name = "BackendError";
  }
}

/** Shapes for an error message; past 6 of them, the first 3, a count and the last one. */
export function shapeSummary(shapes: readonly (readonly number[])[]): string {
  const text = (s: readonly number[]) => `[${s.join(",")}]`;
  if (shapes.length <= 6) return shapes.map(text).join(", ");
  return [
    ...shapes.slice(0, 3).map(text),
    `... ${shapes.length - 4} more ...`,
    text(shapes[shapes.length - 1]),
  ].join(", ");
}

/** Raised when a backend cannot be loaded at all (library missing, wrong version, ...). */
export class BackendUnavailableError extends Error {
  /** `backendName` could not be loaded; `reason` says why (and what to install or build). */
  constructor(readonly backendName: string, readonly reason: string) {
    super(`backend ${backendName} is not available: ${reason}`);
    this.name = "BackendUnavailableError";
  }
}

/** Options of {@link Backend.conv2d} and {@link Backend.convTranspose2d}. */
export interface ConvOptions {
  /** Default 1. */
  stride?: number;
  /** Zero padding on each side. Default 0. */
  padding?: number;
  /** Only for convTranspose2d: extra rows/cols added on one side of the output. Default 0. */
  outputPadding?: number;
}

/**
 * Options of {@link Backend.conv2d}: {@link ConvOptions} with rectangular padding and a fused
 * activation, so that e.g. a 1x7 conv keeps its size and `relu(conv + b)` is one call.
 */
export interface Conv2dOptions extends Omit<ConvOptions, "padding" | "outputPadding"> {
  /** Zero padding: `p` on every side, or `[rows, cols]` (top and bottom, left and right). */
  padding?: number | readonly [number, number];
  /** Applied after the bias: `"relu"` gives relu(conv(x) + b). Default none. */
  activation?: "relu";
}

/**
 * What a backend supports beyond the ops every backend implements alike. Declared by the
 * backend, never found out by trying a call: callers branch on these fields.
 */
export interface BackendCapabilities {
  /**
   * {@link Backend.eighFloat64} and {@link Backend.eigvalshFloat64} run (LAPACK in float64).
   * Where false they throw {@link BackendError}; callers use their own solver (metrics/linalg.ts
   * has one).
   */
  readonly eighFloat64: boolean;
  /**
   * {@link Backend.setAutocast} with "bfloat16" switches conv/matmul/attention to bfloat16.
   * Where false only "float32" (off) is accepted.
   */
  readonly autocast: boolean;
  /**
   * `conv2d(..., { activation: "relu" })` runs as one fused kernel rather than conv then relu
   * (the result is the same either way; this only tells where folding layers saves time).
   */
  readonly fusedConvActivation: boolean;
  /**
   * The most bytes of live tensors one call may hold (a training step's activations, tape and
   * gradients; an inference batch), as counted by {@link Backend.peakBytes}; null where the
   * backend knows no limit (libtorch grows into host or device memory and fails cleanly).
   * Training and inference loops size their batches to it with `fitBatch` (memory.ts).
   */
  readonly memoryLimitBytes: number | null;
}

/** Options of {@link Backend.batchNorm}. */
export interface BatchNormOptions {
  /** Use batch statistics and update the running statistics in place. */
  training: boolean;
  /** Running-statistics momentum, PyTorch convention (new = (1-m)*old + m*batch). Default 0.1. */
  momentum?: number;
  /** Default 1e-5. */
  eps?: number;
}

/** Hyper-parameters of {@link Backend.adamStep}. AdamW when weightDecay > 0 and decoupled. */
export interface AdamOptions {
  /** Learning rate. */
  lr: number;
  /** Decay of the first-moment average. */
  beta1: number;
  /** Decay of the second-moment average. */
  beta2: number;
  /** Added to the denominator's square root. */
  eps: number;
  /** Decoupled weight decay (AdamW, Loshchilov & Hutter). 0 for plain Adam. */
  weightDecay: number;
}

/**
 * Per-parameter optimizer state (first and second moments), owned by the caller so it can be
 * checkpointed; `step` is the number of updates already applied.
 */
export interface AdamState {
  /** Updates done so far (bias correction uses it). */
  step: number;
  /** First moments, one per parameter. */
  m: Tensor[];
  /** Second moments, one per parameter. */
  v: Tensor[];
}

/** Result of {@link Backend.valueAndGrad}. */
export interface ValueAndGrad {
  /** The scalar loss, read back to the host. */
  value: number;
  /** One gradient per requested parameter, same order and shapes. */
  grads: Tensor[];
}

/** What {@link Backend.scope} may return: the tensors inside survive the scope. */
export type Keepable =
  | Tensor
  | number
  | string
  | boolean
  | null
  | undefined
  | void
  | readonly Keepable[]
  | { readonly [key: string]: Keepable };

/**
 * The contract every backend meets. Keep it small: add an op only when a model needs it,
 * in every backend at once, with a conformance test.
 *
 * Broadcasting follows NumPy rules. Binary ops accept a number for the second operand.
 * All ops are differentiable unless noted. Every backend checks its arguments with the same
 * code (validate.ts) before running an op, so a bad call fails with the same
 * {@link BackendError} message on every backend; the constraints listed here are those checks.
 * Tensors have rank at most 8.
 */
export interface Backend {
  /** "torch-cuda", "tfjs-webgpu", "torch-cpu", "tfjs-wasm" or "tfjs-cpu". */
  readonly name: string;
  /** Human-readable device description, e.g. "cpu (2 threads)" or "NVIDIA H200". */
  readonly device: string;
  /** Version of the library underneath (libtorch / tfjs). */
  readonly version: string;
  /** What this backend supports beyond the common ops; see {@link BackendCapabilities}. */
  readonly capabilities: BackendCapabilities;

  // ---- creation and reading ----
  /** Copies host data into a new tensor. `data.length` must equal the product of `shape`. */
  tensor(
    data: Float32Array | Int32Array | number[],
    shape: readonly number[],
    dtype?: DType,
  ): Tensor;
  /** A float32 tensor of zeros. */
  zeros(shape: readonly number[]): Tensor;
  /** A float32 tensor filled with `value`. */
  full(shape: readonly number[], value: number): Tensor;
  /** Copies a tensor's data to the host (synchronously; waits for the device). */
  read(t: Tensor): Float32Array | Int32Array;
  /** A trainable parameter or a buffer: a tensor whose value {@link assign} may replace. */
  variable(init: Tensor, trainable: boolean): Tensor;
  /** Replaces a variable's value in place (no gradient). Shapes must match. */
  assign(variable: Tensor, value: Tensor): void;

  // ---- memory ----
  /** Runs `fn`; frees every tensor created inside except variables and what `fn` returns. */
  scope<T extends Keepable>(fn: () => T): T;
  /** Number of live tensors (for leak tests). */
  liveTensors(): number;
  /** Bytes held by live tensors on the device, as far as the backend can tell. */
  liveBytes(): number;
  /**
   * Runs `fn` in a scope (its results are freed) and returns the most bytes of live tensors
   * held at any point while it ran, above those live before; NaN where the backend cannot
   * tell (then `capabilities.memoryLimitBytes` is null). For sizing work to the limit.
   */
  peakBytes(fn: () => Keepable): number;

  // ---- elementwise (broadcasting) ----
  /** Elementwise a + b (broadcasting). */
  add(a: Tensor, b: Tensor | number): Tensor;
  /** Elementwise a - b (broadcasting). */
  sub(a: Tensor, b: Tensor | number): Tensor;
  /** Elementwise a * b (broadcasting). */
  mul(a: Tensor, b: Tensor | number): Tensor;
  /** Elementwise a / b (broadcasting). */
  div(a: Tensor, b: Tensor | number): Tensor;
  /** a^p for a scalar exponent. */
  pow(a: Tensor, p: number): Tensor;
  /** Elementwise -a. */
  neg(a: Tensor): Tensor;
  /** Elementwise e^a. */
  exp(a: Tensor): Tensor;
  /** Elementwise natural log. */
  log(a: Tensor): Tensor;
  /** Elementwise square root. */
  sqrt(a: Tensor): Tensor;
  /** Elementwise |a|. */
  abs(a: Tensor): Tensor;
  /** Elementwise min(max(a, min), max) (`torch.clamp`). */
  clamp(a: Tensor, min: number, max: number): Tensor;
  /** Not differentiable: 1 where a > b, else 0 (float32). */
  greater(a: Tensor, b: Tensor | number): Tensor;
  /** cond (0/1 float) ? a : b, broadcasting; differentiable in a and b. */
  where(cond: Tensor, a: Tensor, b: Tensor): Tensor;
  /** Stops gradients. */
  detach(a: Tensor): Tensor;
  /** int32 -> float32 or float32 -> int32 (truncating). Not differentiable. */
  cast(a: Tensor, dtype: DType): Tensor;

  // ---- activations ----
  /** max(a, 0). */
  relu(a: Tensor): Tensor;
  /** a for a > 0, else slope * a. */
  leakyRelu(a: Tensor, slope: number): Tensor;
  /** Exact GELU, x * Phi(x) with the erf form (PyTorch's nn.GELU() default). */
  gelu(a: Tensor): Tensor;
  /** a * sigmoid(a) (SiLU / swish). */
  silu(a: Tensor): Tensor;
  /** Elementwise tanh. */
  tanh(a: Tensor): Tensor;
  /** Elementwise 1 / (1 + e^-a). */
  sigmoid(a: Tensor): Tensor;
  /** Softmax along `axis`. */
  softmax(a: Tensor, axis: number): Tensor;

  // ---- reductions and shape ----
  /** Sum over `axes` (all when omitted). */
  sum(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor;
  /** Mean over `axes` (all when omitted). */
  mean(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor;
  /** Not differentiable. */
  max(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor;
  /** Same elements in a new shape (row-major, as `torch.reshape`). */
  reshape(a: Tensor, shape: readonly number[]): Tensor;
  /** Reorders dimensions (`torch.permute`). */
  permute(a: Tensor, dims: readonly number[]): Tensor;
  /**
   * `begin` and `size` have one entry per axis; `size[i] = -1` means "to the end". The slice
   * must lie inside the tensor (0 <= begin, begin + size <= dim), else a BackendError.
   */
  slice(a: Tensor, begin: readonly number[], size: readonly number[]): Tensor;
  /** Concatenates along `axis`. */
  cat(xs: readonly Tensor[], axis: number): Tensor;
  /** Rows of `a` along `axis` picked by the int32 `indices` (embedding lookup, schedule[t]). */
  gather(a: Tensor, indices: Tensor, axis: number): Tensor;

  // ---- linear algebra and layers (NCHW) ----
  /** Batched matmul over leading dims (broadcasting): [..., n, k] x [..., k, m]. */
  matmul(a: Tensor, b: Tensor): Tensor;
  /** x [..., in] · w[out, in]ᵀ + b[out]. */
  linear(x: Tensor, w: Tensor, b?: Tensor): Tensor;
  /**
   * Cross-correlation as in PyTorch: x [N, Cin, H, W], w [Cout, Cin, kh, kw] with any kernel
   * height and width (square 3x3, 1x7, 7x1, ...), b [Cout] -> [N, Cout, Ho, Wo],
   * Ho = floor((H + 2 ph - kh) / stride) + 1 (likewise Wo). Stride >= 1 on both axes alike;
   * padding >= 0, one value or [rows, cols]; the kernel must fit the padded input.
   */
  conv2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts?: Conv2dOptions): Tensor;
  /**
   * x [N, Cin, H, W], w [Cin, Cout, k, k] (PyTorch layout; square kernels only), b [Cout] ->
   * Ho = (H - 1) stride - 2 padding + k + outputPadding; 0 <= outputPadding < stride.
   */
  convTranspose2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts?: ConvOptions): Tensor;
  /** x [N, C, ...] with C divisible by `groups`, weight/bias [C]. */
  groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps?: number): Tensor;
  /** Normalises over the last dim; weight/bias [D]. */
  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps?: number): Tensor;
  /**
   * x [N, C, H, W]. In training mode uses batch statistics (biased variance for the output)
   * and updates `runningMean`/`runningVar` (variables; unbiased variance) in place.
   */
  batchNorm(
    x: Tensor,
    weight: Tensor | undefined,
    bias: Tensor | undefined,
    runningMean: Tensor,
    runningVar: Tensor,
    opts: BatchNormOptions,
  ): Tensor;
  /** x [N, C, H, W]; square kernel and stride >= 1, 0 <= padding <= kernel / 2. */
  maxPool2d(x: Tensor, kernel: number, stride: number, padding?: number): Tensor;
  /** x [N, C, H, W]; as {@link maxPool2d}; `countIncludePad` as in PyTorch (default true). */
  avgPool2d(
    x: Tensor,
    kernel: number,
    stride: number,
    padding?: number,
    countIncludePad?: boolean,
  ): Tensor;
  /** Bilinear resize of x [N, C, H, W] to [N, C, size[0], size[1]]. */
  interpolateBilinear(x: Tensor, size: readonly [number, number], alignCorners: boolean): Tensor;
  /** softmax(q kᵀ / sqrt(d)) v for q [B, heads, Lq, d], k [B, heads, L, d], v [B, heads, L, dv]. */
  attention(q: Tensor, k: Tensor, v: Tensor): Tensor;

  // ---- losses (mean reduction) ----
  /** Mean squared error, a scalar. */
  mseLoss(pred: Tensor, target: Tensor): Tensor;
  /** Binary cross-entropy on logits, numerically stable, mean over all elements. */
  bceWithLogits(logits: Tensor, targets: Tensor): Tensor;

  // ---- autograd and optimisation ----
  /**
   * Runs `lossFn` (which must return a scalar tensor) recording operations, then returns the
   * loss value and d loss / d p for each p in `params` (variables created with trainable=true).
   * Tensors created inside `lossFn` are freed.
   */
  valueAndGrad(lossFn: () => Tensor, params: readonly Tensor[]): ValueAndGrad;
  /** Runs `fn` without recording gradients (inference). */
  noGrad<T>(fn: () => T): T;
  /** One Adam/AdamW update of `params` in place; bumps `state.step`. */
  adamStep(
    params: readonly Tensor[],
    grads: readonly Tensor[],
    state: AdamState,
    opts: AdamOptions,
  ): void;
  /** target <- decay * target + (1 - decay) * source, in place, for each pair (EMA of weights). */
  emaUpdate(targets: readonly Tensor[], sources: readonly Tensor[], decay: number): void;

  // ---- capability-dependent (see {@link capabilities}) ----
  /**
   * Symmetric eigendecomposition in float64 on the host's data (FID's matrix square root);
   * `a` is n x n row-major. Values ascending; `vectors` holds eigenvectors as columns.
   * Throws {@link BackendError} unless `capabilities.eighFloat64`.
   */
  eighFloat64(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array };
  /**
   * Eigenvalues only (ascending) of a symmetric n x n row-major float64 matrix. More accurate
   * than {@link Backend.eighFloat64}'s values for the small eigenvalues of a graded matrix
   * (large entries first), as FID's cross term needs. Throws {@link BackendError} unless
   * `capabilities.eighFloat64`.
   */
  eigvalshFloat64(a: Float64Array, n: number): Float64Array;
  /**
   * Runs conv/matmul/attention in bfloat16 under autocast; "float32" turns it off (accepted
   * everywhere). "bfloat16" throws {@link BackendError} unless `capabilities.autocast`.
   */
  setAutocast(dtype: "bfloat16" | "float32"): void;

  /** Frees everything the backend holds. Idempotent. */
  dispose(): void;
  /** {@link Backend.dispose}, for `using backend = await createBackend(...)`. */
  [Symbol.dispose](): void;
}

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** "[2,3,4]" — for error messages. */
export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}
