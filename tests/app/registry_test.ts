import assert from "node:assert/strict";
import { createTask, parseTaskConfig } from "../../src/app/registry.ts";
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
