import assert from "node:assert/strict";
import { testEachBackend } from "../_backends.ts";
import type { Backend } from "../../src/backend/backend.ts";
import { createTask, openCheckpoint } from "../../src/app/registry.ts";
import { train, type TrainOptions } from "../../src/train/trainer.ts";
import { Dataset } from "../../src/data/dataset.ts";
import { CheckpointError, loadCheckpoint } from "../../src/train/checkpoint.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { type DdpmConfig, DEFAULT_DDPM_CONFIG } from "../../src/diffusion/task.ts";
import { decodeGif } from "../../src/io/gif.ts";
import { decodeImageFile } from "../../src/io/image.ts";
import { assertSamePixels, readApng } from "../io/_apng_reader.ts";

/** 16 images of 32x32: class 0 solid dark red, class 1 solid light blue. */
function twoColours(): Dataset {
  const n = 16;
  const per = 3 * 32 * 32;
  const images = new Uint8Array(n * per);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const rgb = i % 2 === 0 ? [200, 20, 20] : [60, 120, 240];
    for (let c = 0; c < 3; c++) images.fill(rgb[c], i * per + c * 1024, i * per + (c + 1) * 1024);
  }
  return new Dataset({ images, labels, imageShape: [3, 32, 32], classNames: ["red", "blue"] });
}

const tinyGan = { ...DEFAULT_GAN_CONFIG, nz: 8, ngf: 4, ndf: 4, smooth: true, dNoise: 0.2 };

function options(
  runDir: string,
  backend: Backend,
  extra: Partial<TrainOptions> = {},
): TrainOptions {
  return {
    runDir,
    batchSize: 4,
    epochs: 3,
    seed: 7,
    flip: true,
    logEvery: 1,
    checkpointEvery: 0,
    previewEvery: 1,
    previewCount: 8,
    gif: true,
    backendName: backend.name,
    report: () => {},
    ...extra,
  };
}

