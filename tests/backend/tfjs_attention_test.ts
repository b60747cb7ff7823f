import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { groupedAttention, needsGrouping } from "../../src/backend/tfjs_attention.ts";

tf.enableProdMode(); // no "install tfjs-node" banner

/** softmax(q kᵀ/√d) v with tfjs's own gradients: the reference. */
function composed(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): tf.Tensor {
  const scores = tf.div(tf.matMul(q, k, false, true), Math.sqrt(q.shape[3] as number));
  return tf.matMul(tf.softmax(scores), v);
}

function relativeError(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() =>
    tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / tf.max(tf.abs(b)).dataSync()[0]
  );
}

Deno.test("groupedAttention() matches softmax(q kᵀ/√d) v and its gradients over ragged groups", async () => {
  await tf.setBackend("cpu");
  tf.tidy(() => {
    const [q, k] = [
      tf.randomNormal([2, 3, 20, 8], 0, 1, "float32", 1),
      tf.randomNormal([2, 3, 12, 8], 0, 1, "float32", 2),
    ];
    const v = tf.randomNormal([2, 3, 12, 5], 0, 1, "float32", 3);
    const weights = tf.randomNormal([2, 3, 20, 5], 0, 1, "float32", 4);
    // 20 x 12 scores per slice and a budget of 2.5 slices: groups of 2, 2, 2 (6 slices).
    const grouped = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      tf.sum(tf.mul(groupedAttention(a, b, c, 2.5 * 20 * 12), weights));
    const reference = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      tf.sum(tf.mul(composed(a, b, c), weights));
    assert.ok(relativeError(groupedAttention(q, k, v, 2.5 * 240), composed(q, k, v)) < 1e-5);
    const mine = tf.grads(grouped)([q, k, v]);
    const theirs = tf.grads(reference)([q, k, v]);
    for (let i = 0; i < 3; i++) {
      const err = relativeError(mine[i], theirs[i]);
      assert.ok(err < 1e-5, `gradient of ${"qkv"[i]}: relative error ${err}`);
    }
  });
});

Deno.test("needsGrouping() groups the U-Net's 32x32 level at batch 64, not its 16x16 one", () => {
  assert.equal(needsGrouping(64 * 4, 1024, 1024), true);
  assert.equal(needsGrouping(64 * 4, 256, 256), false);
});
