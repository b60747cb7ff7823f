/**
 * Gradient accumulation equals the full batch for a GroupNorm U-Net: one DDPM step with the
 * memory limit forcing micro-batches leaves the same weights as the step on the whole batch.
 */
import assert from "node:assert/strict";
import { Rng } from "../../src/core/rng.ts";
import { accumulatedValueAndGrad } from "../../src/task/microbatch.ts";
import { createDdpmTask, type DdpmConfig, DEFAULT_DDPM_CONFIG } from "../../src/diffusion/task.ts";
import { testEachBackend } from "../_backends.ts";
import { withLimit } from "../backend/memory_test.ts";

const config: DdpmConfig = {
  ...DEFAULT_DDPM_CONFIG,
  preset: "unet-2xud-half",
  baseWidth: 8,
  imageSize: 8,
  timesteps: 50,
  ema: 0,
};

testEachBackend("micro-batched DDPM step equals the full-batch step (GroupNorm U-Net)", (b) => {
  const n = 6;
  const images = new Rng(7).uniformArray(n * 3 * 64, -1, 1);
  const batch = {
    images,
    labels: new Int32Array(n),
    shape: [n, 3, 8, 8] as [number, number, number, number],
  };
  const weightsAfterStep = (backend: typeof b) => {
    const task = createDdpmTask(backend, config, new Rng(1));
    const metrics = task.step(batch, new Rng(2), 0);
    const store = task.stores.model;
    const weights = store.names().map((name) => Float32Array.from(b.read(store.get(name))));
    task.dispose();
    return { metrics, weights };
  };
  const full = weightsAfterStep(b);
  // A budget of about two samples' tensors: the step runs in parts of one or two.
  const one = weightsAfterStep(withLimit(b, 1));
  assert.ok(Math.abs(full.metrics.loss - one.metrics.loss) < 1e-5 * Math.abs(full.metrics.loss));
  assert.ok(Math.abs(full.metrics.gradNorm - one.metrics.gradNorm) < 1e-4 * full.metrics.gradNorm);
  // Adam's first update is about lr * sign(grad): where a gradient is ~0 its float rounding
  // decides the sign, so a few weights may differ by up to 2 lr; all others must agree.
  let off = 0;
  let total = 0;
  full.weights.forEach((w, i) => {
    for (let j = 0; j < w.length; j++) {
      total++;
      if (Math.abs(w[j] - one.weights[i][j]) > 1e-6) off++;
    }
  });
  assert.ok(off < total * 1e-3, `${off} of ${total} weights differ by more than 1e-6`);
}, { only: ["tfjs-wasm"] });

testEachBackend(
  "a batch that fits is computed by whole() once and says so; a split one is not",
  (b) => {
    // loss(w) = mean over samples k of x_k * sum(w): d loss / d w = mean(x) in every component.
    const x = [1, 2, 3, 4];
    const w = b.variable(b.tensor(new Float32Array([0.5, -1]), [2]), true);
    const calls: string[] = [];
    const part = (start: number, size: number) => {
      calls.push(`part ${start}+${size}`);
      const xs = b.tensor(Float32Array.from(x.slice(start, start + size)), [size]);
      return b.valueAndGrad(() => b.mul(b.mean(xs), b.sum(w)), [w]);
    };
    const whole = () => {
      calls.push("whole");
      return part(0, x.length);
    };
    const fits = accumulatedValueAndGrad(b, x.length, part, new Map(), whole);
    assert.equal(fits.whole, true);
    assert.deepEqual(calls, ["whole", "part 0+4"]);
    assert.deepEqual(Array.from(b.read(fits.grads[0])), [2.5, 2.5]);
    calls.length = 0;
    // A measured fit of one sample per part (cached, so no probe runs): four parts.
    const cache = new Map([[x.length, { size: 1, needBytes: 4, limitBytes: 1 }]]);
    const split = accumulatedValueAndGrad(b, x.length, part, cache, whole);
    assert.equal(split.whole, false);
    assert.deepEqual(calls, ["part 0+1", "part 1+1", "part 2+1", "part 3+1"]);
    assert.ok(Math.abs(b.read(split.grads[0])[0] - 2.5) < 1e-6);
    assert.ok(Math.abs(split.value - 2.5 * -0.5) < 1e-6);
  },
  { only: ["tfjs-cpu", "torch-cpu"] },
);
