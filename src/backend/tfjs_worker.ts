/**
 * A second tfjs-wasm instance in a worker thread that computes one half of a large convolution
 * while the main thread computes the other half.
 *
 * It serves tfjs-wasm's single-threaded build (`DENO_DIFFUSION_TFJS_THREADS=1`), where a conv
 * layer would use one core of two; the threaded build (tfjs_threads.ts, the default) spreads
 * every XNNPACK kernel over all cores and needs no conv worker. Ops are synchronous, so the hand-off is too: the main thread copies
 * the worker's half of the batch into a SharedArrayBuffer, wakes the worker (`Atomics.notify`),
 * computes its own half, then blocks in `Atomics.wait` until the worker has written its result
 * into the same buffer. No messages are exchanged: the worker sleeps in `Atomics.wait` too, so
 * neither side depends on the other's event loop. The worker runs the very same kernel code
 * (tfjs_conv.ts), so per sample the numbers are identical to a single-thread run.
 *
 * The worker starts lazily, at the first convolution large enough to split, and that
 * convolution still runs on one thread while the worker loads (~0.6 s): small models and the
 * test suite never pay for a second tfjs. One worker serves the whole process; every tfjs-wasm
 * backend holds a reference ({@link acquireConvWorker}) and the last {@link releaseConvWorker}
 * terminates it. `DENO_DIFFUSION_TFJS_WORKERS=0` turns it off, `=1` on; the default is
 * {@link CONV_WORKER_DEFAULT}. It is a `node:worker_threads` Worker because that one can be
 * unref'd: a program that ends without disposing its backend still exits (a web Worker would
 * keep it alive forever).
 *
 * Protocol (one job at a time): a control buffer holds an Int32Array header (slots in
 * {@link SLOT}) whose first word is the state ({@link STATE}); a growable data buffer holds
 * `[a | b | out]` as float32, reused and grown in place (never shrunk) as jobs need more room.
 * Both buffers are the worker's workerData.
 *
 * @module
 */

import { Worker } from "node:worker_threads";

// The other Node-only part of tfjs-wasm: its threaded build (one import seam for the browser's
// stub, src/web/browser/tfjs_worker_stub.ts).
export { initWasm, wasmThreadsWanted } from "./tfjs_threads.ts";

/** Whether a tfjs-wasm backend uses the conv worker when the environment does not say. */
export const CONV_WORKER_DEFAULT = true;

/** Jobs the worker runs; see `convJob` in tfjs_conv.ts for their meaning. */
export const CONV_OP = {
  /** a = x [n, H, W, Cin], b = w [Cout, Cin, k, k] -> y [n, Ho, Wo, Cout]. */
  forward: 1,
  /** a = dy [n, Ho, Wo, Cout], b = w [Cout, Cin, k, k] -> dx [n, H, W, Cin]. */
  inputGrad: 2,
  /** a = x [n, H, W, Cin], b = dy [n, Ho, Wo, Cout] -> partial dw [Cout, Cin, k, k]. */
  weightGrad: 3,
} as const;

/** One of {@link CONV_OP}. */
export type ConvOp = typeof CONV_OP[keyof typeof CONV_OP];

/** Values of the state word. */
export const STATE = { starting: 0, idle: 1, request: 2, done: 3, failed: 4, stop: 5 } as const;

/** Header slots (Int32). Shapes are 4 ints each; offsets count float32 elements. */
export const SLOT = {
  state: 0,
  op: 1,
  stride: 2,
  pad: 3,
  aShape: 4,
  bShape: 8,
  outShape: 12,
  aOffset: 16,
  bOffset: 17,
  outOffset: 18,
  errorBytes: 19,
} as const;

/** Where the UTF-8 error text of a failed worker starts in the control buffer, and its room. */
export const ERROR_TEXT_AT = 256;
const CONTROL_BYTES = 1024;

/** A job's input as it travels: data of one tensor and its 4-D shape. */
export interface JobInput {
  data: Float32Array;
  shape: readonly number[];
}

