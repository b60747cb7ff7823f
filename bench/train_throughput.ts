/**
 * Training throughput of every DDPM preset (one step: forward, L_simple, backward, clip,
 * AdamW, EMA) at a given batch size on one backend, on random 32x32 data:
 *
 *     deno run -A bench/train_throughput.ts [--backend torch-cpu] [--batch 64] [--steps 3] [--json]
 *
 * One warm-up step, then the median of `--steps` timed steps.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Rng } from "../src/core/rng.ts";
import { type BackendName, createBackend } from "../src/backend/select.ts";
import { createDdpmTask, DEFAULT_DDPM_CONFIG } from "../src/diffusion/task.ts";
import { DENOISER_PRESETS } from "../src/models/denoiser.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    backend: { type: "string", default: "torch-cpu" },
    batch: { type: "string", default: "64" },
    steps: { type: "string", default: "3" },
    presets: { type: "string", default: DENOISER_PRESETS.join(",") },
    json: { type: "boolean" },
  },
  strict: true,
});
const batchSize = Number(values.batch);
const backend = await createBackend(values.backend as BackendName);
const rng = new Rng(0);
for (const preset of values.presets!.split(",")) {
  const task = createDdpmTask(
    backend,
    { ...DEFAULT_DDPM_CONFIG, preset: preset as typeof DEFAULT_DDPM_CONFIG.preset },
    new Rng(1),
  );
  const batch = {
    images: rng.uniformArray(batchSize * 3 * 32 * 32, -1, 1),
    labels: new Int32Array(batchSize),
    shape: [batchSize, 3, 32, 32] as const,
  };
  task.step(batch, rng, 0);
  const seconds: number[] = [];
  for (let i = 0; i < Number(values.steps); i++) {
    const t0 = performance.now();
    task.step(batch, rng, 0);
    seconds.push((performance.now() - t0) / 1000);
  }
  task.dispose();
  const median = seconds.sort((a, b) => a - b)[Math.floor(seconds.length / 2)];
  const row = {
    preset,
    backend: backend.name,
    batch: batchSize,
    images_per_s: batchSize / median,
    seconds,
  };
  console.log(
    values.json
      ? JSON.stringify(row)
      : `${preset.padEnd(16)} ${
        (batchSize / median).toFixed(1)
      } images/s (median of ${seconds.length} steps at batch ${batchSize}, ${backend.name})`,
  );
}
backend.dispose();
