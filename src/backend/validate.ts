/**
 * The argument checks every backend runs before an op, so that the same mistake gives the same
 * {@link BackendError} (same op, shapes and text) on torch and on tfjs. Each check looks only at
 * shapes, dtypes and option values (and, for `gather`, the index values), throws on the first
 * problem, and accepts every call the contract in backend.ts allows.
 *
 * @module
 */
import { type BackendCapabilities, BackendError, type DType, shapeString } from "./backend.ts";

/** What a check needs of a tensor. */
export interface Described {
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** The highest rank a tensor may have on every backend (the shim's dd_out holds 8 sizes). */
export const MAX_RANK = 8;

type Shapes = readonly (readonly number[])[];

function fail(op: string, shapes: Shapes, detail: string): never {
  throw new BackendError(op, shapes, detail);
}

function shapesOf(ts: readonly (Described | undefined)[]): number[][] {
  return ts.filter((t): t is Described => t !== undefined).map((t) => [...t.shape]);
}

function isCount(n: number): boolean {
  return Number.isInteger(n) && n >= 0;
}

/** Axis in [-rank, rank) as a non-negative index, or a BackendError. */
function axisIn(op: string, shapes: Shapes, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    fail(op, shapes, `axis ${axis} is out of range for rank ${rank} (use -${rank}..${rank - 1})`);
  }
  return axis < 0 ? axis + rank : axis;
}

/**
 * A shape to create: non-negative integer sizes, rank at most {@link MAX_RANK}.
 *
 * @example
 * ```ts
 * import { checkShape } from "./validate.ts";
 * checkShape("zeros", [2, 3]); // fine
 * try { checkShape("zeros", [2, -1]); } catch (e) { console.log((e as Error).message); }
 * // zeros([2,-1]): sizes must be non-negative integers
 * ```
 */
export function checkShape(op: string, shape: readonly number[]): void {
  if (shape.length > MAX_RANK) fail(op, [shape], `rank ${shape.length} exceeds ${MAX_RANK}`);
  if (!shape.every(isCount)) fail(op, [shape], "sizes must be non-negative integers");
}

/** A dtype name the contract knows. */
export function checkDType(op: string, shapes: Shapes, dtype: string): void {
  if (dtype !== "float32" && dtype !== "int32") {
    fail(op, shapes, `unsupported dtype "${dtype}" (float32 or int32)`);
  }
}

/** `tensor(data, shape, dtype)`: a valid shape and dtype, and exactly enough values. */
export function checkTensorData(length: number, shape: readonly number[], dtype: string): void {
  checkDType("tensor", [shape], dtype);
  checkShape("tensor", shape);
  let n = 1;
  for (const d of shape) n *= d;
  if (length !== n) {
    fail("tensor", [shape], `data has ${length} elements but the shape needs ${n}`);
  }
}

/**
 * NumPy broadcasting of the given shapes, or a BackendError naming the sizes that clash.
 *
 * @example
 * ```ts
 * import { checkBroadcast } from "./validate.ts";
 * console.log(checkBroadcast("add", [[2, 1, 4], [3, 1]])); // [2, 3, 4]
 * ```
 */
export function checkBroadcast(op: string, shapes: Shapes): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let size = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i] ?? 1;
      if (d === 1) continue;
      if (size !== 1 && d !== size) {
        fail(op, shapes, `shapes do not broadcast: size ${size} against ${d} at axis ${i}`);
      }
      size = d;
    }
    out.push(shapes.some((s) => (s[s.length - rank + i] ?? 1) === 0) ? 0 : size);
  }
  return out;
}

/** A broadcasting binary op: equal dtypes, broadcastable shapes; a number always fits. */
export function checkBinary(op: string, a: Described, b: Described | number): void {
  if (typeof b === "number") return;
  if (a.dtype !== b.dtype) fail(op, [a.shape, b.shape], `dtypes differ: ${a.dtype} and ${b.dtype}`);
  checkBroadcast(op, [a.shape, b.shape]);
}

/** `where(cond, a, b)`: a and b share a dtype; all three broadcast together. */
export function checkWhere(cond: Described, a: Described, b: Described): void {
  const shapes = [cond.shape, a.shape, b.shape];
  if (a.dtype !== b.dtype) fail("where", shapes, `dtypes differ: ${a.dtype} and ${b.dtype}`);
  checkBroadcast("where", shapes);
}

