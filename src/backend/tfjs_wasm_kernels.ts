/**
 * tfjs-wasm (4.22) kernels that move less memory: two of wasm's replaced, with the same
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
  const rank = shape.length;
  const strides = new Array<number>(rank);
  for (let axis = rank - 1, stride = 1; axis >= 0; axis--) {
    strides[axis] = stride;
    stride *= shape[axis];
  }
  // The run: axes [inner, rank) are copied as one contiguous stretch per outer index.
  let inner = rank;
  let run = 1;
  while (inner > 0) {
    inner--;
    run *= size[inner];
    if (size[inner] !== shape[inner]) break;
  }
  let from = 0;
  for (let axis = 0; axis < rank; axis++) from += begin[axis] * strides[axis];
  if (inner === 0 || run === 0) {
    dst.set(src.subarray(from, from + run));
    return;
  }
  const index = new Array<number>(inner).fill(0); // over the outer axes [0, inner)
  const total = dst.length;
  for (let to = 0; to < total; to += run) {
    if (run < SHORT_RUN) {
      for (let k = 0; k < run; k++) dst[to + k] = src[from + k];
    } else {
      dst.set(src.subarray(from, from + run), to);
    }
    // Next outer index, odometer style, moving `from` by the strides.
    for (let axis = inner - 1; axis >= 0; axis--) {
      if (++index[axis] < size[axis]) {
        from += strides[axis];
        break;
      }
      index[axis] = 0;
      from -= (size[axis] - 1) * strides[axis];
    }
  }
}

function identity(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  (args.backend as WasmKernelBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function slice(args: {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
  backend: unknown;
}): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const { begin, size } = args.attrs as unknown as { begin: number[]; size: number[] };
  const [start, extent] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  const backend = args.backend as WasmKernelBackend;
  // Both views after makeOutput: allocating may grow (and so move) the heap.
  const out = backend.makeOutput(extent, x.dtype);
  if (extent.some((d) => d === 0)) return out;
  copyBlock(backend.typedArrayFromHeap(x), x.shape, start, extent, backend.typedArrayFromHeap(out));
  return out;
}

/**
 * The added kernel's name. Inputs "0" .. String(s*s - 1): phase a*s + b, [N, Mh, Mw, C]
 * float32; attribute `s`. Output [N, Mh*s, Mw*s, C] with out[n, s*m + a, s*k + b, c] =
 * phase[a*s + b][n, m, k, c]. No gradient: it runs inside custom gradients (tfjs_conv.ts).
 */
export const INTERLEAVE_PHASES = "DenoDiffusionInterleavePhases";

function interleavePhases(args: {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
  backend: unknown;
}): tf.TensorInfo {
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
  const replacements: [string, tf.KernelFunc][] = [
    [tf.Identity, identity as unknown as tf.KernelFunc],
    [tf.Slice, slice as unknown as tf.KernelFunc],
  ];
  for (const [name, kernelFunc] of replacements) {
    const original = tf.getKernel(name, "wasm");
    if (!original) throw new Error(`tfjs-wasm has no ${name} kernel to replace`);
    tf.unregisterKernel(name, "wasm");
    tf.registerKernel({
      kernelName: name,
      backendName: "wasm",
      kernelFunc: (args) => {
        const x = args.inputs.x as tf.TensorInfo;
        return x.dtype === "string" ? original.kernelFunc(args) : kernelFunc(args);
      },
    });
  }
}
