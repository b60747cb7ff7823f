/**
 * The WebGPU adapter, as tfjs-webgpu would get it: found with the web platform's
 * `navigator.gpu` alone (no Deno API), so the browser page probes it the same way.
 *
 * A software adapter (Mesa's lavapipe/llvmpipe, SwiftShader) counts as present for tests but is
 * never selected automatically: it is slower than tfjs-wasm.
 *
 * Why tfjs-webgpu runs in a worker under Deno: the backend contract reads tensors
 * synchronously ({@link Backend.read}, and valueAndGrad's loss value), and tfjs-webgpu's only
 * synchronous read (`readSync`) copies the buffer through an `OffscreenCanvas` 2D context,
 * which Deno does not have; a GPU buffer can otherwise only be mapped with `mapAsync`, whose
 * promise needs the event loop of the thread that owns the device. So under Deno the device and
 * tfjs live in a worker that reads with `mapAsync` while the main thread waits for it
 * (webgpu_backend.ts, webgpu_worker.ts); {@link webGpuSyncReadProblem} tells the two cases
 * apart. In a browser the canvas path exists, and tfjs.ts runs tfjs-webgpu directly.
 *
 * @module
 */

/** What {@link probeWebGpu} found. */
export interface WebGpuAdapterInfo {
  /** e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or "Apple M2". */
  description: string;
  /** The adapter's vendor, as the driver reports it. */
  vendor: string;
  /** A CPU implementation of the API (lavapipe, SwiftShader): never auto-selected. */
  software: boolean;
  /** Largest single buffer, bytes. */
  maxBufferSize: number;
  /** Largest storage-buffer binding, bytes (bounds one tensor in tfjs-webgpu's kernels). */
  maxStorageBufferBindingSize: number;
}

interface AdapterLike {
  info?: { description?: string; vendor?: string; device?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}

/** Names of adapters that are CPU implementations of WebGPU. */
const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|microsoft basic render/i;

/**
 * The default WebGPU adapter, or null when there is none (no `navigator.gpu`, no driver).
 * Never throws.
 *
 * @example
 * ```ts
 * import { probeWebGpu } from "./webgpu.ts";
 * const adapter = await probeWebGpu();
 * console.log(adapter?.description ?? "no WebGPU adapter", adapter?.software);
 * ```
 */
export async function probeWebGpu(): Promise<WebGpuAdapterInfo | null> {
  const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } })?.gpu;
  if (!gpu) return null;
  let adapter: AdapterLike | null;
  try {
    quietVulkanLoader();
    adapter = (await gpu.requestAdapter()) as AdapterLike | null;
  } catch {
    return null;
  }
  if (!adapter) return null;
  const info = adapter.info ?? {};
  const description = info.description || info.device || "unknown adapter";
  const fallback = info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false;
  return {
    description,
    vendor: info.vendor ?? "",
    software: fallback || SOFTWARE.test(description),
    maxBufferSize: adapter.limits.maxBufferSize,
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
  };
}

/**
 * Why tfjs-webgpu cannot meet the synchronous backend contract on this thread, or null when it
 * can (a platform with `OffscreenCanvas`, i.e. a browser). Where not null, createBackend runs
 * it in a worker instead (webgpu_backend.ts).
 *
 * @example
 * ```ts
 * import { webGpuSyncReadProblem } from "./webgpu.ts";
 * console.log(webGpuSyncReadProblem() === null ? "direct" : "in a worker"); // "in a worker" in Deno
 * ```
 */
export function webGpuSyncReadProblem(): string | null {
  // Deno 2.9 defines OffscreenCanvas (for WebGPU canvas contexts) but has no 2D context.
  const Canvas = (globalThis as {
    OffscreenCanvas?: new (w: number, h: number) => { getContext(kind: string): unknown };
  }).OffscreenCanvas;
  try {
    if (Canvas && new Canvas(1, 1).getContext("2d")) return null;
  } catch {
    // no 2D context: fall through
  }
  return "tfjs-webgpu reads tensors synchronously only through an OffscreenCanvas 2D context, " +
    "which this runtime lacks (Deno), and the backend contract's read() is synchronous; " +
    'createBackend("tfjs-webgpu") runs it in a worker thread instead';
}

/**
 * Mesa's Vulkan loader prints "XDG_RUNTIME_DIR is invalid or not set" to stderr once per
 * driver when that variable is missing (servers, containers, CI), on every command that probes
 * the adapter. Where it is unset, point it at a private empty folder first: the drivers only
 * look for display sockets there, which a headless probe does not need. Deno only (a browser
 * page has no environment).
 */
function quietVulkanLoader(): void {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (deno?.build.os !== "linux") return;
  try {
    if (deno.env.get("XDG_RUNTIME_DIR")) return;
    // One folder per user, reused by every run (a fresh temporary one each time would litter).
    const dir = `${deno.env.get("TMPDIR") ?? "/tmp"}/deno-diffusion-xdg-${deno.uid() ?? "user"}`;
    deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    deno.env.set("XDG_RUNTIME_DIR", dir);
  } catch {
    // Without env or write permission the probe still works, only noisier.
  }
}
