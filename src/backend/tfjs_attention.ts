/**
 * Scaled dot-product attention for the TensorFlow.js backend, computed over groups of
 * (batch x head) slices so that the [L, L] probabilities of all slices never exist at once.
 * The U-Net's 32x32 level has L = 1024: at batch 64 with 4 heads the full score tensor would be
 * 1 GiB, more than a wasm heap holds, and its gradient as much again. The gradient recomputes
 * each group's probabilities from q and k (the recomputation of FlashAttention, Dao et al. 2022)
 * instead of keeping them.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import { batchMatMul } from "./tfjs_kernels.ts";

type Tf = tf.Tensor;

/** Score elements (floats) per group: 8 Mi = 32 MiB, whatever L is. */
const GROUP_BUDGET = 8 * 1024 * 1024;

/**
 * Whether attention over `slices` (batch x head) of Lq x Lk scores should go group by group:
 * above 32 Mi scores (128 MiB). Below, one batched matmul is faster than recomputing.
 */
export function needsGrouping(slices: number, lq: number, lk: number): boolean {
  return slices * lq * lk > 4 * GROUP_BUDGET;
}

/** softmax(q kᵀ · scale) for one group: q [n, Lq, d], k [n, Lk, d] -> [n, Lq, Lk]. */
function probabilities(q: Tf, k: Tf, scale: number): Tf {
  return tf.softmax(tf.mul(batchMatMul(q, k, false, true), scale));
}

/**
 * softmax(q kᵀ / sqrt(d)) v (Vaswani et al. 2017, eq. 1) for q [B, h, Lq, d], k [B, h, Lk, d],
 * v [B, h, Lk, dv] -> [B, h, Lq, dv], with a memory-bounded gradient: at most `budget` scores
 * (floats) exist at a time.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs@4.22.0";
 * import { groupedAttention } from "./tfjs_attention.ts";
 * const q = tf.randomNormal([2, 4, 16, 8]);
 * console.log(groupedAttention(q, q, q).shape); // [2, 4, 16, 8]
 * ```
 */
export function groupedAttention(q: Tf, k: Tf, v: Tf, budget = GROUP_BUDGET): Tf {
  const [batch, heads, lq, d] = q.shape as number[];
  const [lk, dv] = [k.shape[2] as number, v.shape[3] as number];
  const slices = batch * heads;
  const group = Math.max(1, Math.floor(budget / (lq * lk))); // slices per group
  const scale = 1 / Math.sqrt(d);
  // Runs fn on each group's [n, L, *] views and concatenates the results along the slices.
  const overGroups = (inputs: Tf[], fn: (parts: Tf[]) => Tf[]): Tf[] => {
    const outputs: Tf[][] = [];
    for (let s0 = 0; s0 < slices; s0 += group) {
      const n = Math.min(group, slices - s0);
      outputs.push(tf.tidy(() => fn(inputs.map((t) => tf.slice(t, [s0, 0, 0], [n, -1, -1])))));
    }
    const joined = outputs[0].map((_, i) =>
      outputs.length === 1 ? outputs[0][i] : tf.concat(outputs.map((o) => o[i]), 0)
    );
    if (outputs.length > 1) { for (const o of outputs) tf.dispose(o); }
    return joined;
  };
  return tf.customGrad((qv, kv, vv, save) => {
    const [q3, k3, v3] = [
      tf.reshape(qv as Tf, [slices, lq, d]),
      tf.reshape(kv as Tf, [slices, lk, d]),
      tf.reshape(vv as Tf, [slices, lk, dv]),
    ];
    const [out3] = overGroups([q3, k3, v3], ([qc, kc, vc]) => [
      batchMatMul(probabilities(qc, kc, scale), vc),
    ]); // [B*h, Lq, dv]
    (save as tf.GradSaveFunc)([q3, k3, v3, out3]);
    return {
      value: tf.reshape(out3, [batch, heads, lq, dv]),
      gradFunc: (dy: Tf, saved: Tf[]) => {
        const dy3 = tf.reshape(dy, [slices, lq, dv]);
        const [dq, dk, dvv] = overGroups([...saved, dy3], ([qc, kc, vc, oc, dyc]) => {
          const p = probabilities(qc, kc, scale); // recomputed, [n, Lq, Lk]
          // dS = P (dP - rowsum(dO O)), dP = dO Vᵀ: the softmax Jacobian applied to dP
          const rowTerm = tf.sum(tf.mul(dyc, oc), -1, true);
          const ds = tf.mul(p, tf.sub(batchMatMul(dyc, vc, false, true), rowTerm));
          return [
            tf.mul(batchMatMul(ds, kc), scale), // dQ = dS K / sqrt(d)
            tf.mul(batchMatMul(ds, qc, true, false), scale), // dK = dSᵀ Q / sqrt(d)
            batchMatMul(p, dyc, true, false), // dV = Pᵀ dO
          ];
        });
        return [
          tf.reshape(dq, q.shape),
          tf.reshape(dk, k.shape),
          tf.reshape(dvv, v.shape),
        ];
      },
    };
  })(q, k, v);
}
