/**
 * What tfjs-wasm's heap holds, and what happens when it is full.
 *
 * The wasm module's memory grows on demand up to 4 GiB (wasm32's address space; the build's
 * `getHeapMax()` is 4 GiB - 64 KiB). When a tensor allocation does not fit, emscripten's malloc
 * returns 0, and tfjs writes the tensor at address 0 anyway: the next kernel reads garbage or
 * faults with "memory access out of bounds"; an allocation inside XNNPACK ends in `Aborted()`.
 * Either way the module is dead afterwards. So this file wraps the module's `_malloc`/`_free`
 * (every tensor buffer goes through them) to count the bytes of tensor data on the heap, record
 * their peak for {@link HeapMeter.peak} (the backend's `peakBytes`), and turn a failed
 * allocation into an error before anything is written at address 0.
 *
 * tfjs's own `tf.memory().numBytes` is no help here: it adds a tensor's size once per tensor
 * handle, so reshapes and layout views of one buffer count several times (measured: 3-4x the
 * heap actually used by a U-Net training step).
 *
 * @module
 */

/** wasm32 heap ceiling of the tfjs-wasm build (emscripten `getHeapMax()`). */
export const WASM_HEAP_MAX = 4 * 2 ** 30 - 2 ** 16;

/**
 * Bytes of tensor data one call may hold on the wasm heap: the ceiling less 1 GiB left for
 * XNNPACK's packed weights and scratch buffers, the allocator's fragmentation and the model's
 * variables' growth. Measured with unet-2xud-half: a step at batch 24 (tensor peak 2.6 GiB)
 * runs in a 3.3 GiB heap; batch 32 (tensor peak ~3.5 GiB) aborts.
 */
export const WASM_TENSOR_BUDGET = 3 * 2 ** 30;

/** The part of the emscripten module this file touches. */
interface WasmModule {
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  HEAPU8: Uint8Array;
}

/** Raised by the wrapped malloc when the heap cannot grow: a message, no shapes (the op adds them). */
export class WasmHeapFullError extends Error {
  constructor(readonly requested: number, readonly live: number) {
    super(
      `out of wasm memory: a ${mib(requested)} tensor did not fit beside ${mib(live)} of live ` +
        `tensors (tfjs-wasm addresses at most 4 GiB)`,
    );
    this.name = "WasmHeapFullError";
  }
}

/** "12.3 MiB". */
export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Counts tensor bytes on one wasm module's heap; see the module comment. */
export class HeapMeter {
  #sizes = new Map<number, number>();
  /** Bytes of tensor data live now. */
  live = 0;
  #peak = 0;
  /** Set once an allocation failed: the module may hold garbage from then on. */
  broken: WasmHeapFullError | undefined;

  constructor(readonly module: WasmModule) {
    // Emscripten exports start as stubs that replace themselves with the real function on
    // their first call, which would also replace a wrapper installed before it: call once.
    module._free(module._malloc(16));
    const malloc = module._malloc.bind(module);
    const free = module._free.bind(module);
    module._malloc = (bytes: number) => {
      const ptr = malloc(bytes) >>> 0;
      if (ptr === 0 && bytes > 0) {
        this.broken = new WasmHeapFullError(bytes, this.live);
        throw this.broken;
      }
      this.#sizes.set(ptr, bytes);
      this.live += bytes;
      if (this.live > this.#peak) this.#peak = this.live;
      return ptr;
    };
    module._free = (ptr: number) => {
      const bytes = this.#sizes.get(ptr >>> 0);
      if (bytes !== undefined) {
        this.#sizes.delete(ptr >>> 0);
        this.live -= bytes;
      }
      free(ptr);
    };
  }

  /** Bytes the heap has grown to (never shrinks). */
  get heapBytes(): number {
    return this.module.HEAPU8.buffer.byteLength;
  }

  /** Runs `fn` and returns the most tensor bytes live during it above those live before. */
  peak(fn: () => void): number {
    const base = this.live;
    const outer = this.#peak;
    this.#peak = base;
    try {
      fn();
      return this.#peak - base;
    } finally {
      this.#peak = Math.max(outer, this.#peak);
    }
  }
}

const meters = new WeakMap<object, HeapMeter>();

/** The one meter of a tfjs-wasm kernel backend (its `wasm` module), created on first use. */
export function heapMeterOf(kernelBackend: unknown): HeapMeter | undefined {
  const module = (kernelBackend as { wasm?: WasmModule }).wasm;
  if (!module || typeof module._malloc !== "function") return undefined;
  let meter = meters.get(module);
  if (!meter) {
    meter = new HeapMeter(module);
    meters.set(module, meter);
  }
  return meter;
}

/** Whether an error thrown by a wasm kernel means the module ran out of memory or faulted. */
export function isWasmFault(e: unknown): boolean {
  if (e instanceof WasmHeapFullError) return true;
  const text = e instanceof Error ? e.message : String(e);
  return /Aborted\(|memory access out of bounds|out of memory|Cannot enlarge memory/i.test(text);
}

/**
 * The detail of the BackendError for a wasm fault: what was needed, the ceiling and what to do.
 */
export function wasmFaultDetail(e: unknown, meter: HeapMeter | undefined): string {
  const cause = e instanceof Error ? e.message.split("\n")[0] : String(e);
  const held = meter
    ? `${mib(meter.live)} of tensors live, heap at ${mib(meter.heapBytes)}`
    : "heap size unknown";
  return `${cause.slice(0, 200)} [${held}; tfjs-wasm's ceiling is 4 GiB]. ` +
    `This call needs more memory than tfjs-wasm can address: lower the batch size ` +
    `(--batch-size, or the --sample-batch/--fid-batch of inference), or use torch-cpu. ` +
    `The wasm module may be corrupt now: start a new process.`;
}
