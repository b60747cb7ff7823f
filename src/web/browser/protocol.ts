/**
 * Messages between the exported page (page.ts) and its sampling worker (worker.ts).
 *
 * @module
 */
import type { BrowserBackendChoice, WasmBinaries } from "./backend.ts";
import type { ModelInfo, SampleRequest } from "./model.ts";

/** Page -> worker. */
export type ToWorker =
  | { type: "init"; backend: BrowserBackendChoice; wasm: WasmBinaries; weights: ArrayBuffer }
  | ({ type: "sample" } & SampleRequest);

/** Worker -> page. */
export type FromWorker =
  | { type: "ready"; backend: string; device: string; notes: string[]; info: ModelInfo }
  | { type: "progress"; done: number; total: number }
  | { type: "images"; images: Float32Array; shape: number[]; seconds: number }
  | { type: "error"; message: string };
