import { equal, ok as assert } from "node:assert/strict";
import type { Backend } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import {
  bitsPerDim,
  discretizedGaussianLogLikelihood,
  normalKl,
  priorBitsPerDim,
  simpleLoss,
  vlbTerm,
} from "../../src/diffusion/loss.ts";
import { DiffusionProcess } from "../../src/diffusion/process.ts";
import { makeSchedule, type Schedule } from "../../src/diffusion/schedule.ts";
import type { Batch } from "../../src/data/batch.ts";
import { testEachBackend } from "../_backends.ts";

// ---- slow Float64 references by numerical integration (Simpson's rule) ----

function simpson(f: (x: number) => number, a: number, b: number, n = 4000): number {
  const h = (b - a) / n;
  let s = f(a) + f(b);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * f(a + i * h);
  return (s * h) / 3;
}

const density = (m: number, v: number) => (x: number) =>
  Math.exp(-((x - m) ** 2) / (2 * v)) / Math.sqrt(2 * Math.PI * v);

/** KL(N(m1, v1) || N(m2, v2)) = integral of p1 log(p1 / p2). */
function numericKl(m1: number, v1: number, m2: number, v2: number): number {
  const p1 = density(m1, v1);
  const logRatio = (x: number) =>
    -((x - m1) ** 2) / (2 * v1) + ((x - m2) ** 2) / (2 * v2) + 0.5 * Math.log(v2 / v1);
  const s = Math.sqrt(v1);
  return simpson((x) => p1(x) * logRatio(x), m1 - 12 * s, m1 + 12 * s);
}

/** log of the Gaussian mass over x's 8-bit bin in [-1, 1], edge bins open-ended. */
function numericBinLogMass(x: number, m: number, sigma: number): number {
  const lo = x < -0.999 ? Math.min(m, x) - 40 * sigma : x - 1 / 255;
  const hi = x > 0.999 ? Math.max(m, x) + 40 * sigma : x + 1 / 255;
  return Math.log(simpson(density(m, sigma * sigma), lo, hi, 20000));
}

/** A pixel value of the 256-level grid in [-1, 1]. */
const level = (k: number) => k / 127.5 - 1;

testEachBackend("normalKl() equals the numerically integrated KL divergence", (b) => {
  const cases = [[0, 1, 0, 1], [0.3, 0.5, -0.2, 2], [1, 1e-4, 1.01, 2e-4], [-2, 3, 0, 1]];
  const col = (j: number) => b.tensor(cases.map((c) => c[j]), [cases.length]);
  const kl = b.read(normalKl(b, col(0), b.log(col(1)), col(2), b.log(col(3))));
  cases.forEach(([m1, v1, m2, v2], i) => {
    const expected = numericKl(m1, v1, m2, v2);
    assert(Math.abs(kl[i] - expected) < 1e-4 * Math.max(1, expected), `${kl[i]} vs ${expected}`);
  });
});

testEachBackend(
  "discretizedGaussianLogLikelihood() is the Gaussian mass of the pixel's bin",
  (b) => {
    // [x, mean, sigma]: interior bins, both edge bins, a sigma as small as beta_1's.
    const cases = [
      [level(128), 0.01, 0.01],
      [level(100), level(100) + 0.004, 0.01],
      [level(200), 0.55, 0.05],
      [level(0), -0.99, 0.02],
      [level(255), 0.97, 0.03],
      [level(0), -1.02, 0.01],
      [level(60), level(60), 0.1],
    ];
    const col = (j: number) => b.tensor(cases.map((c) => c[j]), [cases.length]);
    const logp = b.read(discretizedGaussianLogLikelihood(b, col(0), col(1), b.log(col(2))));
    cases.forEach(([x, m, s], i) => {
      const expected = numericBinLogMass(x, m, s);
      // Ho et al.'s tanh approximation of Phi is off by up to ~2e-4 in probability.
      assert(
        Math.abs(Math.exp(logp[i]) - Math.exp(expected)) < 1e-3,
        `case ${i}: ${logp[i]} vs ${expected}`,
      );
      assert(Math.abs(logp[i] - expected) < 0.02, `case ${i}: log ${logp[i]} vs ${expected}`);
    });
  },
);

/** Float64 reference of one VLB term (bits/dim) for a given model prediction. */
function referenceTerm(
  s: Schedule,
  t: number,
  x0: ArrayLike<number>,
  xt: ArrayLike<number>,
  eps: ArrayLike<number>,
  varianceType: "beta" | "posterior",
): number {
  let sum = 0;
  for (let i = 0; i < x0.length; i++) {
    // eq. 11 mean and the chosen fixed variance
    const mean = (xt[i] - s.betas[t] / s.sqrtOneMinusAlphaBar[t] * eps[i]) / Math.sqrt(s.alphas[t]);
    const variance = varianceType === "beta"
      ? s.betas[t]
      : Math.exp(s.posteriorLogVarianceClipped[t]);
    if (t === 0) {
      sum += -numericBinLogMass(x0[i], mean, Math.sqrt(variance));
    } else {
      const qMean = s.posteriorMeanCoef1[t] * x0[i] + s.posteriorMeanCoef2[t] * xt[i];
      sum += numericKl(qMean, s.posteriorVariance[t], mean, variance);
    }
  }
  return sum / x0.length / Math.LN2;
}

