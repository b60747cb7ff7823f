import { deepEqual, equal, notDeepEqual, ok as assert, throws } from "node:assert/strict";
import type { Backend } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import {
  createDdpmTask,
  type DdpmConfig,
  type DdpmSampleOptions,
  DEFAULT_DDPM_CONFIG,
  resolveDdpmConfig,
  sampleBatchSize,
} from "../../src/diffusion/task.ts";
import type { Batch } from "../../src/data/batch.ts";
import { createBackend, listBackends } from "../../src/backend/select.ts";
import { testEachBackend } from "../_backends.ts";

const tiny: DdpmConfig = {
  ...DEFAULT_DDPM_CONFIG,
  preset: "convnet",
  baseWidth: 4,
  timesteps: 20,
  imageSize: 4,
  channels: 1,
  lr: 1e-2,
  ema: 0,
};

function fixedBatch(n = 4): Batch {
  const rng = new Rng(100);
  return {
    images: rng.uniformArray(n * 16, -1, 1),
    labels: Int32Array.from({ length: n }, (_, i) => i % 2),
    shape: [n, 1, 4, 4],
  };
}

function readStore(b: Backend, task: ReturnType<typeof createDdpmTask>, group: string) {
  return task.stores[group].names().map((n) =>
    Float32Array.from(b.read(task.stores[group].get(n)))
  );
}

for (const loss of ["simple", "vlb"] as const) {
  testEachBackend(`step() lowers the ${loss} loss on a fixed batch, timesteps and noise`, (b) => {
    const task = createDdpmTask(b, { ...tiny, loss }, new Rng(1));
    const batch = fixedBatch();
    const losses: number[] = [];
    let live = 0;
    for (let i = 0; i < 25; i++) {
      if (i === 1) live = b.liveTensors();
      const metrics = task.step(batch, new Rng(2), i / 25); // same t and noise every step
      assert(Number.isFinite(metrics.loss) && metrics.gradNorm > 0, JSON.stringify(metrics));
      losses.push(metrics.loss);
    }
    assert(losses[24] < 0.7 * losses[0], `${loss}: ${losses[0]} -> ${losses[24]}`);
    equal(b.liveTensors(), live, "a training step must not leave tensors behind");
    task.dispose();
  });
}

testEachBackend("the EMA copies the weights until emaStart, then averages with the decay", (b) => {
  const task = createDdpmTask(b, { ...tiny, ema: 0.9, emaStart: 2 }, new Rng(3));
  deepEqual(Object.keys(task.stores), ["ema", "model"]); // the exported group comes first
  deepEqual(Object.keys(task.optimizers), ["model"]);
  const batch = fixedBatch();
  const rng = new Rng(4);
  task.step(batch, rng, 0);
  task.step(batch, rng, 0);
  deepEqual(readStore(b, task, "ema"), readStore(b, task, "model"));
  const emaBefore = readStore(b, task, "ema");
  task.step(batch, rng, 0);
  const model = readStore(b, task, "model");
  const ema = readStore(b, task, "ema");
  let maxErr = 0;
  let moved = 0;
  ema.forEach((values, k) =>
    values.forEach((v, i) => {
      maxErr = Math.max(maxErr, Math.abs(v - (0.9 * emaBefore[k][i] + 0.1 * model[k][i])));
      moved = Math.max(moved, Math.abs(v - model[k][i]));
    })
  );
  assert(maxErr < 1e-6, `EMA off by ${maxErr}`);
  assert(moved > 1e-5, "EMA should lag the model after emaStart");
  task.dispose();
}, { only: ["torch-cpu", "tfjs-cpu"] });

