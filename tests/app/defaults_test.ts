import assert from "node:assert/strict";
import { DEFAULT_BATCH_SIZE, previewOptions, runDefaults } from "../../src/app/defaults.ts";
import { createTask } from "../../src/app/registry.ts";
import { DEFAULT_DDPM_CONFIG } from "../../src/diffusion/task.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { DEFAULT_DCGAN } from "../../src/models/dcgan.ts";
import { testEachBackend } from "../_backends.ts";

Deno.test("runDefaults() gives a GPU the study's DDPM and a CPU the smaller one, and says so", () => {
  const gpu = runDefaults("ddpm", "torch-cuda");
  assert.deepEqual(gpu, { ddpmPreset: "unet-2xud", batchSize: 64, epochs: 500, note: null });
  const cpu = runDefaults("ddpm", "tfjs-wasm");
  assert.equal(cpu.ddpmPreset, "unet-2xud-half");
  assert.equal(cpu.batchSize, 32);
  assert.equal(cpu.epochs, 10);
  assert.match(cpu.note!, /no GPU \(backend tfjs-wasm\).*--preset unet-2xud/);
  for (const backend of ["torch-cuda", "torch-cpu"]) {
    assert.equal(runDefaults("gan", backend).batchSize, DEFAULT_BATCH_SIZE.gan);
    assert.equal(runDefaults("gan", backend).note, null);
  }
});

Deno.test("DEFAULT_GAN_CONFIG takes the network's shape from the DCGAN's one default", () => {
  for (const key of ["preset", "nz", "ngf", "ndf", "channels"] as const) {
    assert.equal(DEFAULT_GAN_CONFIG[key], DEFAULT_DCGAN[key]);
  }
});

testEachBackend(
  "previewOptions() is a short clipped DDIM run for diffusion (never more steps than T), nothing for a GAN",
  (backend) => {
    const config = { ...DEFAULT_DDPM_CONFIG, preset: "convnet" as const, baseWidth: 4 };
    const long = createTask(backend, { kind: "ddpm", config: { ...config, timesteps: 1000 } }, 0);
    const short = createTask(backend, { kind: "ddpm", config: { ...config, timesteps: 20 } }, 0);
    const gan = createTask(
      backend,
      { kind: "gan", config: { ...DEFAULT_GAN_CONFIG, nz: 4, ngf: 2, ndf: 2 } },
      0,
    );
    try {
      assert.deepEqual(previewOptions(long), { sampler: "ddim", steps: 50, clipX0: true });
      assert.deepEqual(previewOptions(short), { sampler: "ddim", steps: 20, clipX0: true });
      assert.equal(previewOptions(gan), undefined);
    } finally {
      long.dispose();
      short.dispose();
      gan.dispose();
    }
  },
  { only: ["tfjs-cpu"] },
);
