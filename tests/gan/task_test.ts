import { deepEqual, ok, throws } from "node:assert/strict";
import { Rng } from "../../src/core/rng.ts";
import {
  createGanTask,
  type GanConfig,
  type GanTask,
  resolveGanConfig,
} from "../../src/gan/task.ts";
import type { Batch } from "../../src/data/batch.ts";
import { testEachBackend } from "../_backends.ts";
import { decode, loadStepFixture, maxAbsDiff, toHostTensors } from "./_dcgan_fixture.ts";

const SMALL: Partial<GanConfig> = { nz: 16, ngf: 8, ndf: 8 };
const PIXELS = 32 * 32;

/**
 * Two fixed 8x8 patterns tiled over 32x32, the same on all three channels: horizontal stripes
 * (label 0) and vertical stripes (label 1), 4 pixels at +0.8 then 4 at -0.8.
 */
const PATTERNS = [0, 1].map((label) => {
  const image = new Float32Array(3 * PIXELS);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        image[c * PIXELS + y * 32 + x] = (label === 0 ? y : x) % 8 < 4 ? 0.8 : -0.8;
      }
    }
  }
  return image;
});

/** A batch of pattern images; the label says which pattern. */
function twoPatternBatch(rng: Rng, size: number): Batch {
  const labels = rng.intArray(size, 0, 2);
  const images = new Float32Array(size * 3 * PIXELS);
  labels.forEach((label, i) => images.set(PATTERNS[label], i * 3 * PIXELS));
  return { images, labels, shape: [size, 3, 32, 32] };
}

/** Pearson correlation of each image in `images` [n, 3, 32, 32] with each pattern: [n][2]. */
function patternCorrelations(images: Float32Array): number[][] {
  const n = images.length / (3 * PIXELS);
  const out: number[][] = [];
  for (let i = 0; i < n; i++) {
    const image = images.subarray(i * 3 * PIXELS, (i + 1) * 3 * PIXELS);
    const mean = image.reduce((a, b) => a + b, 0) / image.length;
    out.push(PATTERNS.map((pattern) => {
      // The patterns have mean 0, so only the image needs centring.
      let xy = 0;
      let xx = 0;
      let yy = 0;
      for (let j = 0; j < image.length; j++) {
        const x = image[j] - mean;
        xy += x * pattern[j];
        xx += x * x;
        yy += pattern[j] * pattern[j];
      }
      return xx > 0 ? xy / Math.sqrt(xx * yy) : 0;
    }));
  }
  return out;
}

function train(task: GanTask, steps: number, batchSize: number, seed: number): void {
  const dataRng = new Rng(seed);
  const stepRng = new Rng(seed + 1);
  for (let s = 0; s < steps; s++) {
    task.step(twoPatternBatch(dataRng, batchSize), stepRng, s / steps);
  }
}

Deno.test("resolveGanConfig() fills the tutorial's defaults and names what is wrong", () => {
  const config = resolveGanConfig();
  deepEqual(config.lr, 2e-4);
  deepEqual([config.beta1, config.beta2], [0.5, 0.999]);
  deepEqual([config.nz, config.ngf, config.ndf, config.embedDim], [100, 64, 64, 0]);
  deepEqual(resolveGanConfig({ numClasses: 10 }).embedDim, 10);
  deepEqual(resolveGanConfig({ numClasses: 10, embedDim: 4 }).embedDim, 4);
  throws(
    () => resolveGanConfig({ imageSize: 64 }),
    /built for 32x32 images, got imageSize 64/,
  );
  throws(() => resolveGanConfig({ dNoise: -0.1 }), /dNoise must be a finite number >= 0/);
  throws(() => resolveGanConfig({ beta1: 1 }), /beta1 must be in \(0, 1\)/);
  throws(() => resolveGanConfig({ preset: "big" as "dcgan" }), /unknown DCGAN preset "big"/);
});

testEachBackend(
  "createGanTask() meets the TrainTask contract: kind, stores, optimizers, config",
  (backend) => {
    const config = resolveGanConfig({ ...SMALL, numClasses: 3, smooth: true, dNoise: 0.1 });
    const task = createGanTask(backend, config, new Rng(0));
    try {
      deepEqual(task.kind, "gan");
      deepEqual(Object.keys(task.stores), ["generator", "discriminator"]);
      deepEqual(Object.keys(task.optimizers), ["generator", "discriminator"]);
      deepEqual(task.imageShape, [3, 32, 32]);
      deepEqual(task.numClasses, 3);
      deepEqual(resolveGanConfig(JSON.parse(JSON.stringify(task.config))), config);
      deepEqual([...task.previewLabels(48, 8)].slice(0, 17), [...new Array(16).fill(0), 1]);
      ok(task.stores.generator.names().includes("label_emb.weight"));
    } finally {
      task.dispose();
    }
  },
);