/** The worker's workerData: the header and the (growable) data buffer. */
export interface ConvWorkerData {
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

/** Most bytes of one job's `[a | b | out]`; a larger job runs unsplit on the main thread. */
export const MAX_JOB_BYTES = 2 ** 30;

/** Longest wait for one job before the worker is given up (the half then runs here). */
const JOB_TIMEOUT_MS = 120_000;

/**
 * The main thread's end of the conv worker.
 *
 * @example
 * ```ts
 * import { acquireConvWorker, releaseConvWorker } from "./tfjs_worker.ts";
 * const worker = acquireConvWorker(); // undefined when off or on one core
 * // `await worker.ready()` would wait for the thread to load tfjs: seconds, so not done here.
 * console.log(worker?.usable() ?? false); // false until the thread has loaded
 * if (worker) releaseConvWorker();
 * ```
 */
export class ConvWorker {
  /** Jobs the worker completed, for tests and benchmarks. */
  jobsDone = 0;
  #worker: Worker | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly #control = new Int32Array(new SharedArrayBuffer(CONTROL_BYTES));
  readonly #dataBuffer = new SharedArrayBuffer(0, { maxByteLength: MAX_JOB_BYTES });
  /** Tracks the buffer's length as it grows. */
  readonly #data = new Float32Array(this.#dataBuffer);
  #failure: string | undefined;
  #pending = false;

  /** Resolves once the worker's thread has ended (at once if it never started). */
  get exited(): Promise<void> {
    return this.#exited;
  }

  /** Why the worker stopped, or undefined while it is fine. */
  get failure(): string | undefined {
    return this.#failure;
  }