for (const varianceType of ["beta", "posterior"] as const) {
  testEachBackend(
    `vlbTerm() matches numerical KL and decoder terms (sigma^2 = ${varianceType})`,
    (b) => {
      const s = makeSchedule({ kind: "linear", timesteps: 10 });
      const process = new DiffusionProcess(b, s);
      const rng = new Rng(5);
      const steps = [0, 4, 9, 0];
      const n = 4;
      const x0 = Float32Array.from({ length: 4 * n }, () => level(rng.int(0, 256)));
      const eps = rng.normal(4 * n);
      const noise = rng.normal(4 * n);
      const t = b.tensor(steps, [4], "int32");
      const xt = process.qSample(b.tensor(x0, [4, 1, 2, 2]), t, b.tensor(noise, [4, 1, 2, 2]));
      const xtHost = b.read(xt);
      // A model prediction close to the true noise, so L_0 is a realistic few bits.
      const prediction = eps.map((e, i) => noise[i] + 0.1 * e);
      const terms = b.read(
        vlbTerm(b, process, b.tensor(x0, [4, 1, 2, 2]), xt, t, b.tensor(prediction, [4, 1, 2, 2]), {
          varianceType,
        }),
      );
      steps.forEach((step, j) => {
        const slice = (a: ArrayLike<number>) => Array.from(a).slice(j * n, (j + 1) * n);
        const expected = referenceTerm(
          s,
          step,
          slice(x0),
          slice(xtHost),
          slice(prediction),
          varianceType,
        );
        assert(
          Math.abs(terms[j] - expected) < 2e-3 * Math.max(1, expected),
          `t=${step}: ${terms[j]} vs ${expected}`,
        );
      });
      process.dispose();
    },
  );
}

testEachBackend("priorBitsPerDim() is KL(q(x_T|x_0) || N(0, I)) in bits/dim", (b) => {
  const s = makeSchedule({ kind: "linear", timesteps: 50 });
  const process = new DiffusionProcess(b, s);
  const x0 = [-1, 0.5, 1, 0];
  const prior = b.read(priorBitsPerDim(b, process, b.tensor(x0, [2, 2])));
  for (let j = 0; j < 2; j++) {
    const expected = [0, 1].reduce(
      (sum, k) => sum + numericKl(s.sqrtAlphaBar[49] * x0[2 * j + k], 1 - s.alphaBar[49], 0, 1),
      0,
    ) / 2 / Math.LN2;
    assert(Math.abs(prior[j] - expected) < 1e-4, `${prior[j]} vs ${expected}`);
  }
  process.dispose();
});

testEachBackend("bitsPerDim() sums L_T, every L_{t-1} and L_0 over a data split", (b) => {
  const s = makeSchedule({ kind: "cosine", timesteps: 3 });
  const process = new DiffusionProcess(b, s);
  const rng = new Rng(6);
  const shape = [2, 1, 2, 2] as const;
  const batches: Batch[] = [0, 1].map(() => ({
    images: Float32Array.from({ length: 8 }, () => level(rng.int(0, 256))),
    labels: new Int32Array(2),
    shape,
  }));
  // A model that always predicts eps = 0.5 x_t, with the noise stream replayed on the host.
  const model = (xt: Parameters<typeof process.qSample>[0]) => b.mul(xt, 0.5);
  const result = bitsPerDim(b, process, model, batches, new Rng(7), { varianceType: "beta" });
  const replay = new Rng(7);
  let total = 0;
  let prior = 0;
  for (const batch of batches) {
    const perT = [0, 1, 2].map(() => replay.normal(8));
    for (let j = 0; j < 2; j++) {
      const x0 = Array.from(batch.images.subarray(4 * j, 4 * j + 4));
      let sum = x0.reduce(
        (acc, v) => acc + numericKl(s.sqrtAlphaBar[2] * v, 1 - s.alphaBar[2], 0, 1),
        0,
      ) / 4 / Math.LN2;
      prior += sum;
      for (let t = 0; t < 3; t++) {
        const xt = x0.map((v, i) =>
          s.sqrtAlphaBar[t] * v + s.sqrtOneMinusAlphaBar[t] * perT[t][4 * j + i]
        );
        sum += referenceTerm(s, t, x0, xt, xt.map((v) => 0.5 * v), "beta");
      }
      total += sum;
    }
  }
  equal(result.images, 4);
  assert(Math.abs(result.prior - prior / 4) < 1e-4, `prior ${result.prior} vs ${prior / 4}`);
  assert(
    Math.abs(result.total - total / 4) < 2e-3 * (total / 4),
    `total ${result.total} vs ${total / 4}`,
  );
  process.dispose();
});

testEachBackend(
  "simpleLoss() is the MSE between the model's prediction and the noise",
  (b: Backend) => {
    const process = new DiffusionProcess(b, makeSchedule({ kind: "linear", timesteps: 100 }));
    const rng = new Rng(8);
    const x0 = b.tensor(rng.uniformArray(8, -1, 1), [2, 1, 2, 2]);
    const noise = rng.normal(8);
    const t = b.tensor([3, 77], [2], "int32");
    // The "model" returns x_t itself, so the loss is mean((x_t - eps)^2) by eq. 4.
    const loss =
      b.read(simpleLoss(b, process, (xt) => xt, x0, t, b.tensor(noise, [2, 1, 2, 2])))[0];
    const xt = b.read(process.qSample(x0, t, b.tensor(noise, [2, 1, 2, 2])));
    const expected = Array.from(xt).reduce((acc, v, i) => acc + (v - noise[i]) ** 2, 0) / 8;
    assert(Math.abs(loss - expected) < 1e-5, `${loss} vs ${expected}`);
    process.dispose();
  },
);
