/**
 * TensorFlow.js convolutions with PyTorch weight layouts ([Cout, Cin, kh, kw], any kh and kw)
 * on channels-last tensors, and their gradients. tfjs-wasm (4.22) lacks Conv2DBackpropFilter
 * and runs Conv2DBackpropInput as a plain loop, so both gradients are written as forward convs
 * (XNNPACK). Large convs on wasm are split with the conv worker (tfjs_worker.ts). Inputs and
 * outputs are raw tfjs tensors; callers run these inside a tidy.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import { sizeOf } from "./backend.ts";
import { dims, type Tf, zeroStuff } from "./tfjs_kernels.ts";
import { INTERLEAVE_PHASES } from "./tfjs_wasm_kernels.ts";
import { CONV_OP, type ConvOp, currentConvWorker, type JobInput } from "./tfjs_worker.ts";

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
 * The transposed convolution of {@link convTransposeNHWC} for a 1x1 input without padding
 * whose output is the kernel's size (the DCGAN generator's first layer, noise -> 4x4): every
 * output pixel is one tap, y[n, i, j, :] = dy[n, :] w[:, :, i, j], so it is one matmul. The
 * general path would pad the single pixel by k - 1 on each side and multiply 15 zeros for
 * every product of a 4x4 kernel. dy [N, 1, 1, Cout], w [Cout, Cin, kh, kw] -> [N, kh, kw, Cin].
 */
function convTransposeFrom1x1(dy: Tf, w: Tf): Tf {
  const [n, , , cOut] = dims(dy);
  const [, cIn, kh, kw] = dims(w);
  const taps = tf.reshape(tf.transpose(w, [0, 2, 3, 1]), [cOut, kh * kw * cIn]);
  return tf.reshape(tf.matMul(tf.reshape(dy, [n, cOut]), taps), [n, kh, kw, cIn]);
}

/**
 * The transposed convolution of {@link convTransposeNHWC} by output phase, for stride s > 1:
 * output rows o = s*m + a (a in [0, s)) see only the kernel taps k = s*t + r, with
 * r = (a + p) mod s, so each of the s*s phases (a, b) is a stride-1 convolution of the
 * undilated dy with a (ceil((kh - r)/s) x ceil((kw - r')/s)) sub-kernel, and the phases
 * interleave into the output. Zero-stuffing instead multiplies (s*s - 1)/(s*s) of its terms
 * by inserted zeros: for the DCGAN's k = 4, s = 2 layers this does a quarter of the work.
 * Same shapes as {@link convTransposeNHWC}.
 *
 * Each phase reads a window of dy that may reach past its edges; that overhang is the conv's
 * own (asymmetric) zero padding, so dy is cropped only where a window starts or ends inside
 * it, never padded or copied otherwise. The sub-kernels are put together from one
 * [kh, kw, Cout, Cin] copy of w, where each tap is a contiguous Cout*Cin block, by slices and
 * concats (block copies): wasm's GatherV2 copies element by element and took about a tenth of
 * the DCGAN step.
 */
