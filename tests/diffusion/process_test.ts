import { ok as assert } from "node:assert/strict";
import { Rng } from "../../src/core/rng.ts";
import { DiffusionProcess } from "../../src/diffusion/process.ts";
import { makeSchedule } from "../../src/diffusion/schedule.ts";
import { testEachBackend } from "../_backends.ts";

function assertAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number) {
  assert(actual.length === expected.length, `length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert(
      err <= tol * Math.max(1, Math.abs(expected[i])),
      `[${i}] ${actual[i]} != ${expected[i]}`,
    );
  }
}

const schedule = makeSchedule({ kind: "linear", timesteps: 1000 });

testEachBackend(
  "qSample() has mean sqrt(alphaBar_t) x0 and variance 1 - alphaBar_t per sample",
  (b) => {
    const process = new DiffusionProcess(b, schedule);
    const perSample = 64 * 64;
    const x0Values = [0.7, -0.3, 1];
    const steps = [10, 500, 999];
    const x0 = new Float32Array(3 * perSample);
    x0Values.forEach((v, i) => x0.fill(v, i * perSample, (i + 1) * perSample));
    const rng = new Rng(1);
    const xt = Float32Array.from(b.read(process.qSample(
      b.tensor(x0, [3, 1, 64, 64]),
      b.tensor(steps, [3], "int32"),
      b.tensor(rng.normal(3 * perSample), [3, 1, 64, 64]),
    )));
    steps.forEach((t, i) => {
      const values = xt.subarray(i * perSample, (i + 1) * perSample);
      const mean = values.reduce((s, v) => s + v, 0) / perSample;
      const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / (perSample - 1);
      const expectedVariance = 1 - schedule.alphaBar[t];
      // 5 standard errors of the sample mean and sample variance of 4096 normals.
      assert(
        Math.abs(mean - schedule.sqrtAlphaBar[t] * x0Values[i]) <
          5 * Math.sqrt(expectedVariance / perSample),
        `t=${t}: mean ${mean}`,
      );
      assert(
        Math.abs(variance - expectedVariance) < 5 * expectedVariance * Math.sqrt(2 / perSample),
        `t=${t}: variance ${variance} vs ${expectedVariance}`,
      );
    });
    process.dispose();
  },
);

testEachBackend("qSample() and predictX0FromEpsilon() follow eq. 4 and invert each other", (b) => {
  const process = new DiffusionProcess(b, schedule);
  const rng = new Rng(2);
  const shape = [4, 3, 2, 2];
  const n = 12;
  const x0 = rng.uniformArray(4 * n, -1, 1);
  const noise = rng.normal(4 * n);
  const steps = [0, 1, 250, 998];
  const t = b.tensor(steps, [4], "int32");
  const xtTensor = process.qSample(b.tensor(x0, shape), t, b.tensor(noise, shape));
  const expected = Array.from(x0, (v, i) => {
    const s = steps[Math.floor(i / n)];
    return schedule.sqrtAlphaBar[s] * v + schedule.sqrtOneMinusAlphaBar[s] * noise[i];
  });
  assertAllClose(b.read(xtTensor), expected, 1e-5);
  const recovered = process.predictX0FromEpsilon(xtTensor, t, b.tensor(noise, shape));
  // 1/sqrt(alphaBar_999) ~ 150 amplifies float32 rounding of x_t.
  assertAllClose(b.read(recovered), x0, 2e-3);
  process.dispose();
});

testEachBackend("posteriorMeanVariance() gathers eq. 7's coefficients per sample", (b) => {
  const cosine = makeSchedule({ kind: "cosine", timesteps: 100 });
  const process = new DiffusionProcess(b, cosine);
  const rng = new Rng(3);
  const x0 = rng.uniformArray(6, -1, 1);
  const xt = rng.normal(6);
  const steps = [0, 42, 99];
  const t = b.tensor(steps, [3], "int32");
  const q = process.posteriorMeanVariance(b.tensor(x0, [3, 2]), b.tensor(xt, [3, 2]), t);
  const expectedMean = Array.from(x0, (v, i) => {
    const s = steps[Math.floor(i / 2)];
    return cosine.posteriorMeanCoef1[s] * v + cosine.posteriorMeanCoef2[s] * xt[i];
  });
  assertAllClose(b.read(q.mean), expectedMean, 1e-5);
  assertAllClose(b.read(q.variance), steps.map((s) => cosine.posteriorVariance[s]), 1e-6);
  assertAllClose(
    b.read(q.logVariance),
    steps.map((s) => cosine.posteriorLogVarianceClipped[s]),
    1e-5,
  );
  process.dispose();
});

testEachBackend("pMeanVariance() eq. 11 equals the posterior mean at the predicted x0", (b) => {
  const process = new DiffusionProcess(b, schedule);
  const rng = new Rng(4);
  const shape = [3, 1, 2, 2];
  const xt = b.tensor(rng.normal(12), shape);
  const eps = b.tensor(rng.normal(12), shape);
  const t = b.tensor([1, 300, 900], [3], "int32");
  const direct = process.pMeanVariance(eps, xt, t, "beta");
  const viaX0 = process.posteriorMeanVariance(process.predictX0FromEpsilon(xt, t, eps), xt, t);
  assertAllClose(b.read(direct.mean), b.read(viaX0.mean), 1e-4);
  assertAllClose(b.read(direct.variance), [1, 300, 900].map((s) => schedule.betas[s]), 1e-6);
  const posterior = process.pMeanVariance(eps, xt, t, "posterior");
  assertAllClose(
    b.read(posterior.variance),
    [1, 300, 900].map((s) => schedule.posteriorVariance[s]),
    1e-6,
  );
  process.dispose();
});
