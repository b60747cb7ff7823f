/**
 * The exported sampling page's HTML. Everything it needs is in app.js (script, worker, wasm)
 * and model.safetensors, so the folder works from any static server or from `file://`.
 *
 * @module
 */

const escape = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/**
 * index.html of an exported model titled `title`.
 *
 * @example
 * ```ts
 * import { exportPageHtml } from "./export_html.ts";
 * console.log(exportPageHtml("runs/cats").includes('src="app.js"')); // true
 * ```
 */
export function exportPageHtml(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)} - deno-diffusion</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 52em; padding: 0 1em; color: #222; }
  h1 { font-size: 1.3em; margin-bottom: .2em; }
  .muted { color: #666; font-size: .9em; }
  .row { margin: .6em 0; display: flex; gap: .8em; align-items: center; flex-wrap: wrap; }
  label { min-width: 7em; }
  progress { width: 20em; }
  canvas { image-rendering: pixelated; display: block; margin: 1em 0; background: #000; max-width: 100%; }
  button { font-size: 1em; padding: .3em 1.2em; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<h1>${escape(title)}</h1>
<div class="muted" id="model">loading the model ...</div>
<div class="row"><label>Backend</label><select id="backend-choice">
  <option value="auto">auto (WebGL, else wasm)</option><option value="webgl">WebGL</option>
  <option value="wasm">wasm</option></select>
  <span id="backend">-</span></div>
<div class="muted" id="notes"></div>
<div class="row" id="weights-row" hidden><label>Weights</label>
  <input type="file" id="weights-file" accept=".safetensors"></div>
<div class="row" id="steps-row"><label>DDIM steps</label>
  <input type="range" id="steps" min="1" max="1000" value="50"><span id="steps-value">50</span></div>
<div class="row"><label>Seed</label><input type="number" id="seed" value="0" min="0" step="1"></div>
<div class="row" id="class-row"><label>Class</label><select id="class"></select></div>
<div class="row"><label>Images</label><input type="number" id="count" value="16" min="1" max="256"></div>
<div class="row"><button id="generate" disabled>Generate</button>
  <progress id="progress" value="0" max="1"></progress><span id="status">loading ...</span></div>
<canvas id="grid" width="1" height="1"></canvas>
<a id="download" download="samples.png" hidden>Download PNG</a>
<p class="muted">Runs deno-diffusion's own model, noise schedule and DDIM sampler, bundled with
TensorFlow.js. The same seed gives the same images as <code>cli.ts sample --sampler ddim</code>.</p>
<script src="app.js"></script>
</body>
</html>
`;
}