testEachBackend(
  "step() reproduces one PyTorch tutorial step: metrics, weights, running statistics, eval samples",
  (backend) => {
    const fixture = loadStepFixture();
    const task = createGanTask(backend, resolveGanConfig({ ...fixture.config }), new Rng(0));
    try {
      for (const net of ["generator", "discriminator"] as const) {
        task.stores[net].load(toHostTensors(fixture.initial[net]));
      }
      const z = decode(fixture.z);
      // Hands the fixture's z to the task where it would draw N(0, 1) noise (dNoise is 0).
      const fixedNoise = {
        normal(n: number) {
          deepEqual(n, z.length);
          return z.slice();
        },
      } as unknown as Rng;
      const labels = Int32Array.from(fixture.labels);
      const batch: Batch = {
        images: decode(fixture.real),
        labels,
        shape: fixture.real.shape as [number, number, number, number],
      };
      const metrics = task.step(batch, fixedNoise, 0);
      console.log("ours", metrics, "torch", fixture.metrics);
      // lossG comes after D's Adam update, which inherits the tiny-gradient sign flips below.
      const tolerance = { lossD: 1e-5, dReal: 1e-5, dFake: 1e-5, lossG: 1e-4 };
      for (const key of ["lossD", "lossG", "dReal", "dFake"] as const) {
        ok(
          Math.abs(metrics[key] - fixture.metrics[key]) < tolerance[key],
          `${key}: ${metrics[key]}`,
        );
      }
      // Adam's first step moves every weight by about lr * sign(grad), so a weight whose PyTorch
      // gradient is below 1e-6 (float32 noise level here) may legitimately move the other way.
      let checked = 0;
      let tinyGradientFlips = 0;
      for (const net of ["generator", "discriminator"] as const) {
        const ours = task.stores[net].toHost();
        for (const [name, expected] of toHostTensors(fixture.after[net])) {
          const actual = ours.get(name)!.data;
          const grad = fixture.grads[net][name] ? decode(fixture.grads[net][name]) : null;
          for (let i = 0; i < actual.length; i++) {
            checked++;
            if (Math.abs(actual[i] - expected.data[i]) <= 2e-5) continue;
            ok(
              grad && Math.abs(grad[i]) < 1e-6,
              `${net} ${name}[${i}]: ${actual[i]} vs ${expected.data[i]}`,
            );
            tinyGradientFlips++;
          }
        }
      }
      console.log(
        `${checked} values after the step; ${tinyGradientFlips} differ where |grad| < 1e-6`,
      );
      ok(tinyGradientFlips < checked / 1000);
      // Image i's z is row i of the fixture's z.
      const nz = z.length / labels.length;
      const rowNoise = {
        stream: (i: number) => ({ normal: () => z.slice(i * nz, (i + 1) * nz) }) as unknown as Rng,
      };
      const samples = task.sample(labels, rowNoise);
      const diff = maxAbsDiff(samples, decode(fixture.generatorEvalOutputAfter));
      ok(diff < 1e-4, `eval-mode samples differ by ${diff}`);
    } finally {
      task.dispose();
    }
  },
);

testEachBackend(
  "sample() with a fixed seed is reproducible, chunk-independent and changes no weights",
  (backend) => {
    const task = createGanTask(backend, resolveGanConfig({ ...SMALL, numClasses: 2 }), new Rng(3));
    try {
      train(task, 2, 8, 10); // running statistics away from their initial 0 / 1
      const before = task.stores.generator.toHost();
      const labels = task.previewLabels(10, 5);
      const a = task.sample(labels, new Rng(5));
      const b = task.sample(labels, new Rng(5), { batchSize: 3 });
      deepEqual(a.length, 10 * 3 * PIXELS);
      ok(maxAbsDiff(a, b) < 1e-6, `chunked sampling differs by ${maxAbsDiff(a, b)}`);
      deepEqual(task.sample(labels, new Rng(5)), a);
      // Other noise, other images (eval-mode outputs of a barely trained G are small, so the
      // difference is measured against their own scale).
      const scale = maxAbsDiff(a, new Float32Array(a.length));
      ok(maxAbsDiff(a, task.sample(labels, new Rng(6))) > 0.1 * scale);
      for (const [name, t] of task.stores.generator.toHost()) {
        deepEqual(t.data, before.get(name)!.data, name);
      }
      throws(
        () => task.sample(Int32Array.from([0, 2]), new Rng(1)),
        /label 2 is outside the model's 2 classes/,
      );
    } finally {
      task.dispose();
    }
  },
);

