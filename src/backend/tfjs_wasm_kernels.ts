/**
 * tfjs-wasm (4.22) kernels that move less memory: three of wasm's replaced, with the same
 * results, and one added.
 *
 * Replaced:
 *
 * - Identity copies its input into a new buffer, and tfjs's engine clones (Identity) every
 *   tensor a custom gradient saves for the backward pass: 2% of the DCGAN step went to
 *   copies. tfjs tensors are immutable (a Variable's `assign` swaps in another buffer rather
 *   than writing into its own), so the result shares the input's buffer and bumps its
 *   reference count, as wasm's own Reshape does.
 * - Slice reads the whole input out of the wasm heap into a fresh JS array before copying
 *   the requested block (a 16-tap conv kernel is sliced 16 times per call: 16 whole copies of
 *   the kernel, 1.4-2.8 ms each for 2 MB). Here the block is copied straight from the heap, a
 *   contiguous run at a time.
 * - Transpose has fast paths for up to 4 axes and a generic one, 40-60x slower per element,
 *   beyond (the U-Net's [B, L, 3, heads, d] -> [3, B, heads, L, d] split of q, k and v took
 *   90-116 ms for 1.1 M values). For 5 or more axes, those that stay neighbours are merged,
 *   so that wasm's fast paths serve what then has fewer; what still has 5 or more is copied
 *   here, in runs where the last axis stays innermost (5-10 ms for that split).
 *
 * Strings keep wasm's own kernels.
 *
 * Added: {@link INTERLEAVE_PHASES}, which writes the s*s output phases of a strided transposed
 * conv (tfjs_conv.ts) into their interleaved places in one pass. Composed of tfjs ops that is
 * two Packs (concats copying runs of C floats from JS), 3% of the DCGAN step, most of it the
 * 3-channel output layer, whose runs are 3 floats long.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";

/** What the kernels use of tfjs-wasm's BackendWasm (public methods, untyped in tfjs's API). */
interface WasmKernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): tf.TypedArray;
  incRef(dataId: tf.DataId): void;
}

/** Runs below this many elements copy element by element: `subarray` + `set` cost more. */
const SHORT_RUN = 32;

/**
 * dst (row-major over `sizes`) gets src[offset + sum over axes of index * stride], copied a run
 * at a time. Axes that are contiguous in src (stride = next size x next stride) merge first, so
 * the run is the whole stretch that is contiguous in both; a last stride other than 1 copies
 * element by element.
 */
function gatherRuns(
  src: tf.TypedArray,
  offset: number,
  sizes: readonly number[],
  strides: readonly number[],
  dst: tf.TypedArray,
): void {
  const axes = mergeAxes(sizes, strides);
  const last = axes.sizes.length - 1;
  const run = axes.sizes[last];
  const step = axes.strides[last];
  const outer = axes.sizes.slice(0, last);
  const outerStrides = axes.strides.slice(0, last);
  const index = new Array<number>(last).fill(0); // odometer over the outer axes
  let from = offset;
  for (let to = 0; to < dst.length; to += run) {
    if (step !== 1) {
      for (let k = 0; k < run; k++) dst[to + k] = src[from + k * step];
    } else if (run < SHORT_RUN) {
      for (let k = 0; k < run; k++) dst[to + k] = src[from + k];
    } else {
      dst.set(src.subarray(from, from + run), to);
    }
    for (let axis = last - 1; axis >= 0; axis--) {
      if (++index[axis] < outer[axis]) {
        from += outerStrides[axis];
        break;
      }
      index[axis] = 0;
      from -= (outer[axis] - 1) * outerStrides[axis];
    }
  }
}

/** Drops axes of size 1 and merges neighbours contiguous in the source; at least one axis. */
function mergeAxes(sizes: readonly number[], strides: readonly number[]) {
  const merged = { sizes: [] as number[], strides: [] as number[] };
  for (let axis = 0; axis < sizes.length; axis++) {
    if (sizes[axis] === 1) continue;
    const at = merged.sizes.length - 1;
    if (at >= 0 && merged.strides[at] === sizes[axis] * strides[axis]) {
      merged.sizes[at] *= sizes[axis];
      merged.strides[at] = strides[axis];
    } else {
      merged.sizes.push(sizes[axis]);
      merged.strides.push(strides[axis]);
    }
  }
  if (merged.sizes.length === 0) return { sizes: [1], strides: [1] };
  return merged;
}

