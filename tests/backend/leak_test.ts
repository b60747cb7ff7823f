/**
 * A training step must not grow memory: 200 steps of a small conv net (conv, batchNorm, relu,
 * conv, MSE, Adam) on every backend keep the live-tensor count flat (and, on torch, the live
 * bytes and the shim's native handle count).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { AdamState, Backend, Tensor } from "../../src/backend/backend.ts";
import { testEachBackend } from "../_backends.ts";

const STEPS = 200;

function randomData(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

testEachBackend(`${STEPS} training steps of a small conv net keep memory flat`, (b: Backend) => {
  const param = (shape: number[], seed: number) =>
    b.scope(() =>
      b.variable(b.tensor(randomData(shape.reduce((x, y) => x * y), seed), shape), true)
    );
  const buffer = (shape: number[], value: number) =>
    b.scope(() => b.variable(b.full(shape, value), false));
  const w1 = param([8, 3, 3, 3], 1);
  const b1 = param([8], 2);
  const gamma = buffer([8], 1);
  const runningMean = buffer([8], 0);
  const runningVar = buffer([8], 1);
  const w2 = param([3, 8, 3, 3], 3);
  const params = [w1, b1, w2];
  const state: AdamState = {
    step: 0,
    m: params.map((p) => b.scope(() => b.variable(b.zeros(p.shape), false))),
    v: params.map((p) => b.scope(() => b.variable(b.zeros(p.shape), false))),
  };
  const x = b.tensor(randomData(4 * 3 * 8 * 8, 4), [4, 3, 8, 8]);
  const target = b.tensor(randomData(4 * 3 * 8 * 8, 5), [4, 3, 8, 8]);
  const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

  const step = (): number =>
    b.scope(() => {
      const { value, grads } = b.valueAndGrad(() => {
        let h = b.conv2d(x, w1, b1, { padding: 1 }); // [4, 8, 8, 8]
        h = b.batchNorm(h, gamma, undefined, runningMean, runningVar, { training: true });
        h = b.relu(h);
        const y = b.conv2d(h, w2, undefined, { padding: 1 }); // [4, 3, 8, 8]
        return b.mseLoss(y, target);
      }, params);
      b.adamStep(params, grads, state, opts);
      return value;
    });

  let first = NaN;
  let last = NaN;
  let tensorsAfterWarmup = 0;
  let bytesAfterWarmup = 0;
  let nativeAfterWarmup = 0;
  const native = (b as Backend & { nativeLiveHandles?: () => number }).nativeLiveHandles;
  for (let i = 0; i < STEPS; i++) {
    const loss = step();
    if (i === 0) first = loss;
    last = loss;
    if (i === 9) {
      tensorsAfterWarmup = b.liveTensors();
      bytesAfterWarmup = b.liveBytes();
      nativeAfterWarmup = native?.call(b) ?? 0;
    }
  }
  assert.ok(Number.isFinite(last) && last < first, `loss should fall: ${first} -> ${last}`);
  assert.equal(b.liveTensors(), tensorsAfterWarmup, "live tensors grew");
  assert.equal(b.liveBytes(), bytesAfterWarmup, "live bytes grew");
  if (native) assert.equal(native.call(b), nativeAfterWarmup, "native handles grew");
  const all: Tensor[] = [
    ...params,
    gamma,
    runningMean,
    runningVar,
    ...state.m,
    ...state.v,
    x,
    target,
  ];
  for (const t of all) t.dispose();
});
