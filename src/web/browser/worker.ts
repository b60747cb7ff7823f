/**
 * Entry point of the exported page's Web Worker: creates the backend, opens the weights and
 * samples on request, posting progress after every network evaluation. Sampling is
 * synchronous (the project's sampler), so it runs here to keep the page responsive.
 *
 * @module
 */
import type { Backend } from "../../backend/backend.ts";
import { createBrowserBackend } from "./backend.ts";
import { type ExportedModel, loadExportedModel } from "./model.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
};

let backend: Backend | undefined;
let model: ExportedModel | undefined;

function fail(e: unknown): void {
  scope.postMessage({ type: "error", message: e instanceof Error ? e.message : String(e) });
}

async function init(message: Extract<ToWorker, { type: "init" }>): Promise<void> {
  const chosen = await createBrowserBackend(message.backend, message.wasm);
  backend = chosen.backend;
  model = loadExportedModel(backend, new Uint8Array(message.weights));
  scope.postMessage({
    type: "ready",
    backend: chosen.kind,
    device: backend.device,
    notes: chosen.notes,
    info: model.info,
  });
}

function sample(request: Extract<ToWorker, { type: "sample" }>): void {
  if (!model) throw new Error("the model is not loaded yet");
  const started = performance.now();
  const images = model.sample(
    request,
    (done, total) => scope.postMessage({ type: "progress", done, total }),
  );
  const seconds = (performance.now() - started) / 1000;
  const shape = [request.count, ...model.info.imageShape];
  scope.postMessage({ type: "images", images, shape, seconds }, [images.buffer as ArrayBuffer]);
}

scope.onmessage = (e) => {
  const message = e.data;
  if (message.type === "init") init(message).catch(fail);
  else {
    try {
      sample(message);
    } catch (err) {
      fail(err);
    }
  }
};
