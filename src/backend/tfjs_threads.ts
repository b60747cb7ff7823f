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
import { installWasmKernels } from "./tfjs_wasm_kernels.ts";

/**
 * tfjs-backend-wasm, loaded on first use: importing it registers "wasm" as tfjs's preferred
 * backend, which modules that only run tfjs ops on its default cpu backend must not get.
 */
const wasmModule = () => import("npm:@tensorflow/tfjs-backend-wasm@4.22.0");

/**
 * What the pthread worker needs: the blob URL of emscripten's worker script; `hang` (tests only,
 * from `DENO_DIFFUSION_TFJS_TEST_POOL_HANG=1`) makes it never answer, as a pool thread that
 * cannot start would.
 */
export interface PthreadWorkerData {
  script: string;
  hang?: boolean;
}

/** The pool threads started so far: ended if the threaded build is given up. */
const poolThreads = new Set<NodeWorker>();

/** An emscripten pool thread: a `node:worker_threads` Worker that runs emscripten's script. */
class PthreadWorker extends NodeWorker {
  constructor(script: string | URL) {
    const workerData: PthreadWorkerData = {
      script: String(script),
      hang: envSetting("DENO_DIFFUSION_TFJS_TEST_POOL_HANG") === "1",
    };
    super(new URL("./tfjs_pthread_worker.ts", import.meta.url), { workerData });
    poolThreads.add(this);
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
  const setting = envSetting("DENO_DIFFUSION_TFJS_THREADS");
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

/** Seconds the threaded build may take to start before the single-threaded one is used. */
export const WASM_THREADS_TIMEOUT_DEFAULT_S = 60;

/**
 * Seconds to wait for the threaded build to start: `DENO_DIFFUSION_TFJS_THREADS_TIMEOUT` if set
 * (0: no limit), else {@link WASM_THREADS_TIMEOUT_DEFAULT_S}.
 *
 * @example
 * ```ts
 * import { wasmThreadsTimeoutSeconds } from "./tfjs_threads.ts";
 * console.log(wasmThreadsTimeoutSeconds() >= 0); // true
 * ```
 */
export function wasmThreadsTimeoutSeconds(): number {
  const setting = envSetting("DENO_DIFFUSION_TFJS_THREADS_TIMEOUT");
  if (setting === undefined || setting.trim() === "") return WASM_THREADS_TIMEOUT_DEFAULT_S;
  const seconds = Number(setting.trim());
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new Error(
      `DENO_DIFFUSION_TFJS_THREADS_TIMEOUT must be a number of seconds (0 = no limit), got "${setting}"`,
    );
  }
  return seconds;
}

/** An environment variable, or undefined without --allow-env (the defaults then apply). */
function envSetting(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

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
  first ??= threads >= 2 ? initThreadedOrFallBack(threads) : setWasm();
  await first;
  await setWasm(); // another caller may have switched the engine meanwhile
  return (await wasmModule()).getThreadsCount();
}

async function setWasm(): Promise<void> {
  await wasmModule(); // registers the backend
  installWasmKernels();
  if (!(await tf.setBackend("wasm"))) throw new Error('tf.setBackend("wasm") failed');
}

/**
 * The threaded build, or, when it has not started within {@link wasmThreadsTimeoutSeconds}
 * (a pool thread that never reports ready leaves emscripten waiting forever), the
 * single-threaded build, with one line on stderr saying so. Giving up means: end the pool
 * threads, make tfjs forget the pending "wasm" initialisation (`removeBackend`) and register
 * the same factory again with the multithread flag off, which then builds the plain module.
 */
async function initThreadedOrFallBack(threads: number): Promise<void> {
  const seconds = wasmThreadsTimeoutSeconds();
  if (seconds === 0) return await initThreaded(threads);
  await wasmModule(); // registers the factory that is registered again on a fallback
  const factory = tf.findBackendFactory("wasm");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), seconds * 1000);
  });
  try {
    const outcome = await Promise.race([initThreaded(threads), timedOut]);
    if (outcome !== "timeout") return;
  } finally {
    clearTimeout(timer);
  }
  console.error(
    `tfjs-wasm: the threaded build (${threads} threads) did not start within ${seconds} s ` +
      `(a pool thread never reported ready), so the single-threaded build runs instead. ` +
      `DENO_DIFFUSION_TFJS_THREADS=1 picks the single-threaded build from the start; ` +
      `DENO_DIFFUSION_TFJS_THREADS_TIMEOUT=0 waits for the threaded build without limit.`,
  );
  restoreGlobals();
  for (const thread of poolThreads) await thread.terminate();
  poolThreads.clear();
  tf.removeBackend("wasm");
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  (await wasmModule()).setThreadsCount(1);
  tf.registerBackend("wasm", factory, WASM_PRIORITY);
  await setWasm();
}

/** tfjs-backend-wasm's registration priority (its base.ts), kept when registering again. */
const WASM_PRIORITY = 2;

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
  restoreGlobals = () => {
    restoreGlobals = () => {};
    os.cpus = cpus;
    if (worker) Object.defineProperty(globalThis, "Worker", worker);
    else delete (globalThis as { Worker?: unknown }).Worker;
  };
  try {
    await setWasm();
  } finally {
    restoreGlobals();
  }
}

/** Undoes initThreaded's stand-ins for `Worker` and `os.cpus` (once; also on a timeout). */
let restoreGlobals = () => {};