/** Row-major strides of `shape`. */
function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  for (let axis = shape.length - 1, stride = 1; axis >= 0; axis--) {
    strides[axis] = stride;
    stride *= shape[axis];
  }
  return strides;
}

/**
 * Copies the block `size` at `begin` of `src` (laid out as `shape`, row-major) into `dst`.
 * The trailing axes taken whole merge with the last axis that is not into one contiguous run.
 *
 * @example
 * ```ts
 * import { copyBlock } from "./tfjs_wasm_kernels.ts";
 * const src = Float32Array.from({ length: 12 }, (_, i) => i); // [3, 4]
 * const dst = new Float32Array(4);
 * copyBlock(src, [3, 4], [1, 1], [2, 2], dst);
 * console.log([...dst]); // [5, 6, 9, 10]
 * ```
 */
export function copyBlock(
  src: tf.TypedArray,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
  dst: tf.TypedArray,
): void {
  if (size.some((d) => d === 0)) return;
  const strides = stridesOf(shape);
  const offset = begin.reduce((sum, b, axis) => sum + b * strides[axis], 0);
  gatherRuns(src, offset, size, strides, dst);
}

/**
 * A transpose of `shape` by `perm` with the axes of size 1 dropped and the axes that stay
 * neighbours (in order) merged: the same data movement in the fewest axes.
 *
 * @example
 * ```ts
 * import { simplifyTranspose } from "./tfjs_wasm_kernels.ts";
 * console.log(simplifyTranspose([128, 16, 16, 64], [1, 2, 0, 3]));
 * // { shape: [128, 256, 64], perm: [1, 0, 2] }
 * ```
 */
export function simplifyTranspose(
  shape: readonly number[],
  perm: readonly number[],
): { shape: number[]; perm: number[] } {
  const kept = perm.filter((axis) => shape[axis] !== 1); // output order, input axes
  // Runs of input axes that follow each other in the output too.
  const groups: number[][] = [];
  for (const axis of kept) {
    const group = groups.at(-1);
    if (group && group.at(-1)! + 1 === axis) group.push(axis);
    else groups.push([axis]);
  }
  const inputOrder = [...groups].sort((g, h) => g[0] - h[0]);
  return {
    shape: inputOrder.map((g) => g.reduce((size, axis) => size * shape[axis], 1)),
    perm: groups.map((g) => inputOrder.indexOf(g)),
  };
}

/**
 * The transpose of `src` (laid out as `shape`) by `perm` into `dst`, copied a run at a time where
 * the result's last axis is contiguous in `src`, else element by element.
 *
 * @example
 * ```ts
 * import { transposeInto } from "./tfjs_wasm_kernels.ts";
 * const src = Float32Array.from({ length: 12 }, (_, i) => i); // [2, 3, 2]
 * const dst = new Float32Array(12);
 * transposeInto(src, [2, 3, 2], [1, 0, 2], dst);
 * console.log([...dst]); // [0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]
 * ```
 */
export function transposeInto(
  src: tf.TypedArray,
  shape: readonly number[],
  perm: readonly number[],
  dst: tf.TypedArray,
): void {
  if (shape.some((d) => d === 0)) return;
  const inStrides = stridesOf(shape);
  gatherRuns(src, 0, perm.map((axis) => shape[axis]), perm.map((axis) => inStrides[axis]), dst);
}

/**
 * `count` row-major [rows, cols] matrices of `src`, each transposed into `dst`, in 32x32 tiles:
 * a tile's reads and writes stay in cache, where a row-by-row walk writes one element per cache
 * line of the output.
 *
 * @example
 * ```ts
 * import { transposeMatrices } from "./tfjs_wasm_kernels.ts";
 * const dst = new Float32Array(6);
 * transposeMatrices(Float32Array.from([1, 2, 3, 4, 5, 6]), 1, 2, 3, dst);
 * console.log([...dst]); // [1, 4, 2, 5, 3, 6]
 * ```
 */
