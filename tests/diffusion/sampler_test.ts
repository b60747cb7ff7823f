import { deepEqual, equal, notDeepEqual, ok as assert, throws } from "node:assert/strict";
import type { Backend, Tensor } from "../../src/backend/backend.ts";
import { imageNoise, offsetNoise, Rng } from "../../src/core/rng.ts";
import { toUint8Images } from "../../src/io/png.ts";
import { DiffusionProcess } from "../../src/diffusion/process.ts";
import { ddimTimesteps, sampleImages } from "../../src/diffusion/sampler.ts";
import { makeSchedule } from "../../src/diffusion/schedule.ts";
import { createDenoiser } from "../../src/models/denoiser.ts";
import { testEachBackend } from "../_backends.ts";

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * The Bayes-optimal noise prediction when x_0 ~ N(mu, s^2) per pixel:
 * E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar). With s = 0 the data
 * is the point mass at mu.
 */
function gaussianDataOracle(b: Backend, process: DiffusionProcess, mu: number, s: number) {
  const { alphaBar } = process.schedule;
  const coef = Float32Array.from(alphaBar, (a) => Math.sqrt(1 - a) / (a * s * s + 1 - a));
  const shift = Float32Array.from(alphaBar, (a) => Math.sqrt(a) * mu);
  const coefT = b.variable(b.tensor(coef, [coef.length]), false);
  const shiftT = b.variable(b.tensor(shift, [shift.length]), false);
  return (xt: Tensor, t: Tensor) => {
    const view = [t.shape[0], 1, 1, 1];
    return b.mul(
      b.sub(xt, b.reshape(b.gather(shiftT, t, 0), view)),
      b.reshape(b.gather(coefT, t, 0), view),
    );
  };
}

testEachBackend(
  "every sampler returns the data point when x_0 is a point mass (oracle denoiser)",
  (b) => {
    const process = new DiffusionProcess(b, makeSchedule({ kind: "linear", timesteps: 100 }));
    const oracle = gaussianDataOracle(b, process, 0.6, 0);
    const shape = [1, 4, 4] as const;
    for (
      const options of [
        { sampler: "ddpm", varianceType: "beta" },
        { sampler: "ddpm", varianceType: "posterior" },
        { sampler: "ddim", steps: 10, eta: 0 },
        { sampler: "ddim", steps: 100, eta: 1 },
      ] as const
    ) {
      const images = sampleImages(b, process, oracle, shape, { count: 3 }, new Rng(1), options);
      equal(images.length, 48);
      assert(maxAbsDiff(images, new Float32Array(48).fill(0.6)) < 2e-3, JSON.stringify(options));
    }
    process.dispose();
  },
);

testEachBackend(
  "ancestral sampling with the oracle denoiser reproduces Gaussian data statistics",
  (b) => {
    const process = new DiffusionProcess(b, makeSchedule({ kind: "cosine", timesteps: 200 }));
    const [mu, s] = [0.2, 0.4];
    const oracle = gaussianDataOracle(b, process, mu, s);
    for (const varianceType of ["beta", "posterior"] as const) {
      const images = sampleImages(b, process, oracle, [1, 32, 32], { count: 4 }, new Rng(2), {
        varianceType,
      });
      const mean = images.reduce((a, v) => a + v, 0) / images.length;
      const std = Math.sqrt(images.reduce((a, v) => a + (v - mean) ** 2, 0) / (images.length - 1));
      // 4096 samples: the standard error of the mean is 0.006, of the std about 0.0045.
      assert(Math.abs(mean - mu) < 0.03, `${varianceType}: mean ${mean}`);
      assert(Math.abs(std - s) < 0.04, `${varianceType}: std ${std}`);
    }
    process.dispose();
  },
);

testEachBackend(
  "DDIM with eta = 1 and all T steps equals ancestral sampling with the posterior variance",
  (b) => {
    const process = new DiffusionProcess(b, makeSchedule({ kind: "cosine", timesteps: 25 }));
    const model = createDenoiser(b, new Rng(3), {
      preset: "convnet",
      numClasses: 0,
      imageSize: 8,
      channels: 3,
      baseWidth: 8,
      timesteps: 25,
    });
    // A real network perturbing the oracle of N(0, 0.5^2) data keeps samples mostly inside [-1, 1].
    const oracle = gaussianDataOracle(b, process, 0, 0.5);
    const forward = (x: Tensor, t: Tensor) => b.add(oracle(x, t), b.mul(model.forward(x, t), 0.2));
    const ancestral = sampleImages(b, process, forward, [3, 8, 8], { count: 2 }, new Rng(4), {
      sampler: "ddpm",
      varianceType: "posterior",
    });
    const ddim = sampleImages(b, process, forward, [3, 8, 8], { count: 2 }, new Rng(4), {
      sampler: "ddim",
      steps: 25,
      eta: 1,
    });
    const saturated = ancestral.filter((v) => Math.abs(v) === 1).length;
    assert(saturated < ancestral.length / 4, `${saturated} values clamped: comparison too weak`);
    assert(maxAbsDiff(ancestral, ddim) < 1e-3, `max difference ${maxAbsDiff(ancestral, ddim)}`);
    // ... and differs from ancestral sampling with sigma^2 = beta.
    const betaVariance = sampleImages(b, process, forward, [3, 8, 8], { count: 2 }, new Rng(4));
    assert(maxAbsDiff(ancestral, betaVariance) > 1e-2);
    model.dispose();
    process.dispose();
  },
);