function convTransposePhases(
  dy: Tf,
  w: Tf,
  s: number,
  p: number,
  outH: number,
  outW: number,
): Tf {
  const [n, h, wd] = dims(dy);
  const [, cIn, kh, kw] = dims(w);
  const [mh, mw] = [Math.ceil(outH / s), Math.ceil(outW / s)];
  /**
   * Per axis and phase: the taps (kernel indices, flipped for correlation), and the rows of dy
   * the conv reads, [start, end), with the zeros it pads before and after them.
   */
  const plan = (a: number, k: number, out: number, size: number) => {
    const r = (a + p) % s;
    const taps = Math.ceil((k - r) / s); // may be 0: no tap reaches this phase
    const offset = Math.floor((a + p) / s) - taps + 1; // input row of tap 0 for m = 0
    const index = Array.from({ length: taps }, (_, j) => s * (taps - 1 - j) + r);
    const last = offset + out + taps - 1; // one past the last row read
    const [start, end] = [Math.max(0, offset), Math.min(size, last)];
    return { taps, index, start, end, before: start - offset, after: last - end };
  };
  const taps = tf.transpose(w, [2, 3, 0, 1]); // [kh, kw, Cout, Cin]
  /** The sub-kernel [th, tw, Cout, Cin] of taps rows x cols, one contiguous block per tap. */
  const subKernel = (rows: number[], cols: number[]) =>
    tf.concat(rows.map((i) => tf.concat(cols.map((j) => tf.slice(taps, [i, j], [1, 1])), 1)), 0);
  const phases: Tf[] = []; // phase (a, b) at a*s + b, each [N, Mh, Mw, Cin]
  for (let a = 0; a < s; a++) {
    const ph = plan(a, kh, mh, h);
    for (let b = 0; b < s; b++) {
      const pw = plan(b, kw, mw, wd);
      if (ph.taps === 0 || pw.taps === 0 || ph.start >= ph.end || pw.start >= pw.end) {
        phases.push(tf.zeros([n, mh, mw, cIn]));
        continue;
      }
      const filter = subKernel(ph.index, pw.index); // [th, tw, Cout, Cin]
      const whole = ph.start === 0 && ph.end === h && pw.start === 0 && pw.end === wd;
      const x = whole ? dy : tf.slice(
        dy,
        [0, ph.start, pw.start, 0],
        [-1, ph.end - ph.start, pw.end - pw.start, -1],
      );
      phases.push(tf.conv2d(
        x as tf.Tensor4D,
        filter as tf.Tensor4D,
        1,
        explicitPad(ph.before, ph.after, pw.before, pw.after),
      ));
    }
  }
  const y = interleavePhases(phases, s); // [N, Mh*s, Mw*s, Cin]
  return mh * s === outH && mw * s === outW ? y : tf.slice(y, [0, 0, 0, 0], [-1, outH, outW, -1]);
}

/**
 * The s*s phases of {@link convTransposePhases}, phase (a, b) at a*s + b, each [N, Mh, Mw, C],
 * interleaved into [N, Mh*s, Mw*s, C]: phase (a, b) fills rows s*m + a, columns s*k + b. On wasm
 * one kernel writes each value once (tfjs_wasm_kernels.ts, installed where tfjs-wasm is
 * loaded); elsewhere, or without it, two stacks.
 */
