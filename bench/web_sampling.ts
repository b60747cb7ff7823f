/**
 * Seconds per DDIM sample of the exported page in headless Chromium, per tfjs backend:
 *
 *     deno run -A bench/web_sampling.ts [--preset convnet] [--base-width N] [--count 16]
 *       [--steps 50] [--backends wasm,webgl] [--ckpt RUN]
 *
 * Without --ckpt it exports an untrained model of the preset (speed does not depend on the
 * weights). Reports the page's own timing of the sampling call (in its worker, excluding page
 * load and weight upload), the page load size (index.html + app.js) and the weights' size.
 * WebGL in headless Chromium here is SwiftShader: a CPU emulation of a GPU.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Rng } from "../src/core/rng.ts";
import { createBackend } from "../src/backend/select.ts";
import type { DenoiserPreset } from "../src/models/denoiser.ts";
import { resolveDdpmConfig } from "../src/diffusion/task.ts";
import { loadCheckpoint, saveCheckpoint } from "../src/train/checkpoint.ts";
import { createTask } from "../src/app/registry.ts";
import { exportWeb } from "../src/web/export.ts";
import { launchChromium, staticServer, waitFor } from "../tests/web/_browser.ts";

const { values } = parseArgs({
  options: {
    preset: { type: "string", default: "convnet" },
    "base-width": { type: "string" },
    count: { type: "string", default: "16" },
    steps: { type: "string", default: "50" },
    backends: { type: "string", default: "wasm,webgl" },
    ckpt: { type: "string" },
  },
});

const root = await Deno.makeTempDir({ prefix: "dd-web-bench-" });
try {
  let run = values.ckpt;
  if (!run) {
    run = `${root}/run`;
    await Deno.mkdir(run);
    const backend = await createBackend("tfjs-cpu");
    const config = resolveDdpmConfig({
      preset: values.preset as DenoiserPreset,
      ...(values["base-width"] ? { baseWidth: Number(values["base-width"]) } : {}),
    });
    const task = createTask(backend, { kind: "ddpm", config }, 0);
    await saveCheckpoint(run, task, {
      step: 0,
      epoch: 0,
      rng: new Rng(0).state(),
      // No training happened: an empty record (speed does not depend on it).
      train: {
        batchSize: 1,
        epochs: 0,
        maxSteps: 0,
        seed: 0,
        flip: false,
        stepsPerEpoch: 1,
        totalSteps: 0,
      },
      backend: backend.name,
    });
    task.dispose();
    backend.dispose();
  }
  const exported = await exportWeb(await loadCheckpoint(run), `${root}/web`);
  const page = exported.files["index.html"] + exported.files["app.js"];
  console.log(
    `page load ${(page / 1e6).toFixed(2)} MB (index.html + app.js), weights ` +
      `${(exported.files["model.safetensors"] / 1e6).toFixed(2)} MB`,
  );
  const server = staticServer(`${root}/web`);
  const browser = await launchChromium();
  try {
    for (const backend of values.backends!.split(",")) {
      const tab = await browser.newPage();
      const t0 = performance.now();
      await tab.goto(`${server.url}/?backend=${backend}`);
      await waitFor(tab, `["ready", "error"].includes(globalThis.ddPage.status)`, 600_000);
      const ready = (performance.now() - t0) / 1000;
      const fields = { count: Number(values.count), seed: 0, steps: Number(values.steps) };
      await tab.evaluate(`for (const [id, v] of Object.entries(${JSON.stringify(fields)}))
        document.getElementById(id).value = String(v);`);
      await tab.click("#generate");
      await waitFor(tab, `["done", "error"].includes(globalThis.ddPage.status)`, 3_600_000);
      const result = await tab.evaluate(`({ status: ddPage.status, error: ddPage.error,
        seconds: ddPage.seconds, device: ddPage.device, params: ddPage.info.params })`) as {
        status: string;
        error?: string;
        seconds: number;
        device: string;
        params: number;
      };
      await tab.close();
      if (result.status !== "done") {
        console.log(`${backend}: failed: ${result.error}`);
        continue;
      }
      console.log(JSON.stringify({
        backend,
        device: result.device,
        preset: values.preset,
        params: result.params,
        images: fields.count,
        steps: fields.steps,
        seconds: Number(result.seconds.toFixed(2)),
        pageReadySeconds: Number(ready.toFixed(2)),
      }));
    }
  } finally {
    await browser.close();
    await server.shutdown();
  }
} finally {
  await Deno.remove(root, { recursive: true });
}