/** One axis of `a` (softmax). */
export function checkAxis(op: string, a: Described, axis: number): number {
  return axisIn(op, [a.shape], axis, a.shape.length);
}

/** Reduction axes: each in range, none twice (undefined means all). */
export function checkAxes(op: string, a: Described, axes: readonly number[] | undefined): void {
  if (axes === undefined) return;
  const seen = new Set<number>();
  for (const axis of axes) {
    const ax = axisIn(op, [a.shape], axis, a.shape.length);
    if (seen.has(ax)) fail(op, [a.shape], `axis ${axis} is listed twice in [${axes}]`);
    seen.add(ax);
  }
}

/** `reshape(a, shape)`: at most one -1, the element count kept. */
export function checkReshape(a: Described, shape: readonly number[]): void {
  const shapes = [a.shape];
  if (shape.length > MAX_RANK) fail("reshape", shapes, `rank ${shape.length} exceeds ${MAX_RANK}`);
  const inferred = shape.filter((d) => d === -1).length;
  if (inferred > 1 || !shape.every((d) => d === -1 || isCount(d))) {
    fail("reshape", shapes, `bad target shape ${shapeString(shape)} (sizes >= 0, at most one -1)`);
  }
  const n = a.shape.reduce((x, y) => x * y, 1);
  const known = shape.reduce((x, y) => (y === -1 ? x : x * y), 1);
  const ok = inferred === 0 ? known === n : known > 0 && n % known === 0;
  if (!ok) {
    fail("reshape", shapes, `cannot view ${n} elements as ${shapeString(shape)}`);
  }
}

/** `permute(a, dims)`: a permutation of the axes (negative axes allowed). */
export function checkPermute(a: Described, dims: readonly number[]): void {
  const rank = a.shape.length;
  const ok = dims.length === rank &&
    dims.every((d) => Number.isInteger(d) && d >= -rank && d < rank) &&
    new Set(dims.map((d) => (d < 0 ? d + rank : d))).size === rank;
  if (!ok) fail("permute", [a.shape], `dims [${dims}] are not a permutation of the ${rank} axes`);
}

/**
 * `slice(a, begin, size)`: one entry per axis, inside the tensor (`size` -1 = to the end).
 *
 * @example
 * ```ts
 * import { checkSlice } from "./validate.ts";
 * const a = { shape: [4], dtype: "float32" } as const;
 * try { checkSlice(a, [2], [3]); } catch (e) { console.log((e as Error).message); }
 * // slice([4]): axis 0: begin 2 + size 3 runs past the end (size 4)
 * ```
 */
export function checkSlice(a: Described, begin: readonly number[], size: readonly number[]): void {
  const rank = a.shape.length;
  const shapes = [a.shape];
  if (begin.length !== rank || size.length !== rank) {
    fail("slice", shapes, `begin [${begin}] and size [${size}] must both have ${rank} entries`);
  }
  for (let i = 0; i < rank; i++) {
    const [b, s, d] = [begin[i], size[i], a.shape[i]];
    if (!isCount(b) || !(s === -1 || isCount(s))) {
      fail(
        "slice",
        shapes,
        `axis ${i}: begin ${b} and size ${s} must be integers >= 0 (size -1 = to the end)`,
      );
    }
    if (b > d) fail("slice", shapes, `axis ${i}: begin ${b} is past the end (size ${d})`);
    if (s !== -1 && b + s > d) {
      fail("slice", shapes, `axis ${i}: begin ${b} + size ${s} runs past the end (size ${d})`);
    }
  }
}

/** `cat(xs, axis)`: at least one tensor, one rank and dtype, equal sizes off the axis. */
export function checkCat(xs: readonly Described[], axis: number): void {
  const shapes = xs.map((x) => x.shape);
  if (xs.length === 0) fail("cat", [], "needs at least one tensor");
  const rank = xs[0].shape.length;
  const ax = axisIn("cat", shapes, axis, rank);
  for (const x of xs) {
    if (x.dtype !== xs[0].dtype) {
      fail("cat", shapes, `dtypes differ: ${xs[0].dtype} and ${x.dtype}`);
    }
    const same = x.shape.length === rank &&
      x.shape.every((d, i) => i === ax || d === xs[0].shape[i]);
    if (!same) fail("cat", shapes, `shapes must agree except along axis ${axis}`);
  }
}