testEachBackend("sample() uses the EMA weights when EMA is on", (b) => {
  const task = createDdpmTask(b, { ...tiny, ema: 0.5, emaStart: 0 }, new Rng(5));
  const first = task.sample(new Int32Array(2), new Rng(6), { sampler: "ddim", steps: 5 });
  equal(first.length, 2 * 16);
  // Changing the raw model's weights must not change samples ...
  const emaOnly = readStore(b, task, "ema");
  const modelHost = task.stores.model.toHost();
  for (const t of modelHost.values()) t.data.fill(0.1);
  task.stores.model.load(modelHost);
  const afterModelChange = task.sample(new Int32Array(2), new Rng(6), {
    sampler: "ddim",
    steps: 5,
  });
  deepEqual(readStore(b, task, "ema"), emaOnly);
  // ... while changing the EMA weights does.
  const emaHost = task.stores.ema.toHost();
  for (const t of emaHost.values()) t.data.fill(0.05);
  task.stores.ema.load(emaHost);
  const afterEmaChange = task.sample(new Int32Array(2), new Rng(6), { sampler: "ddim", steps: 5 });
  notDeepEqual(afterEmaChange, afterModelChange);
  const again = task.sample(new Int32Array(2), new Rng(6), { sampler: "ddim", steps: 5 });
  deepEqual(again, afterEmaChange);
  task.dispose();
}, { only: ["tfjs-cpu"] });

testEachBackend("a conditional task samples per label and with guidance", (b) => {
  const task = createDdpmTask(b, { ...tiny, numClasses: 2, cfgDrop: 0.5 }, new Rng(8));
  equal(task.numClasses, 2);
  task.step(fixedBatch(), new Rng(9), 0);
  const plain = task.sample(Int32Array.from([0, 1]), new Rng(10), { sampler: "ddim", steps: 4 });
  const guided = task.sample(Int32Array.from([0, 1]), new Rng(10), {
    sampler: "ddim",
    steps: 4,
    guidance: 3,
  });
  equal(guided.length, plain.length);
  notDeepEqual(guided, plain);
  throws(() => task.sample(Int32Array.from([2]), new Rng(0)), /label 2 is outside 0..1/);
  task.dispose();
}, { only: ["tfjs-cpu"] });

testEachBackend(
  "createDdpmTask() reports bad configs, batches and sampling options clearly",
  (b) => {
    throws(
      () => createDdpmTask(b, { ...tiny, loss: "l1" as "simple" }, new Rng(0)),
      /loss must be "simple" or "vlb"/,
    );
    throws(() => createDdpmTask(b, { ...tiny, ema: 1 }, new Rng(0)), /ema must be in \[0, 1\)/);
    throws(() => createDdpmTask(b, { ...tiny, cfgDrop: 1.5 }, new Rng(0)), /cfgDrop must be in/);
    throws(
      () => createDdpmTask(b, { ...tiny, preset: "unet-4x" as "unet-3x" }, new Rng(0)),
      /unknown model preset "unet-4x"/,
    );
    throws(() => resolveDdpmConfig({ timesteps: 0 }), /timesteps must be an integer >= 2, got 0/);
    throws(
      () => resolveDdpmConfig({ imageSize: 30 }),
      /unet-2xud needs an image size divisible by 4/,
    );
    equal(resolveDdpmConfig({ numClasses: 3 }).numClasses, 3);
    const task = createDdpmTask(b, tiny, new Rng(0));
    const wrong: Batch = {
      images: new Float32Array(3 * 64),
      labels: new Int32Array(1),
      shape: [1, 3, 8, 8],
    };
    throws(
      () => task.step(wrong, new Rng(0), 0),
      /batch images are \[3, 8, 8\] but the model was built for \[1,4,4\]/,
    );
    throws(
      // What a JavaScript caller or a JSON file can pass despite the types.
      () =>
        task.sample(
          new Int32Array(1),
          new Rng(0),
          { sampler: "ddim", stepz: 3 } as DdpmSampleOptions,
        ),
      /unknown sampling option\(s\) stepz/,
    );
    throws(
      () =>
        task.sample(
          new Int32Array(1),
          new Rng(0),
          { sampler: "plms" } as unknown as DdpmSampleOptions,
        ),
      /sampler must be "ddpm" or "ddim"/,
    );
    throws(
      () => task.sample(new Int32Array(1), new Rng(0), { sampler: "ddim", steps: 50 }),
      /DDIM steps must be an integer in 1..20, got 50/,
    );
    task.dispose();
  },
  { only: ["tfjs-cpu"] },
);

Deno.test("sampleBatchSize() shrinks with image size, attention and guidance, within 1..256", () => {
  const at = (preset: DdpmConfig["preset"], imageSize: number, guidance = 1) =>
    sampleBatchSize({ ...DEFAULT_DDPM_CONFIG, preset, imageSize }, guidance);
  const unet32 = at("unet-3x", 32);
  assert(unet32 >= 16 && unet32 <= 128, `${unet32}`);
  assert(at("unet-3x", 64) < unet32 / 8, "attention memory grows with (HW)^2");
  equal(at("unet-3x", 32, 3), Math.floor(unet32 / 2));
  assert(at("convnet", 32) > unet32, "no attention matrix");
  equal(at("convnet", 8), 256);
  equal(at("unet-3x", 256), 1);
});