testEachBackend(
  "step() is deterministic under a seed and keeps the live-tensor count flat",
  (backend) => {
    const config = resolveGanConfig({ ...SMALL, smooth: true, dNoise: 0.1 });
    const run = () => {
      const task = createGanTask(backend, config, new Rng(4));
      const dataRng = new Rng(8);
      const stepRng = new Rng(9);
      const metrics = [];
      const live: number[] = [];
      for (let s = 0; s < 6; s++) {
        metrics.push(task.step(twoPatternBatch(dataRng, 8), stepRng, s / 6));
        live.push(backend.liveTensors());
      }
      task.dispose();
      return { metrics, live };
    };
    const first = run();
    const second = run();
    deepEqual(second.metrics, first.metrics);
    for (const m of first.metrics) {
      ok(
        m.dReal > 0 && m.dReal < 1 && m.dFake > 0 && m.dFake < 1 && m.lossD > 0 && m.lossG > 0,
      );
    }
    deepEqual(new Set(first.live.slice(1)).size, 1, `live tensors ${first.live}`);
    throws(
      () => {
        const task = createGanTask(backend, config, new Rng(4));
        try {
          task.step({ ...twoPatternBatch(new Rng(1), 2), shape: [2, 3, 16, 16] }, new Rng(1), 0);
        } finally {
          task.dispose();
        }
      },
      /GAN batch must be \[B, 3, 32, 32\], got \[2, 3, 16, 16\]/,
    );
  },
);

/*
 * End to end. The criterion is scale-free (Pearson correlation with the nearest pattern) on
 * purpose: the tutorial's discriminator (bias-free convolutions, LeakyReLU, BatchNorm on each
 * batch) is blind to the overall scale of a batch of images, so a short run learns the shapes
 * of the data long before their full +-0.8 amplitude (PyTorch's own modules behave the same;
 * see bench/reference/dcgan.py). Learning rate 2e-3 instead of 2e-4 keeps the runs short.
 * The tfjs-cpu backend is left out: it is several times slower than wasm and runs the same code.
 */
const E2E: Partial<GanConfig> = { ...SMALL, lr: 2e-3 };
const E2E_BACKENDS = ["torch-cuda", "torch-cpu", "tfjs-wasm"] as const;
const E2E_BATCH = 32;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

testEachBackend(
  "a short seeded run moves G's samples onto the two patterns: correlation with the nearest rises from ~0 to > 0.6",
  (backend) => {
    const steps = 150;
    const task = createGanTask(backend, resolveGanConfig(E2E), new Rng(11));
    try {
      const correlations = () => patternCorrelations(task.sample(new Int32Array(64), new Rng(12)));
      const before = mean(correlations().map((c) => Math.max(...c)));
      train(task, steps, E2E_BATCH, 20);
      const after = correlations();
      const nearest = mean(after.map((c) => Math.max(...c)));
      const horizontal = after.filter(([h, v]) => h > v).length;
      console.log(
        `mean correlation with the nearest pattern: ${before.toFixed(3)} -> ${nearest.toFixed(3)}` +
          ` after ${steps} steps; ${horizontal}/64 samples horizontal, ${64 - horizontal} vertical`,
      );
      ok(before < 0.2, `untrained G already correlates ${before} with the data`);
      ok(nearest > 0.6, `correlation only reached ${nearest}`);
      // Both modes of the data appear (no collapse onto one pattern).
      ok(horizontal >= 8 && horizontal <= 56, `${horizontal}/64 horizontal`);
    } finally {
      task.dispose();
    }
  },
  { only: E2E_BACKENDS },
);

testEachBackend(
  "a short seeded conditional run lets the label select the pattern",
  (backend) => {
    const steps = 100;
    const task = createGanTask(backend, resolveGanConfig({ ...E2E, numClasses: 2 }), new Rng(13));
    try {
      const labels = task.previewLabels(64, 8); // 32 of class 0, then 32 of class 1
      const own = (c: number[][]) => mean(c.map((x, i) => x[labels[i]]));
      const before = own(patternCorrelations(task.sample(labels, new Rng(14))));
      train(task, steps, E2E_BATCH, 30);
      const after = patternCorrelations(task.sample(labels, new Rng(14)));
      const matching = after.filter((x, i) => x[labels[i]] > x[1 - labels[i]]).length;
      console.log(
        `mean correlation with the label's pattern: ${before.toFixed(3)} -> ${
          own(after).toFixed(3)
        }` +
          ` after ${steps} steps; ${matching}/64 samples closer to their label's pattern`,
      );
      ok(matching >= 60, `only ${matching}/64 samples follow their label`);
      ok(own(after) > 0.8, `correlation with the label's pattern only ${own(after)}`);
    } finally {
      task.dispose();
    }
  },
  { only: E2E_BACKENDS },
);
