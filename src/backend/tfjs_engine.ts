/**
 * The tfjs backend's engine plumbing. tfjs has a single global engine: each op switches it to
 * this instance's kernel backend, checks that its handles are this instance's and alive, runs
 * under `tf.tidy` and wraps the result with its layout (NCHW or channels-last, see
 * tfjs_tensor.ts), naming the op in any error and explaining wasm faults (tfjs_memory.ts) and
 * failed GPU allocations (webgpu_memory.ts). Also
 * tensor creation and reading, scopes, memory counts and disposal.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import { type ConvWorker, releaseConvWorker } from "./tfjs_worker.ts";
import {
  type BackendCapabilities,
  BackendError,
  type DType,
  type Keepable,
  type Tensor,
} from "./backend.ts";
import type { Tf } from "./tfjs_kernels.ts";
import { collectTensors, errorText, nchw, type Out, TfjsTensor } from "./tfjs_tensor.ts";
import * as V from "./validate.ts";
import type { WebGpuAdapterInfo } from "./webgpu.ts";
import { type HeapMeter, isWasmFault, WASM_TENSOR_BUDGET, wasmFaultDetail } from "./tfjs_memory.ts";
import { type GpuBufferGuard, gpuFailureDetail, GpuMemoryError } from "./webgpu_memory.ts";

/** Which tfjs kernel backend an instance runs on ("webgl" only in browsers: src/web/browser). */
export type TfjsKind = "wasm" | "cpu" | "webgpu" | "webgl";

/**
 * What every tfjs backend instance is built on: its handles, the engine switch and the op
 * runner; creation, reading, scopes and disposal. The op groups extend it (tfjs_ops.ts,
 * tfjs_nn.ts, then tfjs.ts) through its protected helpers; the instance's state stays private.
 */
export abstract class TfjsEngine {
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

  /** XNNPACK threads of tfjs-wasm (1: the single-threaded build). */
  readonly #threads: number;

  constructor(kind: TfjsKind, convWorker?: ConvWorker, heap?: HeapMeter, threads = 1) {
    this.#kind = kind;
    this.#threads = threads;
    this.#heap = heap;
    if (heap) this.capabilities = { ...this.capabilities, memoryLimitBytes: WASM_TENSOR_BUDGET };
    this.name = `tfjs-${kind}`;
    this.#convWorker = convWorker;
  }

  /** The WebGPU adapter (tfjs-webgpu only). */
  adapter: WebGpuAdapterInfo | null = null;

  /** The device's allocation guard (tfjs-webgpu only): out-of-memory errors (webgpu_memory.ts). */
  gpuGuard: GpuBufferGuard | undefined;

