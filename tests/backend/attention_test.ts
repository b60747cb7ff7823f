import assert from "node:assert/strict";
import type { Backend, Tensor } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import { testEachBackend } from "../_backends.ts";

/** softmax(q kᵀ / sqrt(d)) v from matmul and softmax: a path independent of attention(). */
function composed(b: Backend, q: Tensor, k: Tensor, v: Tensor): Tensor {
  const d = q.shape[3];
  const scores = b.div(b.matmul(q, b.permute(k, [0, 1, 3, 2])), Math.sqrt(d)); // [B, h, Lq, Lk]
  return b.matmul(b.softmax(scores, -1), v); // [B, h, Lq, d]
}

function maxRelativeError(actual: Float32Array | Int32Array, expected: Float32Array | Int32Array) {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

// Shapes that exercise the blocked CPU kernel of the torch shim: several query blocks with a
// ragged last one (L = 600), many (batch x head) slices per block (L = 48), Lq != Lk.
const CASES = [
  { name: "long sequences", q: [1, 2, 600, 8], k: [1, 2, 600, 8] },
  { name: "many short sequences", q: [3, 4, 48, 16], k: [3, 4, 48, 16] },
  { name: "cross-attention", q: [2, 1, 70, 8], k: [2, 1, 33, 8] },
];

for (const c of CASES) {
  testEachBackend(
    `attention() matches softmax(q kᵀ/√d) v and its gradients (${c.name})`,
    (b) => {
      const rng = new Rng(7);
      const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
      const q = b.variable(b.tensor(rng.normal(size(c.q)), c.q), true);
      const k = b.variable(b.tensor(rng.normal(size(c.k)), c.k), true);
      const v = b.variable(b.tensor(rng.normal(size(c.k)), c.k), true);
      const weights = b.tensor(rng.normal(size(c.q)), c.q);
      const loss = (f: () => Tensor) => () => b.sum(b.mul(f(), weights));
      const fused = b.valueAndGrad(loss(() => b.attention(q, k, v)), [q, k, v]);
      const reference = b.valueAndGrad(loss(() => composed(b, q, k, v)), [q, k, v]);
      assert.ok(Math.abs(fused.value - reference.value) <= 1e-4 * Math.abs(reference.value));
      for (let i = 0; i < 3; i++) {
        const err = maxRelativeError(b.read(fused.grads[i]), b.read(reference.grads[i]));
        assert.ok(err < 1e-4, `gradient ${"qkv"[i]}: relative error ${err}`);
      }
      // Inference (no graph recorded) takes the same kernel's forward-only path.
      const readNoGrad = (f: () => Tensor) => {
        let host: Float32Array | Int32Array = new Float32Array();
        b.noGrad(() => b.scope(() => void (host = b.read(f()))));
        return host;
      };
      const out = readNoGrad(() => b.attention(q, k, v));
      assert.ok(maxRelativeError(out, readNoGrad(() => composed(b, q, k, v))) < 1e-5);
      for (const t of [q, k, v, weights, ...fused.grads, ...reference.grads]) t.dispose();
    },
    { only: ["torch-cpu", "torch-cuda", "tfjs-wasm", "tfjs-webgpu"], softwareGpu: true },
  );
}