export function transposeMatrices(
  src: tf.TypedArray,
  count: number,
  rows: number,
  cols: number,
  dst: tf.TypedArray,
): void {
  const tile = 32;
  for (let m = 0, base = 0; m < count; m++, base += rows * cols) {
    for (let r0 = 0; r0 < rows; r0 += tile) {
      const r1 = Math.min(rows, r0 + tile);
      for (let c0 = 0; c0 < cols; c0 += tile) {
        const c1 = Math.min(cols, c0 + tile);
        for (let r = r0; r < r1; r++) {
          let from = base + r * cols + c0;
          let to = base + c0 * rows + r;
          for (let c = c0; c < c1; c++, to += rows) dst[to] = src[from++];
        }
      }
    }
  }
}

/**
 * Matrices of at least this many elements (2 MiB, more than a core's L2), and 64 on each side,
 * are transposed by {@link transposeMatrices}: the attention's [8, 1024, 1024] by [0, 2, 1] in
 * 47-51 ms against wasm's 78. Smaller ones fit in cache, where wasm's kernel is as fast or
 * faster ([44, 256, 256]: 9 ms against 12).
 */
const TILED_TRANSPOSE_MIN = 1 << 19;

/**
 * From this many axes (after {@link simplifyTranspose}) wasm's Transpose takes its generic path,
 * 60-80 ns per element here against 1-2 for its 2-, 3- and 4-axis ones.
 */
const WASM_SLOW_TRANSPOSE_RANK = 5;

/** What tfjs passes a kernel function. */
interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
  backend: unknown;
}

