import assert from "node:assert/strict";
import { testEachBackend } from "../_backends.ts";
import type { Backend } from "../../src/backend/backend.ts";
import { createTask } from "../../src/app/registry.ts";
import { train, type TrainOptions } from "../../src/train/trainer.ts";
import { Dataset } from "../../src/data/dataset.ts";
import { loadCheckpoint } from "../../src/train/checkpoint.ts";
import { DEFAULT_DDPM_CONFIG } from "../../src/diffusion/task.ts";
import type { TrainTask } from "../../src/task/task.ts";

// Issue 17, class 3: a loss that turns NaN stops the run with a checkpoint of the last finite
// step (or, with "skip", leaves the batch out), instead of training on to NaN weights.

function solidImages(n = 8): Dataset {
  const per = 3 * 8 * 8;
  const images = new Uint8Array(n * per);
  for (let i = 0; i < images.length; i++) images[i] = (i * 37) % 251;
  return new Dataset({
    images,
    labels: new Int32Array(n),
    imageShape: [3, 8, 8],
    classNames: ["a"],
  });
}

const tinyDdpm = {
  kind: "ddpm" as const,
  config: {
    ...DEFAULT_DDPM_CONFIG,
    preset: "convnet" as const,
    baseWidth: 4,
    timesteps: 20,
    imageSize: 8,
    emaStart: 0,
  },
};

/** `task` with NaN written into the batch images of the steps in `poisoned` (0-based). */
function poison<T extends TrainTask>(task: T, poisoned: Set<number>): T {
  let calls = 0;
  const step: TrainTask["step"] = (batch, rng, progress) => {
    const images = poisoned.has(calls++) ? batch.images.map(() => NaN) : batch.images;
    return task.step({ ...batch, images }, rng, progress);
  };
  return { ...task, step };
}

function options(runDir: string, backend: Backend, extra: Partial<TrainOptions> = {}) {
  return {
    runDir,
    batchSize: 2,
    epochs: 2,
    seed: 3,
    flip: false,
    logEvery: 1,
    checkpointEvery: 0,
    previewEvery: 0,
    backendName: backend.name,
    report: () => {},
    ...extra,
  } satisfies TrainOptions;
}

async function weights(runDir: string): Promise<Map<string, Float32Array>> {
  const ckpt = await loadCheckpoint(runDir);
  return new Map([...ckpt.tensors].map(([k, t]) => [k, t.data]));
}

testEachBackend("a NaN loss at step 4 stops with the step-3 checkpoint, exactly", async (b) => {
  const root = await Deno.makeTempDir();
  try {
    const data = solidImages();
    const reference = createTask(b, tinyDdpm, 1);
    await train(reference, data, options(`${root}/ref`, b, { maxSteps: 3 }));
    reference.dispose();

    const task = createTask(b, tinyDdpm, 1);
    const lines: string[] = [];
    const result = await train(
      poison(task, new Set([3])),
      data,
      options(`${root}/nan`, b, { report: (l) => lines.push(l) }),
    );
    task.dispose();
    assert.deepEqual(result.nonfinite, { step: 4, metric: "loss", value: NaN });
    assert.equal(result.step, 3);
    assert.match(lines.at(-1)!, /stopped: loss is NaN at step 4; checkpoint of step 3/);
    const [ref, got] = [await weights(`${root}/ref`), await weights(`${root}/nan`)];
    assert.deepEqual([...got.keys()], [...ref.keys()]);
    for (const [name, values] of ref) assert.deepEqual(got.get(name), values, name);
    const state = (await loadCheckpoint(`${root}/nan`)).state;
    assert.deepEqual(state.rng, (await loadCheckpoint(`${root}/ref`)).state.rng);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}, { only: ["torch-cpu", "tfjs-cpu"] });

testEachBackend(
  "with onNonfinite 'skip' a NaN batch leaves weights and Adam untouched",
  async (b) => {
    const root = await Deno.makeTempDir();
    try {
      const task = createTask(b, tinyDdpm, 1);
      const poisoned = poison(task, new Set([1, 2]));
      const result = await train(
        poisoned,
        solidImages(),
        options(`${root}/skip`, b, { maxSteps: 4, onNonfinite: "skip" }),
      );
      task.dispose();
      assert.equal(result.step, 4);
      assert.equal(result.skippedSteps, 2);
      assert.equal(result.nonfinite, undefined);
      const ckpt = await loadCheckpoint(`${root}/skip`);
      assert.deepEqual(ckpt.state.optimizerSteps, { model: 2 });
      for (const [name, t] of ckpt.tensors) {
        assert.ok(t.data.every(Number.isFinite), `${name} holds a non-finite value`);
      }
      const log = (await Deno.readTextFile(`${root}/skip/log.jsonl`)).trim().split("\n");
      assert.equal(JSON.parse(log.at(-1)!).skipped_steps, 2);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
  { only: ["torch-cpu"] },
);