/** `gather(a, indices, axis)`: int32 indices, axis in range. */
export function checkGather(a: Described, indices: Described, axis: number): number {
  const shapes = [a.shape, indices.shape];
  if (indices.dtype !== "int32") fail("gather", shapes, "indices must be int32");
  return axisIn("gather", shapes, axis, a.shape.length);
}

/** The index values of `gather`: each in 0..size-1 of the gathered axis. */
export function checkGatherIndices(
  a: Described,
  indices: Described,
  axis: number,
  values: ArrayLike<number>,
): void {
  const dim = a.shape[axis < 0 ? axis + a.shape.length : axis];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= 0 && v < dim)) {
      fail("gather", [a.shape, indices.shape], `index ${v} out of range 0..${dim - 1}`);
    }
  }
}

/** `matmul(a, b)`: [..., n, k] x [..., k, m] with broadcastable batch dims. */
export function checkMatmul(a: Described, b: Described): void {
  const shapes = [a.shape, b.shape];
  const ok = a.shape.length >= 2 && b.shape.length >= 2 && a.shape.at(-1) === b.shape.at(-2);
  if (!ok) fail("matmul", shapes, "expects [..., n, k] x [..., k, m]");
  checkBroadcast("matmul", [a.shape.slice(0, -2), b.shape.slice(0, -2)]);
}

/** `linear(x, w, b)`: x [..., in], w [out, in], b [out]. */
export function checkLinear(x: Described, w: Described, b?: Described): void {
  const ok = x.shape.length >= 1 && w.shape.length === 2 && x.shape.at(-1) === w.shape[1] &&
    (!b || shapeString(b.shape) === shapeString([w.shape[0]]));
  if (!ok) fail("linear", shapesOf([x, w, b]), "expects x [..., in], w [out, in], b [out]");
}

/** Options of conv2d after defaults: stride, (rows, cols) padding, activation. */
export interface Conv2dArgs {
  stride: number;
  padding: readonly [number, number];
  activation: string | undefined;
}

/**
 * `conv2d(x, w, b, opts)`: x [N, Cin, H, W], w [Cout, Cin, kh, kw] (any kh, kw >= 1), b [Cout];
 * stride >= 1, padding >= 0, activation none or "relu", the kernel inside the padded input.
 *
 * @example
 * ```ts
 * import { checkConv2d } from "./validate.ts";
 * const f = (shape: number[]) => ({ shape, dtype: "float32" as const });
 * checkConv2d(f([1, 3, 8, 8]), f([4, 3, 1, 7]), f([4]), { stride: 1, padding: [0, 3], activation: undefined });
 * ```
 */
export function checkConv2d(
  x: Described,
  w: Described,
  b: Described | undefined,
  opts: Conv2dArgs,
): void {
  const shapes = shapesOf([x, w, b]);
  const ok = x.shape.length === 4 && w.shape.length === 4 && x.shape[1] === w.shape[1] &&
    (!b || shapeString(b.shape) === shapeString([w.shape[0]]));
  if (!ok) fail("conv2d", shapes, "expects x [N, Cin, H, W], w [Cout, Cin, kh, kw], b [Cout]");
  if (opts.activation !== undefined && opts.activation !== "relu") {
    fail("conv2d", shapes, `unknown activation "${opts.activation}" (only "relu")`);
  }
  const [ph, pw] = opts.padding;
  if (!Number.isInteger(opts.stride) || opts.stride < 1 || !isCount(ph) || !isCount(pw)) {
    fail("conv2d", shapes, `stride ${opts.stride} must be >= 1 and padding ${ph}, ${pw} >= 0`);
  }
  const [kh, kw] = [w.shape[2], w.shape[3]];
  if (kh < 1 || kw < 1 || x.shape[2] + 2 * ph < kh || x.shape[3] + 2 * pw < kw) {
    fail("conv2d", shapes, `kernel ${kh}x${kw} larger than padded input (padding ${ph}, ${pw})`);
  }
}

/**
 * `convTranspose2d(x, w, b, opts)`: x [N, Cin, H, W], w [Cin, Cout, k, k] (square kernels only),
 * b [Cout]; stride >= 1, padding >= 0, 0 <= outputPadding < stride, a non-empty output.
 */