  /**
   * True once the worker can take a job. The first call starts it; until it has loaded, false
   * (the caller computes everything itself meanwhile).
   */
  usable(): boolean {
    if (this.#failure !== undefined) return false;
    if (!this.#worker) {
      try {
        this.#start();
      } catch (e) {
        this.#fail(`cannot start: ${e instanceof Error ? e.message : String(e)}`);
        return false;
      }
    }
    const state = Atomics.load(this.#control, SLOT.state);
    if (state === STATE.failed) this.#fail(this.#workerError());
    return state === STATE.idle;
  }

  /** Starts the worker if needed and resolves once it is usable (false if it failed). */
  async ready(timeoutMs = 30_000): Promise<boolean> {
    const start = performance.now();
    while (!this.usable() && this.#failure === undefined) {
      if (performance.now() - start > timeoutMs) return false;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return this.#failure === undefined;
  }

  /**
   * Hands a job to the worker; {@link collect} waits for its result. The inputs are copied, so
   * the caller may reuse them at once. Only call when {@link usable}; throws a RangeError
   * (before touching the worker) when the job needs more than {@link MAX_JOB_BYTES}.
   */
  submit(op: ConvOp, a: JobInput, b: JobInput, stride: number, pad: number, outShape: number[]) {
    const h = this.#control;
    const [aLen, bLen] = [a.data.length, b.data.length];
    const outLen = outShape.reduce((x, y) => x * y, 1);
    const floats = aLen + bLen + outLen;
    if (4 * floats > MAX_JOB_BYTES) throw new RangeError(`a conv job of ${4 * floats} bytes`);
    if (4 * floats > this.#dataBuffer.byteLength) {
      // Headroom, so that slightly larger shapes reuse the buffer.
      this.#dataBuffer.grow(Math.min(MAX_JOB_BYTES, 4 * Math.ceil(floats * 1.25)));
    }
    this.#data.set(a.data, 0);
    this.#data.set(b.data, aLen);
    h.set([op, stride, pad], SLOT.op);
    h.set(a.shape, SLOT.aShape);
    h.set(b.shape, SLOT.bShape);
    h.set(outShape, SLOT.outShape);
    h.set([0, aLen, aLen + bLen], SLOT.aOffset);
    Atomics.store(h, SLOT.state, STATE.request);
    Atomics.notify(h, SLOT.state);
    this.#pending = true;
  }

  /**
   * Blocks until the submitted job is done and returns a view of its result (valid until the
   * next submit). Throws when the worker failed or timed out; it is then shut down for good.
   */
  collect(): Float32Array {
    if (!this.#pending) throw new Error("conv worker: collect() without a submitted job");
    this.#pending = false;
    const h = this.#control;
    const deadline = performance.now() + JOB_TIMEOUT_MS;
    let state: number = Atomics.load(h, SLOT.state);
    while (state === STATE.request && performance.now() < deadline) {
      Atomics.wait(h, SLOT.state, STATE.request, deadline - performance.now());
      state = Atomics.load(h, SLOT.state);
    }
    if (state !== STATE.done) {
      this.#fail(state === STATE.failed ? this.#workerError() : "a job timed out");
      throw new Error(`conv worker: ${this.#failure}`);
    }
    Atomics.store(h, SLOT.state, STATE.idle);
    this.jobsDone++;
    const outLen = [0, 1, 2, 3].reduce((n, i) => n * h[SLOT.outShape + i], 1);
    const at = h[SLOT.outOffset];
    return this.#data.subarray(at, at + outLen);
  }

  /** Stops the worker (idempotent); later calls of {@link usable} return false. */
  terminate(): void {
    this.#stopWorker();
    this.#failure ??= "terminated";
  }

  #start(): void {
    const workerData: ConvWorkerData = {
      control: this.#control.buffer as SharedArrayBuffer,
      data: this.#dataBuffer,
    };
    const worker = new Worker(new URL("./tfjs_conv_worker.ts", import.meta.url), { workerData });
    // Listening stops an uncaught error in the worker from ending the whole process.
    worker.on("error", (e: unknown) => {
      this.#fail(`worker error: ${e instanceof Error ? e.message : String(e)}`);
    });
    this.#exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    worker.unref();
    this.#worker = worker;
  }

  #stopWorker(): void {
    if (!this.#worker) return;
    // Let a sleeping worker leave its loop, and end it even if it is busy.
    Atomics.store(this.#control, SLOT.state, STATE.stop);
    Atomics.notify(this.#control, SLOT.state);
    void this.#worker.terminate();
    this.#worker = undefined;
  }

  #workerError(): string {
    const length = this.#control[SLOT.errorBytes];
    const bytes = new Uint8Array(this.#control.buffer, ERROR_TEXT_AT, length).slice();
    return new TextDecoder().decode(bytes);
  }

  #fail(reason: string): void {
    this.#failure ??= reason;
    this.#stopWorker();
  }
}

let shared: ConvWorker | undefined;
let holders = 0;

/**
 * Whether the conv worker is wanted here: `DENO_DIFFUSION_TFJS_WORKERS` (0 or 1) if set, else
 * {@link CONV_WORKER_DEFAULT}; never with fewer than two cores.
 */
export function convWorkerWanted(): boolean {
  if ((navigator.hardwareConcurrency ?? 1) < 2) return false;
  let setting: string | undefined;
  try {
    setting = Deno.env.get("DENO_DIFFUSION_TFJS_WORKERS");
  } catch {
    setting = undefined; // no --allow-env: the default
  }
  if (setting === undefined || setting.trim() === "") return CONV_WORKER_DEFAULT;
  return setting.trim() !== "0";
}

/**
 * Takes a reference to the process's conv worker (created, not yet started, on the first
 * call), or returns undefined when it is not `wanted` (default: {@link convWorkerWanted}) or
 * there is one core. Pair every
 * call that returned a worker with one {@link releaseConvWorker}.
 *
 * @example
 * ```ts
 * import { acquireConvWorker, releaseConvWorker } from "./tfjs_worker.ts";
 * const worker = acquireConvWorker();
 * if (worker) releaseConvWorker();
 * ```
 */
export function acquireConvWorker(wanted: boolean = convWorkerWanted()): ConvWorker | undefined {
  if (!wanted || (navigator.hardwareConcurrency ?? 1) < 2) return undefined;
  if (!shared || (shared.failure !== undefined && holders === 0)) shared = new ConvWorker();
  holders++;
  return shared;
}

/** Drops one reference taken by {@link acquireConvWorker}; the last one stops the worker. */
export function releaseConvWorker(): void {
  if (holders === 0) return;
  holders--;
  if (holders === 0 && shared) {
    shared.terminate();
    shared = undefined;
  }
}

/** The process's conv worker while some backend holds it, else undefined. */
export function currentConvWorker(): ConvWorker | undefined {
  return holders > 0 ? shared : undefined;
}