  get device(): string {
    if (this.#kind === "cpu") return "cpu (pure JavaScript)";
    if (this.#kind === "webgpu") {
      const a = this.adapter;
      return `webgpu (${a?.description ?? "unknown adapter"}${a?.software ? ", software" : ""})`;
    }
    if (this.#kind === "webgl") return `webgl ${tf.env().getNumber("WEBGL_VERSION")}`;
    const simd = tf.env().getBool("WASM_HAS_SIMD_SUPPORT") ? "SIMD" : "no SIMD";
    const worker = this.#convWorker;
    if (this.#threads > 1) return `wasm (${simd}, ${this.#threads} threads)`;
    if (!worker) return `wasm (${simd}, 1 thread)`;
    if (worker.failure !== undefined && !this.#disposed) {
      return `wasm (${simd}, 1 thread; conv worker off: ${worker.failure})`;
    }
    return `wasm (${simd}, 1 thread + 1 worker for large convs)`;
  }

  // ---- plumbing (used by the op groups) ----

  protected activate(op: string): void {
    if (this.#disposed) throw new BackendError(op, [], `backend ${this.name} was disposed`);
    if (this.#heap?.broken) {
      throw new BackendError(op, [], wasmFaultDetail(this.#heap.broken, this.#heap));
    }
    if (this.gpuGuard?.broken) {
      throw new BackendError(op, [], gpuFailureDetail(this.gpuGuard.broken));
    }
    if (tf.getBackend() !== this.#kind) {
      // The backend is initialised, so setBackend switches synchronously; the promise it
      // returns carries nothing more.
      void tf.setBackend(this.#kind);
    }
  }

  /** The handle behind `t`, checked to be this instance's and alive. */
  protected handle(op: string, t: Tensor, all: readonly Tensor[]): TfjsTensor {
    const shapes = all.map((x) => x.shape);
    if (!(t instanceof TfjsTensor) || t.owner !== this) {
      throw new BackendError(op, shapes, `got a tensor of backend ${t.backend}, not ${this.name}`);
    }
    if (t.tf.isDisposed) throw new BackendError(op, shapes, "a tensor was already disposed");
    return t;
  }

  protected wrap(t: Tf, channelsLast = false): TfjsTensor {
    this.#owned.add(t);
    if (this.#owned.size >= this.#pruneAt) {
      for (const x of this.#owned) if (x.isDisposed) this.#owned.delete(x);
      this.#pruneAt = Math.max(4096, 2 * this.#owned.size);
    }
    return new TfjsTensor(this, t, channelsLast && t.rank === 4);
  }

  /** Runs one op: checks the handles, switches the engine, frees temporaries, names errors. */
  protected run(op: string, inputs: readonly Tensor[], fn: (...hs: TfjsTensor[]) => Out): Tensor {
    const hs = inputs.map((t) => this.handle(op, t, inputs));
    this.activate(op);
    try {
      let channelsLast = false;
      const t = tf.tidy(() => {
        const out = fn(...hs);
        channelsLast = out.channelsLast;
        return out.t;
      });
      return this.wrap(t, channelsLast);
    } catch (e) {
      if (e instanceof BackendError) throw e;
      throw new BackendError(op, inputs.map((t) => t.shape), this.failure(e));
    }
  }

  /** The detail of a kernel's failure: a wasm fault says what memory it needed and what to do. */
  protected failure(e: unknown): string {
    if (e instanceof GpuMemoryError) return gpuFailureDetail(e);
    return this.#kind === "wasm" && isWasmFault(e) ? wasmFaultDetail(e, this.#heap) : errorText(e);
  }

  /** An op on NCHW tensors with an NCHW result. */
  protected op(op: string, inputs: readonly Tensor[], fn: (...xs: Tf[]) => Tf): Tensor {
    return this.run(op, inputs, (...hs) => ({ t: fn(...hs.map(nchw)), channelsLast: false }));
  }

  protected check(op: string, inputs: readonly Tensor[], ok: boolean, detail: string): void {
    if (!ok) throw new BackendError(op, inputs.map((t) => t.shape), detail);
  }

  // ---- creation and reading ----

  tensor(data: Float32Array | Int32Array | number[], shape: readonly number[], dtype?: DType) {
    const type: DType = dtype ?? (data instanceof Int32Array ? "int32" : "float32");
    V.checkTensorData(data.length, shape, type);
    // Always copy: the cpu kernels would otherwise keep the caller's array as storage.
    const copy = type === "int32" ? Int32Array.from(data) : Float32Array.from(data);
    return this.op("tensor", [], () => tf.tensor(copy, [...shape], type));
  }

  zeros(shape: readonly number[]): Tensor {
    V.checkShape("zeros", shape);
    return this.op("zeros", [], () => tf.zeros([...shape]));
  }

  full(shape: readonly number[], value: number): Tensor {
    V.checkShape("full", shape);
    return this.op("full", [], () => tf.fill([...shape], value));
  }

  read(t: Tensor): Float32Array | Int32Array {
    const h = this.handle("read", t, [t]);
    this.activate("read");
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
    return this.op("variable", [init], (x) => tf.variable(x, trainable));
  }

  assign(variable: Tensor, value: Tensor): void {
    V.checkAssign(variable, value);
    const v = this.handle("assign", variable, [variable, value]).tf;
    const x = this.handle("assign", value, [variable, value]);
    const ok = v instanceof tf.Variable;
    this.check("assign", [variable, value], ok, "target is not a variable");
    this.activate("assign");
    tf.tidy(() => (v as tf.Variable).assign(nchw(x)));
  }

  // ---- memory ----

  scope<T extends Keepable>(fn: () => T): T {
    this.activate("scope");
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
