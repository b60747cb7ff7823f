/**
 * The split gradient tape (open, run ops, differentiate) against tf.variableGrads on the same
 * function, on tfjs-cpu: same gradients, including through the project's custom gradients
 * (conv, matmul); nothing left on the tape afterwards; no nesting; paused ops unrecorded.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { OpenTape, pauseTape } from "../../src/backend/tfjs_tape.ts";
import { conv2dWithGrad } from "../../src/backend/tfjs_conv.ts";
import { matmulWithGrad } from "../../src/backend/tfjs_kernels.ts";

tf.enableProdMode(); // no "install tfjs-node" banner
await tf.setBackend("cpu");

function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3));
}

/** A small loss through a conv, a matmul and elementwise ops: sum(tanh(mm(conv(x, w)))^2). */
function lossOf(x: tf.Tensor4D, w: tf.Variable, m: tf.Variable): tf.Scalar {
  const y = conv2dWithGrad(x, w, 1, 1); // [1, 4, 4, 3]
  const flat = tf.reshape(y, [16, 3]);
  return tf.sum(tf.square(tf.tanh(matmulWithGrad(flat, m)))) as tf.Scalar;
}

Deno.test("OpenTape gives tf.variableGrads' gradients and frees what it saved", () => {
  const x = tf.tensor4d(values(32, 1), [1, 4, 4, 2]);
  const w = tf.variable(tf.tensor4d(values(54, 2), [3, 2, 3, 3]));
  const m = tf.variable(tf.tensor2d(values(6, 3), [3, 2]));
  const base = tf.memory().numTensors;

  const reference = tf.variableGrads(() => lossOf(x, w, m), [w, m]);
  const expected = [reference.grads[w.name], reference.grads[m.name]].map((g) => g.dataSync());
  const expectedValue = reference.value.dataSync()[0];
  tf.dispose([reference.value, ...Object.values(reference.grads)]);
  assert.equal(tf.memory().numTensors, base);

  const tape = new OpenTape();
  const loss = lossOf(x, w, m);
  const grads = tape.gradients(loss, [w, m]);
  assert.ok(!tape.open);
  assert.equal(loss.dataSync()[0], expectedValue);
  grads.forEach((g, i) => assert.deepEqual(g!.dataSync(), expected[i], `gradient ${i}`));
  // The loss, its intermediates (not tidied here) and the gradients are all that is left.
  tf.dispose([loss, ...grads.map((g) => g!)]);
  tape.close(); // idempotent
  assert.equal(tf.engine().state.gradientDepth, 0);
  assert.equal(tf.engine().state.activeTape, null);
  tf.dispose([x, w, m]);
});

Deno.test("OpenTape frees the saved tensors when closed without gradients", () => {
  const w = tf.variable(tf.tensor1d([1, 2, 3]));
  const base = tf.memory().numTensors;
  const tape = new OpenTape();
  const y = tf.tidy(() => tf.sum(tf.exp(w))); // exp saves its output for the backward pass
  assert.ok(tf.memory().numTensors > base + 1);
  tape.close();
  assert.equal(tf.memory().numTensors, base + 1); // only y
  y.dispose();
  w.dispose();
});

Deno.test("OpenTape refuses to nest and leaves the outer tape working", () => {
  const w = tf.variable(tf.tensor1d([1, -2]));
  const outer = new OpenTape();
  assert.throws(() => new OpenTape(), /cannot nest/);
  const loss = tf.sum(tf.mul(w, w));
  const [g] = outer.gradients(loss, [w]);
  assert.deepEqual([...g!.dataSync()], [2, -4]);
  tf.dispose([loss, g!, w]);
});

Deno.test("ops run while the tape is paused get no gradient; unrelated variables get null", () => {
  const w = tf.variable(tf.tensor1d([3]));
  const unused = tf.variable(tf.tensor1d([5]));
  const tape = new OpenTape();
  const resume = pauseTape();
  const frozen = tf.mul(w, w); // not recorded: a constant to the tape
  resume();
  const loss = tf.sum(tf.add(tf.mul(frozen, w), w)); // d/dw = frozen + 1 = 10
  const [g, none] = tape.gradients(loss, [w, unused]);
  assert.deepEqual([...g!.dataSync()], [10]);
  assert.equal(none, null);
  tf.dispose([frozen, loss, g!, w, unused]);
});