export function checkConvTranspose2d(
  x: Described,
  w: Described,
  b: Described | undefined,
  stride: number,
  padding: number,
  outputPadding: number,
): void {
  const shapes = shapesOf([x, w, b]);
  const ok = x.shape.length === 4 && w.shape.length === 4 && x.shape[1] === w.shape[0] &&
    w.shape[2] === w.shape[3] && (!b || shapeString(b.shape) === shapeString([w.shape[1]]));
  if (!ok) {
    fail("convTranspose2d", shapes, "expects x [N, Cin, H, W], w [Cin, Cout, k, k], b [Cout]");
  }
  const k = w.shape[2];
  const optsOk = Number.isInteger(stride) && stride >= 1 && isCount(padding) &&
    isCount(outputPadding) && outputPadding < stride &&
    (x.shape[2] - 1) * stride - 2 * padding + k + outputPadding > 0 &&
    (x.shape[3] - 1) * stride - 2 * padding + k + outputPadding > 0;
  if (!optsOk) {
    fail(
      "convTranspose2d",
      shapes,
      `bad stride ${stride} / padding ${padding} / outputPadding ${outputPadding} ` +
        "(stride >= 1, padding >= 0, 0 <= outputPadding < stride, non-empty output)",
    );
  }
}

/** `groupNorm(x, groups, w, b)`: x [N, C, ...], C divisible by groups, w and b [C]. */
export function checkGroupNorm(x: Described, groups: number, w: Described, b: Described): void {
  const c = x.shape[1];
  const ok = x.shape.length >= 2 && Number.isInteger(groups) && groups >= 1 && c % groups === 0 &&
    shapeString(w.shape) === `[${c}]` && shapeString(b.shape) === `[${c}]`;
  if (!ok) fail("groupNorm", shapesOf([x, w, b]), `${groups} groups for x [N, C, ...], w/b [C]`);
}

/** `layerNorm(x, w, b)`: w and b [D] for x [..., D]. */
export function checkLayerNorm(x: Described, w: Described, b: Described): void {
  const d = x.shape.at(-1);
  const ok = x.shape.length >= 1 && shapeString(w.shape) === `[${d}]` &&
    shapeString(b.shape) === `[${d}]`;
  if (!ok) fail("layerNorm", shapesOf([x, w, b]), "expects x [..., D], weight and bias [D]");
}

/**
 * `batchNorm(x, w, b, mean, var)`: x [N, C, H, W], every other tensor [C]; training needs more
 * than one value per channel.
 */
export function checkBatchNorm(
  x: Described,
  w: Described | undefined,
  b: Described | undefined,
  runningMean: Described,
  runningVar: Described,
  training: boolean,
): void {
  const c = `[${x.shape[1]}]`;
  const perChannel = [w, b, runningMean, runningVar].every((t) => !t || shapeString(t.shape) === c);
  if (x.shape.length !== 4 || !perChannel) {
    fail(
      "batchNorm",
      shapesOf([x, w, b, runningMean, runningVar]),
      "expects x [N, C, H, W] and weight, bias, running mean and variance [C]",
    );
  }
  if (training && x.shape[0] * x.shape[2] * x.shape[3] <= 1) {
    fail(
      "batchNorm",
      shapesOf([x, w, b, runningMean, runningVar]),
      "training needs more than 1 value per channel",
    );
  }
}

/** Pooling: x [N, C, H, W], kernel and stride >= 1, 0 <= padding <= kernel / 2, output >= 1. */
export function checkPool(
  op: string,
  x: Described,
  kernel: number,
  stride: number,
  padding: number,
): void {
  const shapes = [x.shape];
  if (x.shape.length !== 4) fail(op, shapes, "expects x [N, C, H, W]");
  const ok = Number.isInteger(kernel) && kernel >= 1 && Number.isInteger(stride) && stride >= 1 &&
    isCount(padding) && 2 * padding <= kernel;
  if (!ok) {
    fail(
      op,
      shapes,
      `kernel ${kernel}, stride ${stride}, padding ${padding}: need kernel, ` +
        "stride >= 1 and 0 <= padding <= kernel / 2",
    );
  }
  if (x.shape[2] + 2 * padding < kernel || x.shape[3] + 2 * padding < kernel) {
    fail(op, shapes, `kernel ${kernel} larger than padded input (padding ${padding})`);
  }
}

