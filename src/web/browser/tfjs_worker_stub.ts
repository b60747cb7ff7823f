/**
 * The browser's stand-in for `src/backend/tfjs_worker.ts`, swapped in by the export bundler
 * (src/web/bundle.ts) through an import map. The real module starts a second thread with
 * `node:worker_threads` and shared memory; a web page has neither (SharedArrayBuffer needs
 * cross-origin isolation, which a page opened from `file://` never has), so here no conv worker
 * exists and every convolution runs on the tfjs backend itself. The exports the tfjs backend
 * uses keep their names and values; tests/web/bundle_test.ts checks that they match.
 *
 * @module
 */

import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import { installWasmKernels } from "../../backend/tfjs_wasm_kernels.ts";

/**
 * Starts tfjs's "wasm" backend as tfjs itself picks its build in a browser (see
 * src/backend/tfjs_threads.ts for Deno); returns 1, the threads this stub knows of.
 *
 * @example
 * ```ts ignore
 * import { initWasm } from "./tfjs_worker_stub.ts";
 * await initWasm(1);
 * ```
 */
export async function initWasm(_threads: number): Promise<number> {
  installWasmKernels(); // the same kernels of our own as under Deno
  if (!(await tf.setBackend("wasm"))) throw new Error('tf.setBackend("wasm") failed');
  return 1;
}

/** Always 1: a page has no Node threads. */
export function wasmThreadsWanted(): number {
  return 1;
}

/** Same values as CONV_OP in src/backend/tfjs_worker.ts. */
export const CONV_OP = { forward: 1, inputGrad: 2, weightGrad: 3 } as const;

/** One of {@link CONV_OP}. */
export type ConvOp = typeof CONV_OP[keyof typeof CONV_OP];

/** A job's input as it travels: data of one tensor and its 4-D shape. */
export interface JobInput {
  data: Float32Array;
  shape: readonly number[];
}

/** Never instantiated in the browser; the type keeps the tfjs backend's signatures valid. */
export class ConvWorker {
  /** Why there is no worker. */
  readonly failure: string | undefined = "no conv worker in a browser";
  /** Never usable. */
  usable(): boolean {
    return false;
  }
  /** Never called: {@link currentConvWorker} is always undefined. */
  submit(): void {
    throw new Error("no conv worker in a browser");
  }
  /** Never called: {@link currentConvWorker} is always undefined. */
  collect(): Float32Array {
    throw new Error("no conv worker in a browser");
  }
}

/**
 * Always undefined: browsers get no conv worker.
 *
 * @example
 * ```ts
 * import { acquireConvWorker } from "./tfjs_worker_stub.ts";
 * console.log(acquireConvWorker()); // undefined
 * ```
 */
export function acquireConvWorker(): ConvWorker | undefined {
  return undefined;
}

/** Nothing to release. */
export function releaseConvWorker(): void {}

/** Always undefined. */
export function currentConvWorker(): ConvWorker | undefined {
  return undefined;
}
