import { equal as assertEquals, ok as assert, throws as assertThrows } from "node:assert/strict";
import { betaSchedule, COSINE_MAX_BETA, makeSchedule } from "../../src/diffusion/schedule.ts";

function assertClose(actual: number, expected: number, relTol = 1e-12, message = "") {
  const tol = relTol * Math.max(1, Math.abs(expected));
  assert(Math.abs(actual - expected) <= tol, `${message} ${actual} != ${expected} (tol ${tol})`);
}

Deno.test("linearSchedule() goes from 1e-4 to 0.02 in equal steps", () => {
  for (const T of [500, 1000, 1500]) {
    const betas = betaSchedule("linear", T);
    assertEquals(betas.length, T);
    assertClose(betas[0], 1e-4);
    assertClose(betas[T - 1], 0.02);
    const step = (0.02 - 1e-4) / (T - 1);
    for (let i = 1; i < T; i++) assertClose(betas[i] - betas[i - 1], step, 1e-9);
  }
});

Deno.test("cosineSchedule() matches alphaBar_t = f(t)/f(0) of Nichol & Dhariwal eq. 17", () => {
  const T = 1000;
  const s = makeSchedule({ kind: "cosine", timesteps: T });
  const f = (t: number) => Math.cos(((t / T + 0.008) / 1.008) * Math.PI / 2) ** 2;
  // Before the clip at 0.999 bites, the product of alphas reproduces the closed form.
  for (const t of [1, 2, 10, 100, 500, 900, 990]) {
    assertClose(s.alphaBar[t - 1], f(t) / f(0), 1e-10, `alphaBar_${t}`);
  }
});

Deno.test("cosineSchedule() keeps betas below 0.999", () => {
  for (const T of [10, 100, 1000, 4000]) {
    const betas = betaSchedule("cosine", T);
    for (const beta of betas) assert(beta > 0 && beta <= COSINE_MAX_BETA, `beta ${beta}`);
    assertEquals(betas[T - 1], COSINE_MAX_BETA); // f(T) = 0 would give beta_T = 1
  }
});

Deno.test("makeSchedule() derives alphaBar as the running product of 1 - beta", () => {
  for (const kind of ["linear", "cosine"] as const) {
    const s = makeSchedule({ kind, timesteps: 1000 });
    let logSum = 0;
    for (let i = 0; i < 1000; i++) {
      assertClose(s.alphas[i], 1 - s.betas[i]);
      assertClose(s.alphaBarPrev[i], Math.exp(logSum), 1e-10);
      logSum += Math.log(1 - s.betas[i]);
      assertClose(s.alphaBar[i], Math.exp(logSum), 1e-10);
      assertClose(s.sqrtAlphaBar[i] ** 2, s.alphaBar[i]);
      assertClose(s.sqrtOneMinusAlphaBar[i] ** 2 + s.alphaBar[i], 1);
    }
    assertEquals(s.alphaBarPrev[0], 1);
  }
  // Ho et al. 2020: with the linear schedule x_T is nearly pure noise (alphaBar_T ~ 4e-5).
  const linear = makeSchedule({ kind: "linear", timesteps: 1000 });
  assert(Math.abs(linear.alphaBar[999] - 4.04e-5) < 1e-6, `${linear.alphaBar[999]}`);
});

Deno.test("makeSchedule() posterior equals the product of Gaussians q(x_t|x_{t-1}) q(x_{t-1}|x_0)", () => {
  for (const kind of ["linear", "cosine"] as const) {
    const s = makeSchedule({ kind, timesteps: 300 });
    for (let i = 1; i < 300; i++) {
      // Completing the square: precision = 1/(1 - alphaBar_{t-1}) + alpha_t / beta_t.
      const precision = 1 / (1 - s.alphaBarPrev[i]) + s.alphas[i] / s.betas[i];
      const coefX0 = Math.sqrt(s.alphaBarPrev[i]) / (1 - s.alphaBarPrev[i]) / precision;
      const coefXt = Math.sqrt(s.alphas[i]) / s.betas[i] / precision;
      assertClose(s.posteriorVariance[i], 1 / precision, 1e-9, `variance ${i}`);
      assertClose(s.posteriorMeanCoef1[i], coefX0, 1e-9, `coef1 ${i}`);
      assertClose(s.posteriorMeanCoef2[i], coefXt, 1e-9, `coef2 ${i}`);
      assertClose(s.posteriorLogVarianceClipped[i], Math.log(1 / precision), 1e-9);
    }
    // t = 1: q(x_0 | x_1, x_0) is a point mass at x_0.
    assertEquals(s.posteriorVariance[0], 0);
    assertClose(s.posteriorMeanCoef1[0], 1);
    assertClose(s.posteriorMeanCoef2[0], 0);
    assertEquals(s.posteriorLogVarianceClipped[0], Math.log(s.posteriorVariance[1]));
  }
});

Deno.test("makeSchedule() rejects an unknown kind or too few timesteps", () => {
  assertThrows(() => makeSchedule({ kind: "quadratic" as "linear", timesteps: 10 }), RangeError);
  assertThrows(() => makeSchedule({ kind: "linear", timesteps: 1 }), RangeError);
  assertThrows(() => makeSchedule({ kind: "linear", timesteps: 10.5 }), RangeError);
});
