/**
 * What happens when tfjs-webgpu runs out of GPU memory, and how it becomes a BackendError.
 *
 * WebGPU never throws on a failed allocation. A buffer above the device's limits is a
 * validation error and an allocation the GPU cannot hold is an "out-of-memory" error, both
 * delivered later to an error scope or the device's `uncapturederror` event, and the buffer
 * comes back as an invalid object. tfjs-webgpu opens no error scope, so its command buffer
 * then fails to submit and every op queued with it reads back zeros (seen on lavapipe: the sum
 * of a 320 MB tensor read as 0, with nothing printed). The silent wrong answer is the worst
 * outcome, so this file wraps the device's `createBuffer` (tfjs-webgpu's buffer manager makes
 * every buffer through it), like tfjs_memory.ts wraps the wasm heap's malloc:
 *
 * - A buffer above the limits throws {@link GpuMemoryError} before it is made. tfjs binds
 *   every tensor whole as a storage buffer, so one tensor is bounded by
 *   `maxStorageBufferBindingSize` (128 MiB on lavapipe and many GPUs), not `maxBufferSize`.
 *   Nothing invalid reaches the command queue: the op fails, the backend stays usable.
 * - Every other allocation runs inside an "out-of-memory" error scope; the scope's answer
 *   arrives asynchronously, so a failure marks the guard {@link GpuBufferGuard.broken} and the
 *   next op raises it (the work queued with the failed buffer is lost, as in a wasm abort).
 * - A lost device, or any error no scope caught, marks it broken the same way.
 *
 * @module
 */

/** The part of a GPUDevice this file touches (an interface, so tests can pass a fake). */
export interface GuardedDevice {
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer;
  pushErrorScope(filter: GPUErrorFilter): void;
  popErrorScope(): Promise<GPUError | null>;
  lost: Promise<GPUDeviceLostInfo>;
  addEventListener(type: "uncapturederror", listener: (e: GPUUncapturedErrorEvent) => void): void;
}

/** `GPUBufferUsage.STORAGE` (a constant of the spec; the global is absent without WebGPU). */
const STORAGE = 0x80;

/** A GPU allocation that failed or could not succeed; the op adds its name and shapes. */
export class GpuMemoryError extends Error {
  /**
   * `requested`: the buffer's bytes; `limit`: the device limit it broke, or null when the
   * device itself ran out; `held`: bytes of GPU buffers tfjs held at the time.
   */
  constructor(
    readonly requested: number,
    readonly limit: { name: string; bytes: number } | null,
    readonly held: number,
    readonly reason?: string,
  ) {
    super(
      limit
        ? `out of GPU memory: a ${mib(requested)} buffer is above the adapter's largest ` +
          `(${limit.name} ${mib(limit.bytes)})`
        : `out of GPU memory: allocating ${mib(requested)} failed` +
          (reason ? ` (${reason.split("\n")[0].slice(0, 200)})` : ""),
    );
    this.name = "GpuMemoryError";
  }
}

/** "12.3 MiB". */
function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Watches one device's allocations; see the module comment. */
export class GpuBufferGuard {
  /** Set once the device lost work (a failed allocation, a lost device): ops refuse from then. */
  broken: Error | undefined;

  constructor(readonly device: GuardedDevice, readonly heldBytes: () => number) {
    const create = device.createBuffer.bind(device);
    const { maxBufferSize, maxStorageBufferBindingSize } = device.limits;
    device.createBuffer = (descriptor: GPUBufferDescriptor) => {
      const storage = (descriptor.usage & STORAGE) !== 0 &&
        maxStorageBufferBindingSize < maxBufferSize;
      const limit = storage
        ? { name: "maxStorageBufferBindingSize", bytes: maxStorageBufferBindingSize }
        : { name: "maxBufferSize", bytes: maxBufferSize };
      if (descriptor.size > limit.bytes) {
        throw new GpuMemoryError(descriptor.size, limit, heldBytes());
      }
      device.pushErrorScope("out-of-memory");
      const buffer = create(descriptor);
      device.popErrorScope().then((error) => {
        if (error) {
          this.broken ??= new GpuMemoryError(descriptor.size, null, heldBytes(), error.message);
        }
      }, () => {});
      return buffer;
    };
    device.lost.then((info) => {
      this.broken ??= new Error(`the GPU device was lost (${info.reason}: ${info.message})`);
    }, () => {});
    device.addEventListener("uncapturederror", (e) => {
      this.broken ??= new Error(`a GPU command failed: ${e.error.message.split("\n")[0]}`);
    });
  }
}

/**
 * The detail of the BackendError for a failed GPU allocation or a broken device: what was
 * needed, what the GPU held, and what to do.
 *
 * @example
 * ```ts
 * import { GpuMemoryError, gpuFailureDetail } from "./webgpu_memory.ts";
 * const e = new GpuMemoryError(2 ** 28, { name: "maxBufferSize", bytes: 2 ** 27 }, 0);
 * console.log(gpuFailureDetail(e).startsWith("out of GPU memory")); // true
 * ```
 */
export function gpuFailureDetail(e: Error): string {
  const held = e instanceof GpuMemoryError ? ` [${mib(e.held)} of GPU buffers held]` : "";
  const lost = e instanceof GpuMemoryError && e.limit
    ? ""
    : " The work queued on the GPU with it is lost: start a new process.";
  return `${e.message}${held}. Lower the batch size (--batch-size), or run on ` +
    `--backend torch-cpu or --backend tfjs-wasm.${lost}`;
}

const guards = new WeakMap<object, GpuBufferGuard>();

/**
 * The one guard of a tfjs-webgpu kernel backend (its `device`), created on first use;
 * undefined for any other backend.
 *
 * @example
 * ```ts
 * import { gpuGuardOf } from "./webgpu_memory.ts";
 * console.log(gpuGuardOf({})); // undefined: no WebGPU device
 * ```
 */
export function gpuGuardOf(kernelBackend: unknown): GpuBufferGuard | undefined {
  const backend = kernelBackend as {
    device?: GuardedDevice;
    bufferManager?: { numBytesAllocated?: number };
  };
  const device = backend.device;
  if (!device || typeof device.createBuffer !== "function") return undefined;
  let guard = guards.get(device);
  if (!guard) {
    guard = new GpuBufferGuard(device, () => backend.bufferManager?.numBytesAllocated ?? 0);
    guards.set(device, guard);
  }
  return guard;
}
