import assert from "node:assert/strict";
import { sampleInChunks } from "../../src/app/sampling.ts";
import { Rng } from "../../src/core/rng.ts";
import type { TrainTask } from "../../src/task/task.ts";

/** A task whose samples are their own label, so chunk boundaries show in the output. */
function labelEcho(calls: number[]): TrainTask {
  return {
    kind: "gan",
    config: {},
    stores: {},
    exportStore: "generator",
    modelStores: [],
    optimizers: {},
    step: () => ({}),
    sample: (labels: Int32Array) => {
      calls.push(labels.length);
      const out = new Float32Array(labels.length * 3); // [n, 3, 1, 1]
      for (let i = 0; i < out.length; i++) out[i] = labels[Math.floor(i / 3)];
      return out;
    },
    imageShape: [3, 1, 1],
    numClasses: 0,
    dispose: () => {},
    [Symbol.dispose]: () => {},
  };
}

Deno.test("sampleInChunks() samples in chunks of at most 1,000 and keeps the label order", () => {
  const calls: number[] = [];
  const labels = Int32Array.from({ length: 2500 }, (_, i) => i % 7);
  const images = sampleInChunks(labelEcho(calls), labels, new Rng(0), {}, false);
  assert.deepEqual(calls, [1000, 1000, 500]);
  assert.equal(images.length, 2500 * 3);
  for (let i = 0; i < 2500; i++) assert.equal(images[i * 3 + 2], i % 7);
});
