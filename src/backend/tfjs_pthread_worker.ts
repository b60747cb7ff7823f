/**
 * One pool thread of tfjs-wasm's threaded build (see tfjs_threads.ts): runs emscripten's
 * classic worker script, written for a browser worker, inside a `node:worker_threads` Worker.
 *
 * The script is evaluated in a function whose parameters stand in for the browser globals it
 * uses: `self` (an object receiving its `onmessage`, `startWorker`, ...), `postMessage` and
 * `importScripts`, and `process` and `require` as undefined, so that emscripten takes its
 * browser-worker path rather than its Node one (whose `require` does not exist in a module).
 * Messages from the main thread arrive on `parentPort` and go to `self.onmessage` in order.
 * The first ("load") carries the module factory as a Blob, which the browser would read
 * synchronously with `importScripts`; here it is read (asynchronously) before that message is
 * handed on, and `importScripts` then evaluates the text in the same stand-in scope.
 * Imported anywhere but in a thread that tfjs_threads.ts started, it does nothing.
 *
 * @module
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import type { PthreadWorkerData } from "./tfjs_threads.ts";

/** The browser globals the worker script and the module factory use. */
const GLOBALS = ["self", "postMessage", "importScripts", "process", "require", "startWorker"];

function serve(port: NonNullable<typeof parentPort>, { script }: PthreadWorkerData) {
  const self: Record<string, unknown> = { location: { href: import.meta.url } };
  const postMessage = (message: unknown, transfer?: Transferable[]) =>
    port.postMessage(message, transfer as never);
  const startWorker = (module: unknown) => (self.startWorker as (m: unknown) => void)(module);
  let factorySource = "";
  const bindings = () => [self, postMessage, importScripts, undefined, undefined, startWorker];
  /** Defines the factory, `WasmBackendModuleThreadedSimd`, as the browser's eval would. */
  function importScripts(): void {
    const name = "WasmBackendModuleThreadedSimd";
    const define = new Function(...GLOBALS, `${factorySource}\nreturn ${name};`);
    (globalThis as Record<string, unknown>)[name] = define(...bindings());
  }
  // Listen at once; the worker script runs before any message is handed on.
  let queue = (async () => {
    const text = await (await fetch(script)).text();
    new Function(...GLOBALS, text)(...bindings());
  })();
  port.on("message", (data: { cmd?: string; urlOrBlob?: unknown }) => {
    queue = queue.then(async () => {
      if (data?.cmd === "load" && data.urlOrBlob instanceof Blob) {
        factorySource = await data.urlOrBlob.text();
      }
      (self.onmessage as (e: { data: unknown }) => void)({ data });
    }).catch((e) => {
      // tfjs would wait for this thread forever without a word: say why on stderr.
      console.error(`tfjs-wasm pool thread failed: ${e?.stack ?? e}`);
    });
  });
}

if (!isMainThread && parentPort && typeof workerData?.script === "string") {
  // The test hook: listen (so the thread stays up) and never answer, like a thread that hangs.
  if ((workerData as PthreadWorkerData).hang) parentPort.on("message", () => {});
  else serve(parentPort, workerData as PthreadWorkerData);
}
