/**
 * End to end: a small DDPM trained briefly on a synthetic data set of fixed 8x8 patterns must
 * generate samples that are (almost all) those patterns, covering both classes; conditioned on a
 * label it must draw that label's patterns. This checks training and sampling are right, not
 * only that they run.
 */
import { ok as assert } from "node:assert/strict";
import type { Backend } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import {
  createDdpmTask,
  type DdpmConfig,
  type DdpmSampleOptions,
  DEFAULT_DDPM_CONFIG,
} from "../../src/diffusion/task.ts";
import type { Batch } from "../../src/data/batch.ts";
import { testEachBackend } from "../_backends.ts";

const SIZE = 8;
const PIXELS = SIZE * SIZE;

/** Four +-1 patterns: class 0 = vertical halves (and negation), class 1 = horizontal halves. */
function patterns(): { image: Float32Array; label: number }[] {
  const vertical = Float32Array.from({ length: PIXELS }, (_, i) => (i % SIZE < SIZE / 2 ? 1 : -1));
  const horizontal = Float32Array.from({ length: PIXELS }, (_, i) => (i < PIXELS / 2 ? 1 : -1));
  const negate = (a: Float32Array) => a.map((v) => -v);
  return [
    { image: vertical, label: 0 },
    { image: negate(vertical), label: 0 },
    { image: horizontal, label: 1 },
    { image: negate(horizontal), label: 1 },
  ];
}

function randomBatch(rng: Rng, size: number): Batch {
  const all = patterns();
  const images = new Float32Array(size * PIXELS);
  const labels = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    const p = all[rng.int(0, all.length)];
    images.set(p.image, i * PIXELS);
    labels[i] = p.label;
  }
  return { images, labels, shape: [size, 1, SIZE, SIZE] };
}

/** For each sample: the class of the nearest pattern, or -1 when none is close (mean |diff| > 0.25). */
function classify(samples: Float32Array): number[] {
  const all = patterns();
  const out: number[] = [];
  for (let s = 0; s < samples.length / PIXELS; s++) {
    let best = Infinity;
    let label = -1;
    for (const p of all) {
      let d = 0;
      for (let i = 0; i < PIXELS; i++) d += Math.abs(samples[s * PIXELS + i] - p.image[i]);
      d /= PIXELS;
      if (d < best) [best, label] = [d, p.label];
    }
    out.push(best <= 0.25 ? label : -1);
  }
  return out;
}

const config: DdpmConfig = {
  ...DEFAULT_DDPM_CONFIG,
  preset: "convnet",
  baseWidth: 16,
  schedule: "cosine",
  timesteps: 100,
  imageSize: SIZE,
  channels: 1,
  lr: 2e-3,
  ema: 0.99,
  emaStart: 100,
  gradClip: 1,
};

function train(b: Backend, numClasses: number, steps: number) {
  const task = createDdpmTask(
    b,
    { ...config, numClasses, cfgDrop: numClasses ? 0.1 : 0 },
    new Rng(11),
  );
  const rng = new Rng(12);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push(task.step(randomBatch(rng, 32), rng, i / steps).loss);
  return { task, losses };
}

// torch-cpu only: the tfjs backends take 5-10x longer per step on these 2-core machines, which
// would put this file far over its time budget; the same code paths run on tfjs in
// task_test.ts and sampler_test.ts with fewer steps.

testEachBackend(
  "a DDPM trained on 8x8 patterns generates those patterns, both classes (unconditional)",
  (b) => {
    const { task, losses } = train(b, 0, 800);
    const early = losses.slice(0, 20).reduce((a, v) => a + v) / 20;
    const late = losses.slice(-50).reduce((a, v) => a + v) / 50;
    assert(late < 0.5 * early, `loss ${early} -> ${late}`);
    const found = classify(task.sample(new Int32Array(64), new Rng(13), { sampler: "ddpm" }));
    const close = found.filter((c) => c >= 0).length;
    const perClass = [0, 1].map((c) => found.filter((f) => f === c).length);
    assert(
      close >= 0.9 * 64,
      `only ${close}/64 samples are close to a pattern (classes ${perClass})`,
    );
    assert(perClass.every((n) => n >= 8), `classes not both represented: ${perClass}`);
    task.dispose();
  },
  { only: ["torch-cpu"] },
);

testEachBackend("a class-conditional DDPM draws the patterns of the requested label", (b) => {
  const { task } = train(b, 2, 800);
  const labels = Int32Array.from({ length: 64 }, (_, i) => i % 2);
  for (
    const options of [
      { sampler: "ddpm" },
      { sampler: "ddim", steps: 20, eta: 0, guidance: 2 },
    ] satisfies DdpmSampleOptions[]
  ) {
    const found = classify(task.sample(labels, new Rng(14), options));
    const right = found.filter((c, i) => c === labels[i]).length;
    assert(
      right >= 0.9 * 64,
      `${JSON.stringify(options)}: ${right}/64 match their label (${found})`,
    );
  }
  task.dispose();
}, { only: ["torch-cpu"] });
