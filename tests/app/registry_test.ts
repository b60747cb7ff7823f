import assert from "node:assert/strict";
import { completeTaskConfig, createTask, parseTaskConfig } from "../../src/app/registry.ts";
import { runDefaults } from "../../src/app/defaults.ts";
import { createBackend } from "../../src/backend/select.ts";
import { DEFAULT_DDPM_CONFIG } from "../../src/diffusion/task.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { CheckpointError } from "../../src/train/checkpoint.ts";
import { testEachBackend } from "../_backends.ts";

const tinyDdpm = {
  ...DEFAULT_DDPM_CONFIG,
  preset: "convnet" as const,
  baseWidth: 4,
  timesteps: 10,
  imageSize: 8,
};

Deno.test("parseTaskConfig() fills in the family's defaults and keeps the stored fields", () => {
  const spec = parseTaskConfig("ddpm", { preset: "convnet", timesteps: 40, imageSize: 8 }, "x");
  assert.equal(spec.kind, "ddpm");
  assert.deepEqual(spec.config, {
    ...DEFAULT_DDPM_CONFIG,
    preset: "convnet",
    timesteps: 40,
    imageSize: 8,
  });
  const gan = parseTaskConfig("gan", { ...DEFAULT_GAN_CONFIG, nz: 8 }, "x");
  assert.equal(gan.kind === "gan" && gan.config.nz, 8);
});

Deno.test("parseTaskConfig() names the file and what is wrong with a config", () => {
  assert.throws(
    () => parseTaskConfig("vae", {}, "runs/a/checkpoint.safetensors"),
    (e) =>
      e instanceof CheckpointError &&
      /runs\/a\/checkpoint\.safetensors: unknown model kind 'vae': expected ddpm or gan/.test(
        e.message,
      ),
  );
  assert.throws(
    () => parseTaskConfig("ddpm", [1], "f"),
    /f: the model config is not a JSON object/,
  );
  assert.throws(
    () => parseTaskConfig("ddpm", { timesteps: 1 }, "f"),
    /f: bad ddpm config: .*timesteps must be an integer >= 2, got 1/,
  );
  assert.throws(
    () => parseTaskConfig("gan", { imageSize: 64 }, "f"),
    /f: bad gan config: the DCGAN is built for 32x32/,
  );
});

testEachBackend(
  "createTask() tasks name the store they export and their model stores explicitly",
  (backend) => {
    const withEma = createTask(backend, { kind: "ddpm", config: tinyDdpm }, 0);
    const noEma = createTask(backend, { kind: "ddpm", config: { ...tinyDdpm, ema: 0 } }, 0);
    const gan = createTask(
      backend,
      { kind: "gan", config: { ...DEFAULT_GAN_CONFIG, nz: 4, ngf: 2, ndf: 2 } },
      0,
    );
    try {
      assert.equal(withEma.exportStore, "ema");
      assert.deepEqual(withEma.modelStores, ["model"]);
      assert.equal(noEma.exportStore, "model");
      assert.equal(gan.exportStore, "generator");
      assert.deepEqual(gan.modelStores, ["generator", "discriminator"]);
      for (const task of [withEma, noEma, gan]) {
        assert.ok(task.exportStore in task.stores);
        for (const name of task.modelStores) assert.ok(name in task.stores);
      }
    } finally {
      withEma.dispose();
      noEma.dispose();
      gan.dispose();
    }
  },
  { only: ["tfjs-cpu"] },
);

Deno.test("completeTaskConfig() fills a partial config with the CLI's device defaults", () => {
  const cpu = completeTaskConfig({ kind: "ddpm", config: { timesteps: 100 } }, "torch-cpu");
  assert.deepEqual(cpu, {
    kind: "ddpm",
    config: {
      ...DEFAULT_DDPM_CONFIG,
      preset: runDefaults("ddpm", "torch-cpu").ddpmPreset,
      timesteps: 100,
      cfgDrop: 0, // unconditional: no label dropout, as the CLI does
    },
  });
  const gpu = completeTaskConfig({ kind: "ddpm" }, "torch-cuda");
  assert.equal(gpu.kind === "ddpm" && gpu.config.preset, DEFAULT_DDPM_CONFIG.preset);
  const cond = completeTaskConfig({ kind: "ddpm", config: { numClasses: 2 } }, "torch-cpu");
  assert.equal(cond.kind === "ddpm" && cond.config.cfgDrop, DEFAULT_DDPM_CONFIG.cfgDrop);
  const gan = completeTaskConfig({ kind: "gan", config: { nz: 8, numClasses: 3 } }, "tfjs-cpu");
  assert.deepEqual(gan, {
    kind: "gan",
    config: { ...DEFAULT_GAN_CONFIG, nz: 8, numClasses: 3, embedDim: 3 },
  });
});

Deno.test("createTask() takes a partial config and rejects unknown fields", async () => {
  const backend = await createBackend("tfjs-cpu");
  try {
    const task = createTask(backend, { kind: "gan", config: { ngf: 4, ndf: 4, nz: 8 } }, 0);
    assert.deepEqual(task.config, { ...DEFAULT_GAN_CONFIG, ngf: 4, ndf: 4, nz: 8, embedDim: 0 });
    task.dispose();
    assert.throws(
      // @ts-expect-error: a typo a JavaScript caller can make
      () => createTask(backend, { kind: "ddpm", config: { timestep: 10 } }, 0),
      /unknown ddpm config field timestep; known: preset, .*timesteps/,
    );
    assert.throws(
      // @ts-expect-error: not a family
      () => createTask(backend, { kind: "vae", config: {} }, 0),
      /unknown model kind "vae"/,
    );
  } finally {
    backend.dispose();
  }
});
