/**
 * The main jobs at their defaults on tfjs-wasm, against torch-cpu: one training step of the
 * default CPU preset at the default batch (which needs more than tfjs-wasm's heap in one piece,
 * so it runs as micro-batches), and Inception features of 50 images at FID's default batch 50
 * (random weights in pytorch-fid's layout, made by tests/fixtures/make_fid_fixtures.py). Each
 * takes one to two minutes on a 2-core machine; tfjs-wasm has no faster way to run them.
 */
import assert from "node:assert/strict";
import { createBackend, listBackends } from "../../src/backend/select.ts";
import type { Backend } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import { createDdpmTask, DEFAULT_DDPM_CONFIG } from "../../src/diffusion/task.ts";
import { runDefaults } from "../../src/app/defaults.ts";
import { computeActivations } from "../../src/metrics/features.ts";
import { loadInception } from "../../src/metrics/weights.ts";
import { makeInceptionFixture } from "../_inception_weights.ts";

const infos = await listBackends();
const missing = ["tfjs-wasm", "torch-cpu"].filter((name) =>
  !infos.find((i) => i.name === name)?.available
);
const required = (Deno.env.get("DENO_DIFFUSION_REQUIRE") ?? "").split(",");
const ignore = missing.length > 0 && !missing.some((name) => required.includes(name));
if (ignore) console.log(`skipping tfjs-wasm default-job tests: ${missing.join(", ")} unavailable`);

/** Loss and gradient norm of one default DDPM step, and a checksum-free copy of the weights. */
function defaultStep(backend: Backend) {
  const defaults = runDefaults("ddpm", "tfjs-wasm");
  const n = defaults.batchSize;
  const task = createDdpmTask(
    backend,
    { ...DEFAULT_DDPM_CONFIG, preset: defaults.ddpmPreset },
    new Rng(1),
  );
  try {
    const images = new Rng(2).uniformArray(n * 3 * 32 * 32, -1, 1);
    const batch = {
      images,
      labels: new Int32Array(n),
      shape: [n, 3, 32, 32] as [number, number, number, number],
    };
    return task.step(batch, new Rng(3), 0);
  } finally {
    task.dispose();
  }
}

Deno.test({
  name: "tfjs-wasm runs a default training step (unet-2xud-half, batch 32) as torch-cpu does",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const results = [];
    for (const name of ["torch-cpu", "tfjs-wasm"] as const) {
      const backend = await createBackend(name);
      try {
        results.push(defaultStep(backend));
      } finally {
        backend.dispose();
      }
    }
    const [torch, wasm] = results;
    // Sums over 32 x 3 x 32 x 32 elements and ~5M parameters in float32.
    assert.ok(
      Math.abs(torch.loss - wasm.loss) <= 1e-4 * torch.loss,
      `${torch.loss} vs ${wasm.loss}`,
    );
    assert.ok(
      Math.abs(torch.gradNorm - wasm.gradNorm) <= 1e-3 * torch.gradNorm,
      `grad norm ${torch.gradNorm} vs ${wasm.gradNorm}`,
    );
  },
});

Deno.test({
  name: "tfjs-wasm computes FID features of 50 images at batch 50 as torch-cpu does",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tfjs_wasm_fid_" });
    try {
      const weights = await makeInceptionFixture(dir);
      const rng = new Rng(4);
      const images = Array.from({ length: 50 }, () => ({
        width: 32,
        height: 32,
        channels: 3,
        data: Uint8Array.from(rng.uniformArray(32 * 32 * 3, 0, 256), Math.floor),
      }));
      const features = [];
      for (const name of ["torch-cpu", "tfjs-wasm"] as const) {
        const backend = await createBackend(name);
        try {
          const net = await loadInception(backend, { path: weights, verify: false });
          const { data } = await computeActivations(backend, net, images, {
            batchSize: 50,
            progress: false,
          });
          features.push(data);
        } finally {
          backend.dispose();
        }
      }
      const [torch, wasm] = features;
      assert.equal(wasm.length, 50 * 2048);
      let maxDiff = 0;
      let maxRef = 0;
      for (let i = 0; i < torch.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(torch[i] - wasm[i]));
        maxRef = Math.max(maxRef, Math.abs(torch[i]));
      }
      // As inception_test.ts: float32 through 94 conv layers agrees to ~4e-4.
      assert.ok(maxDiff <= 1e-3 * Math.max(1, maxRef), `max |diff| ${maxDiff} (max ${maxRef})`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