/** `interpolateBilinear(x, size)`: x [N, C, H, W], positive integer output size. */
export function checkInterpolate(x: Described, size: readonly number[]): void {
  const ok = x.shape.length === 4 && size.length === 2 &&
    size.every((s) => Number.isInteger(s) && s >= 1);
  if (!ok) {
    fail(
      "interpolateBilinear",
      [x.shape],
      `expects x [N, C, H, W] and a size [h, w] >= 1, got [${size}]`,
    );
  }
}

/** `attention(q, k, v)`: q [B, h, Lq, d], k [B, h, L, d], v [B, h, L, dv]. */
export function checkAttention(q: Described, k: Described, v: Described): void {
  const [qs, ks, vs] = [q.shape, k.shape, v.shape];
  const ok = qs.length === 4 && ks.length === 4 && vs.length === 4 && qs[0] === ks[0] &&
    qs[1] === ks[1] && qs[3] === ks[3] && ks.slice(0, 3).join() === vs.slice(0, 3).join();
  if (!ok) {
    fail("attention", [qs, ks, vs], "expects q [B, h, Lq, d], k [B, h, L, d], v [B, h, L, dv]");
  }
}

/** Losses: prediction and target of the same shape. */
export function checkSameShape(op: string, a: Described, b: Described): void {
  if (shapeString(a.shape) !== shapeString(b.shape)) {
    fail(op, [a.shape, b.shape], "shapes differ");
  }
}

/** Paired lists (emaUpdate, adamStep): equal lengths and equal shapes pair by pair. */
export function checkPairs(
  op: string,
  targets: readonly Described[],
  sources: readonly Described[],
  what: [string, string],
): void {
  if (targets.length !== sources.length) {
    fail(op, [], `${targets.length} ${what[0]} but ${sources.length} ${what[1]}`);
  }
  for (let i = 0; i < targets.length; i++) {
    if (shapeString(targets[i].shape) !== shapeString(sources[i].shape)) {
      fail(op, [targets[i].shape, sources[i].shape], `pair ${i}: shapes differ`);
    }
  }
}

/** `setAutocast(dtype)`: "float32" everywhere, "bfloat16" only where `capabilities.autocast`. */
export function checkAutocast(capabilities: BackendCapabilities, dtype: string): void {
  if (dtype === "float32") return;
  if (dtype !== "bfloat16") {
    fail("setAutocast", [], `unknown dtype "${dtype}" ("bfloat16" or "float32")`);
  }
  if (!capabilities.autocast) {
    fail(
      "setAutocast",
      [],
      "no bfloat16 autocast on this backend (capabilities.autocast is false)",
    );
  }
}

/** `eighFloat64(a, n)` or `eigvalshFloat64(a, n)`: supported here, a holds n x n values. */
export function checkEigh(
  caps: BackendCapabilities,
  length: number,
  n: number,
  op = "eighFloat64",
) {
  const why =
    "not supported on this backend (capabilities.eighFloat64 is false); use a host solver";
  if (!caps.eighFloat64) fail(op, [[length]], why);
  if (!Number.isInteger(n) || n < 0 || length !== n * n) {
    fail(op, [[length]], `expected ${n}x${n} = ${n * n} values`);
  }
}

/** `assign(variable, value)`: same shape and dtype (each backend checks it is a variable). */
export function checkAssign(variable: Described, value: Described): void {
  if (shapeString(variable.shape) !== shapeString(value.shape) || variable.dtype !== value.dtype) {
    fail("assign", [variable.shape, value.shape], "shape or dtype differs from the variable's");
  }
}

/** `adamStep`: one grad and two moments per parameter, all of the parameter's shape. */
export function checkAdam(
  params: readonly Described[],
  grads: readonly Described[],
  m: readonly Described[],
  v: readonly Described[],
): void {
  const n = params.length;
  if (grads.length !== n || m.length !== n || v.length !== n) {
    fail(
      "adamStep",
      [],
      `${n} params, ${grads.length} grads, ${m.length} m, ${v.length} v: all must match`,
    );
  }
  for (let i = 0; i < n; i++) {
    const s = shapeString(params[i].shape);
    if ([grads[i], m[i], v[i]].some((t) => shapeString(t.shape) !== s)) {
      fail(
        "adamStep",
        [params[i].shape, grads[i].shape, m[i].shape, v[i].shape],
        `parameter ${i}: param, grad, m and v shapes differ`,
      );
    }
  }
}