testEachBackend("samplers are deterministic under a seed and leave no tensors behind", (b) => {
  const process = new DiffusionProcess(b, makeSchedule({ kind: "cosine", timesteps: 20 }));
  const model = createDenoiser(b, new Rng(5), {
    preset: "convnet",
    numClasses: 0,
    imageSize: 4,
    channels: 1,
    baseWidth: 4,
    timesteps: 20,
  });
  const forward = (x: Tensor, t: Tensor) => model.forward(x, t);
  for (const options of [{ sampler: "ddpm" }, { sampler: "ddim", steps: 7, eta: 0.5 }] as const) {
    const before = b.liveTensors();
    const first = sampleImages(b, process, forward, [1, 4, 4], { count: 3 }, new Rng(6), options);
    equal(b.liveTensors(), before, `${options.sampler} leaked tensors`);
    const again = sampleImages(b, process, forward, [1, 4, 4], { count: 3 }, new Rng(6), options);
    const other = sampleImages(b, process, forward, [1, 4, 4], { count: 3 }, new Rng(7), options);
    deepEqual(first, again);
    notDeepEqual(first, other);
  }
  model.dispose();
  process.dispose();
});

testEachBackend(
  "classifier-free guidance combines eps(x, y) and eps(x, null) with scale w",
  (b) => {
    const process = new DiffusionProcess(b, makeSchedule({ kind: "linear", timesteps: 30 }));
    // A toy conditional model: eps = 0.5 x + offset[label], label 2 = null.
    const offsets = b.variable(b.tensor([0.3, -0.2, 0.05], [3, 1, 1, 1]), false);
    const model = (x: Tensor, _t: Tensor, y?: Tensor) =>
      b.add(b.mul(x, 0.5), b.gather(offsets, y!, 0));
    const w = 3;
    // The same model with the guidance formula written out for labels [0, 1].
    const combined = (x: Tensor) =>
      b.add(b.mul(x, 0.5), b.tensor([0.05 + w * 0.25, 0.05 + w * -0.25], [2, 1, 1, 1]));
    const labels = Int32Array.from([0, 1]);
    for (const sampler of ["ddpm", "ddim"] as const) {
      const guided = sampleImages(b, process, model, [1, 2, 2], { labels }, new Rng(8), {
        sampler,
        steps: 30,
        guidance: w,
        nullClass: 2,
      });
      const expected = sampleImages(b, process, combined, [1, 2, 2], { count: 2 }, new Rng(8), {
        sampler,
        steps: 30,
      });
      assert(maxAbsDiff(guided, expected) < 1e-4, `${sampler}: ${maxAbsDiff(guided, expected)}`);
    }
    throws(
      () => sampleImages(b, process, model, [1, 2, 2], { count: 2 }, new Rng(8), { guidance: 2 }),
      /guidance needs class labels/,
    );
    offsets.dispose();
    process.dispose();
  },
  { only: ["torch-cpu", "tfjs-cpu"] },
);

Deno.test("ddimTimesteps() spaces the steps evenly and rejects more steps than T", () => {
  deepEqual([...ddimTimesteps(10, 5)], [0, 2, 4, 6, 8]);
  deepEqual([...ddimTimesteps(4, 4)], [0, 1, 2, 3]);
  deepEqual([...ddimTimesteps(1000, 3)], [0, 333, 666]);
  throws(() => ddimTimesteps(10, 11), /DDIM steps must be an integer in 1..10, got 11/);
  throws(() => ddimTimesteps(10, 0), RangeError);
});

testEachBackend(
  "each image's noise comes from its own index: batch size, position and offset do not change it",
  (b) => {
    const process = new DiffusionProcess(b, makeSchedule({ kind: "cosine", timesteps: 20 }));
    const model = createDenoiser(b, new Rng(5), {
      preset: "convnet",
      numClasses: 0,
      imageSize: 4,
      channels: 1,
      baseWidth: 4,
      timesteps: 20,
    });
    const forward = (x: Tensor, t: Tensor) => model.forward(x, t);
    const shape = [1, 4, 4] as const;
    for (const options of [{ sampler: "ddpm" }, { sampler: "ddim", steps: 7, eta: 1 }] as const) {
      const noise = imageNoise(11);
      const whole = sampleImages(b, process, forward, shape, { count: 5 }, noise, {
        ...options,
        batchSize: 5,
      });
      const pairs = sampleImages(b, process, forward, shape, { count: 5 }, noise, {
        ...options,
        batchSize: 2,
      });
      const fourth = sampleImages(b, process, forward, shape, { count: 1 }, offsetNoise(noise, 3), {
        ...options,
      });
      // 8-bit images are what a file holds; the floats agree to rounding of batched kernels.
      deepEqual(toUint8Images(pairs, [5, ...shape]), toUint8Images(whole, [5, ...shape]));
      deepEqual(
        toUint8Images(fourth, [1, ...shape]),
        toUint8Images(whole, [5, ...shape]).slice(3, 4),
      );
      assert(maxAbsDiff(pairs, whole) < 1e-5, `${options.sampler}: ${maxAbsDiff(pairs, whole)}`);
    }
    model.dispose();
    process.dispose();
  },
);
