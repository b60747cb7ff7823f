import { deepEqual, equal, ok } from "node:assert/strict";
import { Rng } from "../../src/core/rng.ts";
import {
  addInputNoise,
  discriminatorLoss,
  discriminatorTargets,
  generatorLoss,
  inputNoiseSigma,
  meanProbability,
} from "../../src/gan/loss.ts";
import { testEachBackend } from "../_backends.ts";

/** -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] in float64, straight from the definition. */
function bceByDefinition(x: number, t: number): number {
  const p = 1 / (1 + Math.exp(-x));
  return -(t * Math.log(p) + (1 - t) * Math.log(1 - p));
}

function meanOf(values: number[], f: (x: number) => number): number {
  return values.reduce((s, x) => s + f(x), 0) / values.length;
}

const close = (actual: number, expected: number, tol = 1e-5) =>
  ok(Math.abs(actual - expected) <= tol, `${actual} vs ${expected}`);

Deno.test("discriminatorTargets() smooths real to 0.9 and fake to 0.1 only when asked", () => {
  deepEqual(discriminatorTargets(true), { real: 0.9, fake: 0.1 });
  deepEqual(discriminatorTargets(false), { real: 1, fake: 0 });
});

Deno.test("inputNoiseSigma() falls linearly from its initial value to 0 and stays in range", () => {
  close(inputNoiseSigma(0.1, 0), 0.1, 1e-12);
  close(inputNoiseSigma(0.1, 0.5), 0.05, 1e-12);
  close(inputNoiseSigma(0.1, 0.75), 0.025, 1e-12);
  deepEqual(inputNoiseSigma(0.1, 1), 0);
  deepEqual(inputNoiseSigma(0.1, 1.5), 0);
  close(inputNoiseSigma(0.1, -1), 0.1, 1e-12);
  deepEqual(inputNoiseSigma(0, 0.3), 0);
});

testEachBackend(
  "discriminatorLoss() equals the BCE definition summed over real and fake, with and without smoothing",
  (b) => {
    const real = [2.5, -0.3, 0.7, 4];
    const fake = [-1.2, 0.4, -3, 0];
    b.scope(() => {
      const realT = b.tensor(real, [4]);
      const fakeT = b.tensor(fake, [4]);
      for (const smooth of [false, true]) {
        const t = smooth ? { real: 0.9, fake: 0.1 } : { real: 1, fake: 0 };
        const expected = meanOf(real, (x) => bceByDefinition(x, t.real)) +
          meanOf(fake, (x) => bceByDefinition(x, t.fake));
        close(b.read(discriminatorLoss(b, realT, fakeT, smooth))[0], expected);
      }
    });
  },
);

testEachBackend(
  "BCE with logits is ln 2 at logit 0 and the entropy H(0.9) at the smoothed optimum ln 9",
  (b) => {
    b.scope(() => {
      const zero = b.zeros([3]);
      // At logit 0, sigmoid = 1/2 and both targets cost ln 2 each: the sum is 2 ln 2.
      close(b.read(discriminatorLoss(b, zero, zero, true))[0], 2 * Math.LN2);
      close(b.read(discriminatorLoss(b, zero, zero, false))[0], 2 * Math.LN2);
      // With targets 0.9 / 0.1 the loss is minimised where sigmoid = target, i.e. logits +-ln 9,
      // and its minimum is the binary entropy of 0.9 on each side.
      const entropy = -(0.9 * Math.log(0.9) + 0.1 * Math.log(0.1));
      const real = b.full([3], Math.log(9));
      const fake = b.full([3], -Math.log(9));
      close(b.read(discriminatorLoss(b, real, fake, true))[0], 2 * entropy);
      // Without smoothing the same logits cost -ln 0.9 on each side.
      close(b.read(discriminatorLoss(b, real, fake, false))[0], -2 * Math.log(0.9));
    });
  },
);

testEachBackend(
  "generatorLoss() is the non-saturating -mean log sigmoid(D(G(z))), stable for large logits",
  (b) => {
    const logits = [-30, -2, 0, 1.5, 30];
    b.scope(() => {
      // -log sigmoid(x) = log(1 + e^-x): 30 + log(1 + e^-30) at x = -30, where the naive form overflows.
      const expected = meanOf(
        logits,
        (x) => x < 0 ? -x + Math.log1p(Math.exp(x)) : Math.log1p(Math.exp(-x)),
      );
      close(b.read(generatorLoss(b, b.tensor(logits, [5])))[0], expected, 1e-4);
    });
  },
);

testEachBackend("meanProbability() is mean sigmoid of the logits", (b) => {
  b.scope(() => {
    const p = meanProbability(b, b.tensor([0, Math.log(3), -Math.log(3)], [3]));
    close(p, (0.5 + 0.75 + 0.25) / 3);
  });
});

testEachBackend(
  "addInputNoise() adds sigma times the host Rng's normals, and nothing at sigma 0",
  (b) => {
    b.scope(() => {
      const x = b.full([2, 3], 1);
      const noisy = b.read(addInputNoise(b, x, 0.5, new Rng(7)));
      const normals = new Rng(7).normal(6);
      normals.forEach((n, i) => close(noisy[i], 1 + 0.5 * n, 1e-6));
      const rng = new Rng(7);
      equal(addInputNoise(b, x, 0, rng), x);
      equal(rng.normal(1)[0], normals[0]); // nothing was drawn
    });
  },
);