function interleavePhases(phases: Tf[], s: number): Tf {
  if (tf.getBackend() === "wasm" && tf.getKernel(INTERLEAVE_PHASES, "wasm")) {
    return tf.engine().runKernel(INTERLEAVE_PHASES, Object.fromEntries(phases.entries()), {
      s,
    }) as Tf;
  }
  const [n, mh, mw, c] = dims(phases[0]);
  const rows = Array.from({ length: s }, (_, a) =>
    // [N, Mh, Mw, s, C] -> [N, Mh, Mw*s, C]: phase b lands at column s*k + b.
    tf.reshape(tf.stack(phases.slice(a * s, a * s + s), 3), [n, mh, mw * s, c]));
  return tf.reshape(tf.stack(rows, 2), [n, mh * s, mw * s, c]); // row s*m + a
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
 * import * as tf from "npm:@tensorflow/tfjs@4.22.0";
 * import { toCHWN } from "./tfjs_conv.ts";
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
 * import * as tf from "npm:@tensorflow/tfjs@4.22.0";
 * import { convJob } from "./tfjs_conv.ts";
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
    case CONV_OP.inputGrad: {
      const [, h, wd] = dims(a);
      const [, , kh, kw] = dims(b);
      if (h === 1 && wd === 1 && p === 0 && outShape[1] === kh && outShape[2] === kw) {
        return convTransposeFrom1x1(a, b);
      }
      return s > 1
        ? convTransposePhases(a, b, s, p, outShape[1], outShape[2])
        : convTransposeNHWC(a, b, s, p, outShape[1], outShape[2]);
    }
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
 * import * as tf from "npm:@tensorflow/tfjs@4.22.0";
 * import { wasmHeapView } from "./tfjs_conv.ts";
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
 * The variables whose gradient is being recorded (set by the backend's valueAndGrad), or
 * undefined outside one. tfjs evaluates every output of a custom gradient, even for inputs off
 * the path to those variables; a conv skips the gradients tfjs would throw away: of a weight
 * outside the set (the discriminator's weights while the generator's gradient is taken), and of
 * an input not computed from the set (the real images fed to the discriminator).
 */
export const gradientTargets: { variables: ReadonlySet<Tf> | undefined } = {
  variables: undefined,
};

/** What {@link gradWanted} reads of a node of tfjs's gradient tape (public, untyped there). */
interface TapeNodeView {
  inputs: Record<string, Tf | undefined>;
  outputs: Tf[];
}

/** Per tape: the ids of tensors computed from the targets, grown as the tape grows. */
const fromTargets = new WeakMap<
  object,
  { targets: ReadonlySet<Tf>; scanned: number; ids: Set<number> }
>();

/**
 * Whether a gradient w.r.t. `t` can reach the variables of {@link gradientTargets}: `t` is one
 * of them, or an op recorded on the tape made it from one (the tape is in execution order, so
 * one pass over the nodes added since the last call keeps the set current). True outside a
 * valueAndGrad.
 */
function gradWanted(t: Tf): boolean {
  const targets = gradientTargets.variables;
  if (!targets || targets.has(t)) return true;
  if (t instanceof tf.Variable) return false;
  const tape = (tf.engine().state as unknown as { activeTape: TapeNodeView[] | null }).activeTape;
  if (!tape) return true;
  let seen = fromTargets.get(tape);
  if (!seen || seen.targets !== targets) {
    seen = { targets, scanned: 0, ids: new Set([...targets].map((v) => v.id)) };
    fromTargets.set(tape, seen);
  }
  for (; seen.scanned < tape.length; seen.scanned++) {
    const node = tape[seen.scanned];
    if (Object.values(node.inputs).some((x) => x !== undefined && seen.ids.has(x.id))) {
      for (const out of node.outputs) seen.ids.add(out.id);
    }
  }
  return seen.ids.has(t.id);
}

/**
 * conv2d on channels-last x [N, H, W, Cin], w [Cout, Cin, kh, kw] -> [N, Ho, Wo, Cout], with a
 * gradient made of forward convs. Only dW needs transposed copies of x and dy. Each of the
 * three convs may be split with the conv worker ({@link splitConvJob}).
 */
export function conv2dWithGrad(x: Tf, w: Tf, s: number, p: number): Tf {
  const [wantDx, wantDw] = [gradWanted(x), gradWanted(w)];
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
        const dx = wantDx
          ? splitConvJob(CONV_OP.inputGrad, dy, sw, s, p, [n, h, wd, cIn])
          : tf.zerosLike(sx);
        const dw = wantDw
          ? splitConvJob(CONV_OP.weightGrad, sx, dy, s, p, [cOut, cIn, kh, kw])
          : tf.zerosLike(sw);
        return [dx, dw];
      },
    };
  })(x, w);
}

/**
 * convTranspose2d on channels-last x [N, H, W, Cin], w [Cin, Cout, k, k] (PyTorch layout) ->
 * [N, Ho, Wo, Cout]: the input-gradient of a conv whose weight is w read as
 * [Cout_conv = Cin, Cin_conv = Cout]. Its gradients are that conv's forward pass (dx) and
 * weight gradient (dw), with the roles of x and dy swapped. So the three are the same
 * {@link convJob}s as a conv layer's, and each may be split with the conv worker alike
 * (the DCGAN generator's layers are all transposed convs).
 */
export function convTranspose2dWithGrad(x: Tf, w: Tf, s: number, p: number, outPad: number): Tf {
  const [n, h, wd, cIn] = dims(x);
  const [, cOut, k] = dims(w);
  const outH = (h - 1) * s - 2 * p + k + outPad;
  const outW = (wd - 1) * s - 2 * p + k + outPad;
  const [wantDx, wantDw] = [gradWanted(x), gradWanted(w)];
  return tf.customGrad((xv, wv, save) => {
    const [xt, wt] = [xv as Tf, wv as Tf];
    (save as tf.GradSaveFunc)([xt, wt]);
    return {
      value: splitConvJob(CONV_OP.inputGrad, xt, wt, s, p, [n, outH, outW, cOut]),
      gradFunc: (dy: Tf, [sx, sw]: Tf[]) => {
        const dx = wantDx
          ? splitConvJob(CONV_OP.forward, dy, sw, s, p, [n, h, wd, cIn])
          : tf.zerosLike(sx);
        // dW of the conv whose input is dy [N, Ho, Wo, Cout] and output gradient x.
        const dw = wantDw
          ? splitConvJob(CONV_OP.weightGrad, dy, sx, s, p, [cIn, cOut, k, k])
          : tf.zerosLike(sw);
        return [dx, dw];
      },
    };
  })(x, w);
}
