/**
 * Loading tfjs-wasm's threaded-SIMD build under Deno, so that its XNNPACK kernels (convs,
 * matmuls) run on more than one core.
 *
 * tfjs 4.22 never picks that build outside a browser, for three reasons, each bridged here:
 *
 * 1. Its `WASM_HAS_MULTITHREAD_SUPPORT` flag answers false whenever `IS_NODE` is true (tfjs
 *    issue 3830), and Deno's npm compatibility looks like Node. The flag is set to true.
 * 2. Emscripten's pthread code, seeing Node, replaces the global `Worker` by
 *    `node:worker_threads`' and starts each of its 8 pool threads as
 *    `new Worker(<blob: URL of a classic script>)`. Neither Deno's web Worker (module scripts
 *    only) nor its Node one runs a classic script that expects `importScripts`. So while tfjs
 *    initialises, the global `Worker` reads as {@link PthreadWorker} (assignments to it are
 *    ignored): a `node:worker_threads` Worker running tfjs_pthread_worker.ts, which reads the
 *    blob and evaluates emscripten's worker script the way a browser worker would.
 * 3. The C++ side (`init_with_threads_count`) caps the thread count at half the logical cores,
 *    assuming two hyper-threads per core, so a 2-vCPU machine gets one thread. While the
 *    module initialises, `os.cpus()` (what emscripten asks under Node) lists every core twice,
 *    so the cap becomes the number of cores.
 *
 * The pool threads are unref'd once loaded, for good, so a program that never disposes its
 * backend still exits (an idle pool thread sleeps in `Atomics.wait`; it holds nothing the main thread needs).
 * XNNPACK splits the output of an operator into tiles across its threads and computes every
 * output element exactly as on one thread, so the results are bit-identical to the
 * single-threaded build (tests/backend/tfjs_threads_test.ts checks it).
 *
 * @module
 */
import os from "node:os";
import { Worker as NodeWorker } from "node:worker_threads";
import * as tf from "npm:@tensorflow/tfjs@4.22.0";

/**
 * tfjs-backend-wasm, loaded on first use: importing it registers "wasm" as tfjs's preferred
 * backend, which modules that only run tfjs ops on its default cpu backend must not get.
 */
const wasmModule = () => import("npm:@tensorflow/tfjs-backend-wasm@4.22.0");

/** What the pthread worker needs: the blob URL of emscripten's worker script. */
export interface PthreadWorkerData {
  script: string;
}

/** An emscripten pool thread: a `node:worker_threads` Worker that runs emscripten's script. */
class PthreadWorker extends NodeWorker {
  constructor(script: string | URL) {
    const workerData: PthreadWorkerData = { script: String(script) };
    super(new URL("./tfjs_pthread_worker.ts", import.meta.url), { workerData });
  }
  /**
   * Emscripten unrefs a thread once it has loaded and refs it while it runs a pthread; the
   * pool's pthreads run for the process's life, so they would keep it alive: never re-ref.
   */
  override ref(): void {}
}

/**
 * Threads wanted for tfjs-wasm: `DENO_DIFFUSION_TFJS_THREADS` if set (0 or 1: the
 * single-threaded build), else {@link WASM_THREADS_DEFAULT}; 0 means the number of cores.
 * Never more than the cores, nor more than 8 (emscripten's pool).
 *
 * @example
 * ```ts
 * import { wasmThreadsWanted } from "./tfjs_threads.ts";
 * console.log(wasmThreadsWanted() >= 1); // true
 * ```
 */
export function wasmThreadsWanted(): number {
  const cores = Math.max(1, navigator.hardwareConcurrency ?? 1);
  let setting: string | undefined;
  try {
    setting = Deno.env.get("DENO_DIFFUSION_TFJS_THREADS");
  } catch {
    setting = undefined; // no --allow-env: the default
  }
  const asked = setting === undefined || setting.trim() === ""
    ? WASM_THREADS_DEFAULT
    : Number(setting.trim());
  if (!Number.isInteger(asked) || asked < 0) {
    throw new Error(
      `DENO_DIFFUSION_TFJS_THREADS must be a whole number (0 = all cores), got "${setting}"`,
    );
  }
  return Math.min(asked === 0 ? cores : asked, cores, 8);
}

/** Threads when the environment does not say: 0, all cores. */
export const WASM_THREADS_DEFAULT = 0;

let first: Promise<void> | undefined;

/**
 * Initialises tfjs's "wasm" backend (once per process; later calls only switch to it) with
 * `threads` XNNPACK threads: the threaded-SIMD build when `threads` >= 2, the plain SIMD build
 * otherwise. Returns the threads it runs with: the first initialisation decides for the
 * process.
 *
 * @example
 * ```ts
 * import { initWasm } from "./tfjs_threads.ts";
 * console.log(await initWasm(1)); // 1, or what the process started with
 * ```
 */
export async function initWasm(threads: number): Promise<number> {
  first ??= threads >= 2 ? initThreaded(threads) : setWasm();
  await first;
  await setWasm(); // another caller may have switched the engine meanwhile
  return (await wasmModule()).getThreadsCount();
}

async function setWasm(): Promise<void> {
  await wasmModule(); // registers the backend
  if (!(await tf.setBackend("wasm"))) throw new Error('tf.setBackend("wasm") failed');
}

/** The first initialisation with the threaded build; see the module comment. */
async function initThreaded(threads: number): Promise<void> {
  const tfWasm = await wasmModule();
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  tfWasm.setThreadsCount(threads);
  const worker = Object.getOwnPropertyDescriptor(globalThis, "Worker");
  const cpus = os.cpus;
  Object.defineProperty(globalThis, "Worker", {
    configurable: true,
    get: () => PthreadWorker,
    set: () => {}, // emscripten's `globalThis.Worker = require("worker_threads").Worker`
  });
  os.cpus = () => [...cpus(), ...cpus()];
  try {
    await setWasm();
  } finally {
    os.cpus = cpus;
    if (worker) Object.defineProperty(globalThis, "Worker", worker);
    else delete (globalThis as { Worker?: unknown }).Worker;
  }
}
