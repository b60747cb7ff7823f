/**
 * Adam's gradient entry points under data parallelism: valueAndGrad goes through the trainer's
 * averager when one is set (where a torch process group overlaps the all-reduce with
 * backward), and is the backend's own valueAndGrad otherwise.
 */
import assert from "node:assert/strict";
import type { Tensor } from "../../src/backend/backend.ts";
import { ParamStore } from "../../src/nn/params.ts";
import { Adam } from "../../src/task/optimizer.ts";
import { testEachBackend } from "../_backends.ts";

const ADAM = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

testEachBackend("Adam.valueAndGrad is the backend's alone and the averager's when set", (b) => {
  using store = new ParamStore(b);
  store.add("w", [2], new Float32Array([1, -3]));
  store.add("v", [1], new Float32Array([2]));
  using opt = new Adam(store, ADAM);
  const [w, v] = [store.get("w"), store.get("v")];
  const lossFn = () => b.add(b.sum(b.mul(w, w)), b.sum(b.mul(v, w))); // d/dw = 2w + v, d/dv = sum w
  b.scope(() => {
    const alone = opt.valueAndGrad(lossFn);
    assert.equal(alone.value, 10 - 4);
    assert.deepEqual(alone.grads.map((g) => Array.from(b.read(g))), [[4, -4], [-2]]);
  });
  const seen: { params: readonly Tensor[]; averaged: number } = { params: [], averaged: 0 };
  opt.gradientAverager = {
    valueAndGrad: (fn, params) => {
      seen.params = params;
      const r = b.valueAndGrad(fn, params);
      return { value: r.value, grads: r.grads.map((g) => b.mul(g, 0.5)) }; // a stand-in mean
    },
    average: () => seen.averaged++,
  };
  b.scope(() => {
    const averaged = opt.valueAndGrad(lossFn);
    assert.deepEqual(seen.params, [w, v]); // this optimizer's parameters, in store order
    assert.deepEqual(averaged.grads.map((g) => Array.from(b.read(g))), [[2, -2], [-1]]);
  });
  opt.averageGradients([]);
  assert.equal(seen.averaged, 1);
}, { only: ["tfjs-cpu", "torch-cpu"] });
