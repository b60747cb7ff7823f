/// <reference lib="dom" />
/**
 * Entry point of the exported sampling page (index.html from src/web/export.ts): loads the
 * weights (fetched next to the page, or picked by the user when the page is a `file://` URL,
 * where browsers forbid reading neighbouring files), starts the sampling worker from the
 * worker source embedded in app.js, and wires the controls: backend, DDIM steps, seed, class,
 * count, progress bar, grid and PNG download.
 *
 * State for tests and curious users is kept in `globalThis.ddPage`.
 *
 * @module
 */
import type { BrowserBackendChoice } from "./backend.ts";
import type { ModelInfo } from "./model.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

/** Set by the prologue of app.js (src/web/export.ts). */
declare const DD_WORKER_SOURCE: string;
declare const DD_WASM_SIMD: string;
declare const DD_WASM_PLAIN: string;

/** What the page exposes as `globalThis.ddPage`. */
export interface PageState {
  status: "loading" | "need-file" | "ready" | "sampling" | "done" | "error";
  backend?: string;
  device?: string;
  notes: string[];
  info?: ModelInfo;
  /** Last images, float32 [n, C, H, W] in [-1, 1]. */
  images?: Float32Array;
  shape?: number[];
  seconds?: number;
  error?: string;
}

const state: PageState = { status: "loading", notes: [] };
(globalThis as unknown as { ddPage: PageState }).ddPage = state;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function setStatus(status: PageState["status"], text: string): void {
  state.status = status;
  $("status").textContent = text;
}

function base64Bytes(text: string): ArrayBuffer {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out.buffer;
}

function backendChoice(): BrowserBackendChoice {
  const wanted = new URLSearchParams(location.search).get("backend");
  return wanted === "webgl" || wanted === "wasm" ? wanted : "auto";
}

/** Draws [n, C, H, W] images in [-1, 1] as a grid (8 per row, 2 px gaps, as png.ts's makeGrid). */
function drawGrid(images: Float32Array, shape: number[]): void {
  const [n, c, h, w] = shape;
  const pad = 2;
  const columns = Math.min(8, n);
  const rows = Math.ceil(n / columns);
  const canvas = $<HTMLCanvasElement>("grid");
  canvas.width = columns * (w + pad) + pad;
  canvas.height = rows * (h + pad) + pad;
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const tile = ctx.createImageData(w, h);
  for (let k = 0; k < n; k++) {
    for (let p = 0; p < h * w; p++) {
      for (let ch = 0; ch < 3; ch++) {
        const v = images[(k * c + (c === 1 ? 0 : ch)) * h * w + p];
        // round((x + 1) * 127.5), clamped: the conversion of png.ts's toUint8Images.
        tile.data[p * 4 + ch] = Math.min(255, Math.max(0, Math.round((v + 1) * 127.5)));
      }
      tile.data[p * 4 + 3] = 255;
    }
    const top = Math.floor(k / columns) * (h + pad) + pad;
    const left = (k % columns) * (w + pad) + pad;
    ctx.putImageData(tile, left, top);
  }
  canvas.style.width = `${canvas.width * 4}px`;
  const link = $<HTMLAnchorElement>("download");
  link.href = canvas.toDataURL("image/png");
  link.hidden = false;
}

function showModel(info: ModelInfo): void {
  const steps = $<HTMLInputElement>("steps");
  if (info.kind === "ddpm") {
    steps.max = String(info.timesteps);
    steps.value = String(Math.min(50, info.timesteps));
    $("steps-value").textContent = steps.value;
  } else {
    $("steps-row").hidden = true;
  }
  const picker = $<HTMLSelectElement>("class");
  if (info.numClasses > 0) {
    picker.replaceChildren(
      ...info.classNames.map((name, i) => new Option(name, String(i))),
    );
  } else {
    $("class-row").hidden = true;
  }
  $("model").textContent = `${info.kind === "ddpm" ? "diffusion model" : "DCGAN generator"}, ` +
    `${info.params.toLocaleString("en")} weights, images ${info.imageShape.join("x")}` +
    (info.numClasses > 0 ? `, ${info.numClasses} classes` : "");
}

function start(weights: ArrayBuffer): void {
  setStatus("loading", "starting the backend ...");
  const source = new Blob([DD_WORKER_SOURCE], { type: "text/javascript" });
  const worker = new Worker(URL.createObjectURL(source));
  const post = (message: ToWorker, transfer: Transferable[] = []) =>
    worker.postMessage(message, transfer);
  worker.onerror = (e) => {
    state.error = e.message;
    setStatus("error", `worker failed: ${e.message}`);
  };
  worker.onmessage = (e: MessageEvent<FromWorker>) => {
    const m = e.data;
    if (m.type === "ready") {
      Object.assign(state, { backend: m.backend, device: m.device, notes: m.notes, info: m.info });
      $("backend").textContent = `${m.backend} (${m.device})`;
      $("notes").textContent = m.notes.join("; ");
      showModel(m.info);
      $<HTMLButtonElement>("generate").disabled = false;
      setStatus("ready", "ready");
    } else if (m.type === "progress") {
      const bar = $<HTMLProgressElement>("progress");
      bar.max = m.total;
      bar.value = m.done;
    } else if (m.type === "images") {
      Object.assign(state, { images: m.images, shape: m.shape, seconds: m.seconds });
      drawGrid(m.images, m.shape);
      $<HTMLButtonElement>("generate").disabled = false;
      setStatus("done", `${m.shape[0]} images in ${m.seconds.toFixed(2)} s`);
    } else {
      state.error = m.message;
      $<HTMLButtonElement>("generate").disabled = false;
      setStatus("error", `error: ${m.message}`);
    }
  };
  post({
    type: "init",
    backend: backendChoice(),
    wasm: { simd: base64Bytes(DD_WASM_SIMD), plain: base64Bytes(DD_WASM_PLAIN) },
    weights,
  }, [weights]);
  $("generate").addEventListener("click", () => {
    const number = (id: string) => Number($<HTMLInputElement>(id).value);
    $<HTMLButtonElement>("generate").disabled = true;
    setStatus("sampling", "sampling ...");
    post({
      type: "sample",
      count: number("count"),
      seed: number("seed"),
      steps: number("steps"),
      classId: state.info && state.info.numClasses > 0 ? number("class") : 0,
    });
  });
}

function main(): void {
  const steps = $<HTMLInputElement>("steps");
  steps.addEventListener("input", () => ($("steps-value").textContent = steps.value));
  const select = $<HTMLSelectElement>("backend-choice");
  select.value = backendChoice();
  select.addEventListener("change", () => {
    const url = new URL(location.href);
    url.searchParams.set("backend", select.value);
    location.href = url.href;
  });
  const picker = $<HTMLInputElement>("weights-file");
  picker.addEventListener("change", async () => {
    const file = picker.files?.[0];
    if (file) start(await file.arrayBuffer());
  });
  fetch("model.safetensors")
    .then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.arrayBuffer();
    })
    .then(start)
    .catch(() => {
      // file:// pages may not read their neighbours: let the user hand the file over.
      $("weights-row").hidden = false;
      setStatus("need-file", "open model.safetensors (next to this page) to load the model");
    });
}

main();