async function logLines(runDir: string): Promise<Record<string, number>[]> {
  const text = await Deno.readTextFile(`${runDir}/log.jsonl`);
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

testEachBackend(
  "train() interrupted at step 6 and resumed equals an uninterrupted run",
  async (b) => {
    const root = await Deno.makeTempDir();
    try {
      const data = twoColours();
      const straight = createTask(b, { kind: "gan", config: tinyGan }, 1);
      await train(straight, data, options(`${root}/straight`, b));
      const expected = straight.stores.generator.toHost();
      straight.dispose();

      // Abort once the 6th batch has been assembled: the 6th step runs, then the trainer stops.
      const controller = new AbortController();
      let batches = 0;
      class CountingDataset extends Dataset {
        override batchAt(...args: Parameters<Dataset["batchAt"]>) {
          if (++batches === 6) controller.abort();
          return super.batchAt(...args);
        }
      }
      const counting = new CountingDataset({
        images: data.images(),
        labels: data.labels(),
        imageShape: data.imageShape,
        classNames: data.classNames,
      });
      const first = createTask(b, { kind: "gan", config: tinyGan }, 1);
      const partial = await train(
        first,
        counting,
        options(`${root}/resumed`, b, { signal: controller.signal }),
      );
      first.dispose();
      assert.equal(partial.interrupted, true);
      assert.equal(partial.step, 6);
      assert.equal((await loadCheckpoint(`${root}/resumed`)).state.step, 6);
      // Stopped mid-epoch (6 of 8 steps into epoch 2): a final grid, and the GIF ends with it.
      await Deno.stat(`${root}/resumed/samples/step-00000006.png`);
      assert.equal(decodeGif(await Deno.readFile(`${root}/resumed/progress.gif`)).length, 2);

      const second = createTask(b, { kind: "gan", config: tinyGan }, 99); // different init: the checkpoint must overwrite it
      const done = await train(second, data, options(`${root}/resumed`, b, { resume: true }));
      assert.equal(done.step, 12);
      const actual = second.stores.generator.toHost();
      second.dispose();

      for (const [name, t] of expected) {
        assert.deepEqual(
          actual.get(name)!.data,
          t.data,
          `generator weight ${name} differs after resume`,
        );
      }
      const a = await logLines(`${root}/straight`);
      const r = await logLines(`${root}/resumed`);
      assert.equal(r.length, 12);
      assert.deepEqual(
        r.map((l) => [l.step, l.lossD, l.lossG]),
        a.map((l) => [l.step, l.lossD, l.lossG]),
      );

      const gif = decodeGif(await Deno.readFile(`${root}/straight/progress.gif`));
      assert.equal(gif.length, 3, "one GIF frame per epoch preview");
      // The resumed run's GIF has the mid-epoch frame between epochs 1 and 2, in step order.
      const frames = decodeGif(await Deno.readFile(`${root}/resumed/progress.gif`));
      assert.equal(frames.length, 4);
      const step6 = await decodeImageFile(`${root}/resumed/samples/step-00000006.png`);
      const epoch2 = await decodeImageFile(`${root}/resumed/samples/epoch-0002.png`);
      const distance = (a: Uint8Array, b: Uint8Array) =>
        a.reduce((sum, v, i) => sum + Math.abs(v - b[i]), 0) / a.length;
      assert.ok(
        distance(frames[1].data, step6.data) <= distance(frames[1].data, epoch2.data),
        "frame 2 is the step-6 grid",
      );
      // progress.png: the same four frames, each the PNG grid's pixels exactly (GIF's 256 colours
      // a frame only approximate them).
      const apng = readApng(await Deno.readFile(`${root}/resumed/progress.png`));
      const grids = ["epoch-0001", "step-00000006", "epoch-0002", "epoch-0003"];
      const pngs = await Promise.all(
        grids.map((n) => decodeImageFile(`${root}/resumed/samples/${n}.png`)),
      );
      assert.equal(apng.frames.length, pngs.length);
      apng.frames.forEach((f, k) => assertSamePixels(f.data, pngs[k].data, grids[k]));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
  { only: ["torch-cpu", "tfjs-wasm"] },
);

testEachBackend(
  "a DDPM run (with EMA) stopped after its step-4 checkpoint and resumed equals an uninterrupted run",
  async (b) => {
    const root = await Deno.makeTempDir();
    try {
      const data = twoColours();
      // EMA from step 2, so the checkpoint must carry both the weights and their average.
      const config: DdpmConfig = {
        ...DEFAULT_DDPM_CONFIG,
        preset: "convnet",
        baseWidth: 8,
        timesteps: 50,
        ema: 0.9,
        emaStart: 2,
      };
      const ddpmOptions = (runDir: string, extra: Partial<TrainOptions> = {}) =>
        options(runDir, b, { epochs: 2, previewEvery: 0, gif: false, ...extra });
      const straight = createTask(b, { kind: "ddpm", config }, 1);
      await train(straight, data, ddpmOptions(`${root}/straight`));
      const expected = straight.stores.ema.toHost();
      straight.dispose();

      const first = createTask(b, { kind: "ddpm", config }, 1);
      await train(first, data, ddpmOptions(`${root}/resumed`, { maxSteps: 4 }));
      first.dispose();
      const second = createTask(b, { kind: "ddpm", config }, 5); // other init: the checkpoint must win
      const done = await train(second, data, ddpmOptions(`${root}/resumed`, { resume: true }));
      assert.equal(done.step, 8);
      const actual = second.stores.ema.toHost();
      second.dispose();
      for (const [name, t] of expected) {
        assert.deepEqual(actual.get(name)!.data, t.data, `EMA weight ${name} differs after resume`);
      }
      const a = await logLines(`${root}/straight`);
      const r = await logLines(`${root}/resumed`);
      assert.deepEqual(r.map((l) => [l.step, l.loss]), a.map((l) => [l.step, l.loss]));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
  { only: ["torch-cpu", "tfjs-wasm"] },
);

testEachBackend("a corrupt or mismatched checkpoint gives a clear error", async (b) => {
  const root = await Deno.makeTempDir();
  try {
    const data = twoColours();
    const task = createTask(b, { kind: "gan", config: tinyGan }, 1);
    await train(task, data, options(`${root}/run`, b, { epochs: 1, previewEvery: 0, gif: false }));
    task.dispose();

    const wider = createTask(b, { kind: "gan", config: { ...tinyGan, ngf: 8 } }, 1);
    await assert.rejects(
      () => train(wider, data, options(`${root}/run`, b, { resume: true })),
      (e: Error) =>
        e instanceof CheckpointError && /does not fit this model/.test(e.message) &&
        /\[/.test(e.message),
    );
    wider.dispose();

    await assert.rejects(
      () => openCheckpoint(b, `${root}/run`, "ddpm"),
      (e: Error) => e instanceof CheckpointError && /holds a GAN model/.test(e.message),
    );

    const path = `${root}/run/checkpoint.safetensors`;
    const bytes = await Deno.readFile(path);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 100));
    await assert.rejects(
      () => loadCheckpoint(`${root}/run`),
      (e: Error) => e instanceof CheckpointError && e.message.includes(path),
    );
    await assert.rejects(
      () => loadCheckpoint(`${root}/missing`),
      (e: Error) => e instanceof CheckpointError && /no checkpoint at/.test(e.message),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}, { only: ["torch-cpu", "tfjs-cpu"] });

testEachBackend(
  "train() stopped by --max-seconds mid-epoch writes a final grid and logs the GAN's D noise",
  async (b) => {
    const root = await Deno.makeTempDir();
    try {
      const task = createTask(b, { kind: "gan", config: tinyGan }, 1);
      const result = await train(task, twoColours(), options(root, b, { maxSeconds: 0 }));
      task.dispose();
      assert.equal(result.step, 1);
      await Deno.stat(`${root}/samples/step-00000001.png`);
      assert.equal(decodeGif(await Deno.readFile(`${root}/progress.gif`)).length, 1);
      const [frame] = readApng(await Deno.readFile(`${root}/progress.png`)).frames;
      const grid = await decodeImageFile(`${root}/samples/step-00000001.png`);
      assertSamePixels(frame.data, grid.data, "progress.png frame 0");
      const [line] = await logLines(root);
      // The first step's sigma: 0.2 annealed by progress 0 of 12 steps.
      assert.equal(line.dNoise, 0.2);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
  { only: ["torch-cpu"] },
);
