/**
 * The worker side of the conv worker (see tfjs_worker.ts): its own tfjs-wasm instance that
 * runs one convolution job at a time from shared buffers, with the same kernel code as the
 * main thread (`convJob` in tfjs_conv.ts). Once tfjs has loaded, it sleeps in
 * `Atomics.wait` between jobs and never returns to its event loop. Imported anywhere but in
 * the worker thread that tfjs_worker.ts starts, it does nothing.
 *
 * @module
 */
import { isMainThread, workerData } from "node:worker_threads";
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
// A bare side-effect import registers the "wasm" kernel backend (see tfjs.ts).
import "npm:@tensorflow/tfjs-backend-wasm@4.22.0";
import { convJob, wasmHeapView } from "./tfjs_conv.ts";
import { installWasmKernels } from "./tfjs_wasm_kernels.ts";
import { type ConvOp, type ConvWorkerData, ERROR_TEXT_AT, SLOT, STATE } from "./tfjs_worker.ts";

/** Publishes a final state (idle, done or failed) and wakes the main thread. */
function finish(control: Int32Array, state: number, error?: string): void {
  if (error !== undefined) {
    const room = new Uint8Array(control.buffer, ERROR_TEXT_AT, control.byteLength - ERROR_TEXT_AT);
    control[SLOT.errorBytes] = new TextEncoder().encodeInto(error, room).written;
  }
  Atomics.store(control, SLOT.state, state);
  Atomics.notify(control, SLOT.state);
}

/** Runs the job described by the header on `[a | b | out]` in `data`, then reports. */
function runJob(control: Int32Array, data: Float32Array): void {
  const shapeAt = (slot: number) => [0, 1, 2, 3].map((i) => control[slot + i]);
  const size = (shape: number[]) => shape.reduce((x, y) => x * y, 1);
  try {
    const [aShape, bShape, outShape] = [SLOT.aShape, SLOT.bShape, SLOT.outShape].map(shapeAt);
    const [aAt, bAt, outAt] = [
      control[SLOT.aOffset],
      control[SLOT.bOffset],
      control[SLOT.outOffset],
    ];
    const result = tf.tidy(() => {
      const a = tf.tensor(data.subarray(aAt, aAt + size(aShape)), aShape);
      const b = tf.tensor(data.subarray(bAt, bAt + size(bShape)), bShape);
      const [op, stride, pad] = [
        control[SLOT.op] as ConvOp,
        control[SLOT.stride],
        control[SLOT.pad],
      ];
      return convJob(op, a, b, stride, pad, outShape);
    });
    try {
      if (result.size !== size(outShape)) {
        throw new Error(`result has shape [${result.shape}], expected [${outShape}]`);
      }
      data.set(wasmHeapView(result, 0, result.size) ?? (result.dataSync() as Float32Array), outAt);
    } finally {
      result.dispose();
    }
    finish(control, STATE.done);
  } catch (e) {
    finish(control, STATE.failed, e instanceof Error ? e.message : String(e));
  }
}

/** Loads tfjs-wasm, says so, then serves jobs until told to stop (or a job failed). */
async function serve({ control: controlBuffer, data: dataBuffer }: ConvWorkerData) {
  const control = new Int32Array(controlBuffer);
  const data = new Float32Array(dataBuffer); // tracks the growable buffer's length
  tf.enableProdMode();
  try {
    installWasmKernels();
    if (!(await tf.setBackend("wasm")) || tf.getBackend() !== "wasm") {
      return finish(control, STATE.failed, 'tf.setBackend("wasm") failed in the worker');
    }
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return finish(control, STATE.failed, `tfjs-wasm did not load in the worker: ${why}`);
  }
  finish(control, STATE.idle);
  for (;;) {
    const state = Atomics.load(control, SLOT.state);
    if (state === STATE.stop || state === STATE.failed) return;
    if (state === STATE.request) runJob(control, data);
    else Atomics.wait(control, SLOT.state, state); // until the main thread changes the state
  }
}

if (!isMainThread && workerData?.control instanceof SharedArrayBuffer) {
  await serve(workerData as ConvWorkerData);
}