testEachBackend("bitsPerDim() of a task scores data it was trained on better than noise", (b) => {
  const task = createDdpmTask(b, { ...tiny, timesteps: 10 }, new Rng(20));
  const batch = fixedBatch(8);
  for (let i = 0; i < 40; i++) task.step(batch, new Rng(21 + i), 0);
  const trained = task.bitsPerDim([batch], new Rng(3));
  const noise: Batch = { ...batch, images: new Rng(4).uniformArray(8 * 16, -1, 1) };
  const constant: Batch = { ...batch, images: new Float32Array(8 * 16).fill(0.5) };
  equal(trained.images, 8);
  assert(trained.total > trained.prior && Number.isFinite(trained.total), JSON.stringify(trained));
  const random = task.bitsPerDim([noise], new Rng(3));
  const flat = task.bitsPerDim([constant], new Rng(3));
  assert(trained.total < random.total, `trained ${trained.total} vs noise ${random.total}`);
  assert(trained.total < flat.total, `trained ${trained.total} vs constant ${flat.total}`);
  throws(() => task.bitsPerDim([noise], new Rng(3), { timestepStride: 10 }), /timestepStride/);
  task.dispose();
}, { only: ["tfjs-cpu"] });

testEachBackend(
  "step() trains a small U-Net (attention, bilinear up, skips) on a fixed batch",
  (b) => {
    const task = createDdpmTask(
      b,
      {
        ...tiny,
        preset: "unet-2xud-half",
        baseWidth: 8,
        imageSize: 8,
        channels: 3,
        numClasses: 2,
        lr: 3e-3,
      },
      new Rng(30),
    );
    const rng = new Rng(31);
    const batch: Batch = {
      images: rng.uniformArray(4 * 3 * 64, -1, 1),
      labels: Int32Array.from([0, 1, 0, 1]),
      shape: [4, 3, 8, 8],
    };
    const losses: number[] = [];
    for (let i = 0; i < 15; i++) losses.push(task.step(batch, new Rng(32), 0).loss);
    assert(losses[14] < 0.7 * losses[0], `${losses[0]} -> ${losses[14]}`);
    const images = task.sample(Int32Array.from([0, 1]), new Rng(33), { sampler: "ddim", steps: 3 });
    equal(images.length, 2 * 3 * 64);
    assert(images.every((v) => v >= -1 && v <= 1));
    task.dispose();
  },
  { only: ["torch-cpu", "tfjs-wasm"] },
);

Deno.test({
  name: "a seeded U-Net training run gives the same losses on torch-cpu and tfjs-wasm",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const available = (await listBackends()).filter((i) => i.available).map((i) => i.name);
    const pair = ["torch-cpu", "tfjs-wasm"] as const;
    if (!pair.every((name) => available.includes(name))) {
      console.log(`skipped: needs ${pair.join(" and ")}, have ${available.join(", ")}`);
      return;
    }
    const curves: number[][] = [];
    for (const name of pair) {
      const b = await createBackend(name);
      const task = createDdpmTask(
        b,
        { ...tiny, preset: "unet-2xud-half", baseWidth: 8, imageSize: 8, channels: 3, lr: 1e-3 },
        new Rng(40),
      );
      const rng = new Rng(41);
      const curve: number[] = [];
      for (let i = 0; i < 5; i++) {
        const batch: Batch = {
          images: rng.uniformArray(2 * 3 * 64, -1, 1),
          labels: new Int32Array(2),
          shape: [2, 3, 8, 8],
        };
        curve.push(task.step(batch, rng, 0).loss);
      }
      curves.push(curve);
      task.dispose();
      b.dispose();
    }
    await t.step("losses agree to 1e-3 relative", () => {
      curves[0].forEach((v, i) =>
        assert(Math.abs(v - curves[1][i]) < 1e-3 * Math.abs(v), `${curves[0]} vs ${curves[1]}`)
      );
    });
  },
});
