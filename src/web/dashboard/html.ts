/**
 * The dashboard's one HTML page; client.js draws everything into it.
 *
 * @module
 */

/**
 * The page served at `/`.
 *
 * @example
 * ```ts
 * import { dashboardHtml } from "./html.ts";
 * console.log(dashboardHtml().includes("/assets/dashboard.js")); // true
 * ```
 */
export function dashboardHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>deno-diffusion runs</title>
<link rel="stylesheet" href="/assets/uplot.css">
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
  header { background: #1d2330; color: #fff; padding: .7em 1.4em; display: flex; gap: 1.5em; align-items: baseline; }
  header a { color: #9cc3ff; text-decoration: none; }
  main { padding: 1em 1.4em; max-width: 78em; }
  table { border-collapse: collapse; background: #fff; margin: .5em 0 1.2em; }
  th, td { padding: .35em .8em; border-bottom: 1px solid #e3e6eb; text-align: left; white-space: nowrap; }
  th { background: #eef0f4; font-weight: 600; }
  tr.run:hover { background: #eef4ff; cursor: pointer; }
  .state-training { color: #0a7d32; font-weight: 600; }
  .state-interrupted { color: #b15d00; }
  .state-finished { color: #555; }
  .charts { display: flex; flex-wrap: wrap; gap: 1em; }
  .card { background: #fff; border: 1px solid #e3e6eb; border-radius: 6px; padding: .8em; margin-bottom: 1em; }
  img.pixel { image-rendering: pixelated; }
  .strip img { height: 96px; margin: 0 .3em .3em 0; border: 1px solid #ccc; }
  pre { background: #fff; border: 1px solid #e3e6eb; padding: .8em; overflow: auto; }
  #report img { max-width: 100%; image-rendering: pixelated; }
  #report table { font-size: .95em; }
  .muted { color: #667; }
</style>
</head>
<body>
<header><strong>deno-diffusion</strong><a href="#">runs</a><span class="muted" id="root"></span></header>
<main id="view">loading ...</main>
<script src="/assets/uplot.js"></script>
<script src="/assets/dashboard.js"></script>
</body>
</html>
`;
}