function identity(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  (args.backend as WasmKernelBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function slice(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const { begin, size } = args.attrs as unknown as { begin: number[]; size: number[] };
  const [start, extent] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  const backend = args.backend as WasmKernelBackend;
  // Both views after makeOutput: allocating may grow (and so move) the heap.
  const out = backend.makeOutput(extent, x.dtype);
  copyBlock(backend.typedArrayFromHeap(x), x.shape, start, extent, backend.typedArrayFromHeap(out));
  return out;
}

function transpose(args: KernelArgs, original: tf.KernelFunc): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const perm = (args.attrs as unknown as { perm: number[] }).perm;
  const outShape = perm.map((axis) => x.shape[axis]);
  const simple = simplifyTranspose(x.shape, perm);
  const swapsLastTwo = simple.perm.join() === "1,0" || simple.perm.join() === "0,2,1";
  const [rows, cols] = simple.shape.slice(-2);
  if (swapsLastTwo && rows * cols >= TILED_TRANSPOSE_MIN && Math.min(rows, cols) >= 64) {
    const backend = args.backend as WasmKernelBackend;
    const out = backend.makeOutput(outShape, x.dtype);
    const count = simple.shape.length === 3 ? simple.shape[0] : 1;
    const dst = backend.typedArrayFromHeap(out);
    transposeMatrices(backend.typedArrayFromHeap(x), count, rows, cols, dst);
    return out;
  }
  const wasmRank = x.shape.filter((d) => d !== 1).length; // wasm drops axes of size 1 itself
  if (wasmRank < WASM_SLOW_TRANSPOSE_RANK) {
    return original(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  if (simple.shape.length < WASM_SLOW_TRANSPOSE_RANK) {
    // wasm's kernel on the same buffer seen with fewer axes (a fast path), as it does itself for
    // axes of size 1; the result is then given its real shape. Only here: merging axes that
    // wasm already handles fast can make it slower ([8, 1024, 1024] by [1, 2, 0] as the 2-D
    // [8, 1 Mi] by [1, 0] takes twice as long).
    const out = original(
      {
        ...args,
        inputs: { x: { dataId: x.dataId, shape: simple.shape, dtype: x.dtype } },
        attrs: { perm: simple.perm },
      } as Parameters<tf.KernelFunc>[0],
    ) as tf.TensorInfo;
    return { ...out, shape: outShape };
  }
  const backend = args.backend as WasmKernelBackend;
  const out = backend.makeOutput(outShape, x.dtype);
  transposeInto(backend.typedArrayFromHeap(x), x.shape, perm, backend.typedArrayFromHeap(out));
  return out;
}

/**
 * The added kernel's name. Inputs "0" .. String(s*s - 1): phase a*s + b, [N, Mh, Mw, C]
 * float32; attribute `s`. Output [N, Mh*s, Mw*s, C] with out[n, s*m + a, s*k + b, c] =
 * phase[a*s + b][n, m, k, c]. No gradient: it runs inside custom gradients (tfjs_conv.ts).
 */
export const INTERLEAVE_PHASES = "DenoDiffusionInterleavePhases";

function interleavePhases(args: KernelArgs): tf.TensorInfo {
  const s = (args.attrs as unknown as { s: number }).s;
  const phases = Array.from({ length: s * s }, (_, i) => args.inputs[String(i)] as tf.TensorInfo);
  const [n, mh, mw, c] = phases[0].shape;
  for (const p of phases) {
    if (p.dtype !== "float32" || p.shape.join() !== phases[0].shape.join()) {
      throw new Error(`${INTERLEAVE_PHASES}: phases must be float32 of one shape`);
    }
  }
  const backend = args.backend as WasmKernelBackend;
  const out = backend.makeOutput([n, mh * s, mw * s, c], "float32");
  const dst = backend.typedArrayFromHeap(out);
  const srcs = phases.map((p) => backend.typedArrayFromHeap(p));
  const step = s * c; // between neighbouring pixels of one phase in an output row
  for (let row = 0; row < n * mh; row++) { // (n, m)
    for (let a = 0; a < s; a++) {
      const outRow = (row * s + a) * mw * step; // output row s*m + a of image n
      for (let b = 0; b < s; b++) {
        const src = srcs[a * s + b];
        let from = row * mw * c;
        let to = outRow + b * c;
        for (let k = 0; k < mw; k++, from += c, to += step) {
          if (c < SHORT_RUN) {
            for (let ch = 0; ch < c; ch++) dst[to + ch] = src[from + ch];
          } else {
            dst.set(src.subarray(from, from + c), to);
          }
        }
      }
    }
  }
  return out;
}

let registered = false;

/**
 * Puts this module's Identity and Slice in place of tfjs-wasm's and registers
 * {@link INTERLEAVE_PHASES}; once per process (tfjs's kernel registry is global), after
 * tfjs-backend-wasm registered its own. String tensors go to the replaced kernels.
 *
 * @example
 * ```ts
 * import { installWasmKernels } from "./tfjs_wasm_kernels.ts";
 * await import("npm:@tensorflow/tfjs-backend-wasm@4.22.0");
 * installWasmKernels();
 * ```
 */
export function installWasmKernels(): void {
  if (registered) return;
  registered = true;
  tf.registerKernel({
    kernelName: INTERLEAVE_PHASES,
    backendName: "wasm",
    kernelFunc: interleavePhases as unknown as tf.KernelFunc,
  });
  const replacements: [string, (args: KernelArgs, original: tf.KernelFunc) => tf.TensorInfo][] = [
    [tf.Identity, identity],
    [tf.Slice, slice],
    [tf.Transpose, transpose],
  ];
  for (const [name, kernel] of replacements) {
    const original = tf.getKernel(name, "wasm");
    if (!original) throw new Error(`tfjs-wasm has no ${name} kernel to replace`);
    tf.unregisterKernel(name, "wasm");
    tf.registerKernel({
      kernelName: name,
      backendName: "wasm",
      // The replaced kernel still runs for strings and short runs, and other wasm kernels call
      // its implementation directly: its setup (binding the wasm function) must still happen.
      setupFunc: original.setupFunc,
      disposeFunc: original.disposeFunc,
      kernelFunc: (args) => {
        const x = args.inputs.x as tf.TensorInfo;
        if (x.dtype === "string") return original.kernelFunc(args);
        return kernel(args as unknown as KernelArgs, original.kernelFunc);
      },
    });
  }
}
