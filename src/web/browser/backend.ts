/**
 * Picks the tensor backend of the exported page: the project's own tfjs backend
 * (src/backend/tfjs.ts, the same kernels Deno runs) on tfjs's WebGL or wasm kernel backend.
 *
 * WebGPU is detected and reported but not used: the project's {@link Backend} contract reads
 * results synchronously (`read`, and `gather`'s index check), and tfjs-webgpu cannot download a
 * GPU tensor synchronously ("WebGPU readSync is only available for CPU-resident tensors").
 * Running on WebGPU needs an asynchronous read in the contract and a sampler that awaits it.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import type { Backend } from "../../backend/backend.ts";
import { createTfjsBackend } from "../../backend/tfjs.ts";

/** What the page may ask for. */
export type BrowserBackendChoice = "auto" | "webgl" | "wasm";

/** The two wasm builds the page ships (tfjs picks SIMD when the browser has it). */
export interface WasmBinaries {
  /** tfjs-backend-wasm-simd.wasm */
  simd: ArrayBuffer;
  /** tfjs-backend-wasm.wasm */
  plain: ArrayBuffer;
}

/** A backend and what the page should say about the choice. */
export interface BrowserBackend {
  backend: Backend;
  /** "webgl" or "wasm". */
  kind: "webgl" | "wasm";
  /** One line per backend tried or skipped, e.g. "webgpu: present, not used: ...". */
  notes: string[];
}

/**
 * Whether this browser offers a WebGPU adapter (for the page's note only).
 *
 * @example
 * ```ts ignore
 * console.log(await webgpuStatus()); // "no navigator.gpu" in most headless browsers
 * ```
 */
export async function webgpuStatus(): Promise<string> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return "not offered by this browser (no navigator.gpu)";
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return "navigator.gpu present but no adapter";
  } catch (e) {
    return `adapter request failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  return "available, not used: the sampler reads tensors synchronously, which tfjs-webgpu " +
    "cannot do; using WebGL";
}

/**
 * Creates the backend: for "auto" WebGL when it initialises, else wasm.
 *
 * @example
 * ```ts ignore
 * const { backend, kind, notes } = await createBrowserBackend("auto", wasm);
 * console.log(kind, backend.device, notes.join("; "));
 * ```
 */
export async function createBrowserBackend(
  choice: BrowserBackendChoice,
  wasm: WasmBinaries,
): Promise<BrowserBackend> {
  const notes = [`webgpu: ${await webgpuStatus()}`];
  if (choice === "auto" || choice === "webgl") {
    try {
      return { backend: await createTfjsBackend("webgl"), kind: "webgl", notes };
    } catch (e) {
      notes.push(`webgl: ${e instanceof Error ? e.message : String(e)}`);
      if (choice === "webgl") throw new Error(notes.join("; "));
    }
  }
  // The wasm binaries travel inside the page's script, so a page opened from file:// (where
  // fetching a neighbouring file is forbidden) still gets them: as blob URLs.
  const url = (bytes: ArrayBuffer) =>
    URL.createObjectURL(new Blob([bytes], { type: "application/wasm" }));
  const simd = url(wasm.simd);
  setWasmPaths({
    "tfjs-backend-wasm.wasm": url(wasm.plain),
    "tfjs-backend-wasm-simd.wasm": simd,
    // Never loaded: threads need cross-origin isolation, which tfjs checks for first.
    "tfjs-backend-wasm-threaded-simd.wasm": simd,
  });
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  return { backend: await createTfjsBackend("wasm"), kind: "wasm", notes };
}
