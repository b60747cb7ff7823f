import assert from "node:assert/strict";
import type { Backend } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import type { Batch } from "../../src/data/batch.ts";
import { GanBatchTooLargeError } from "../../src/gan/memory.ts";
import { createGanTask, type GanTask, resolveGanConfig } from "../../src/gan/task.ts";
import { testEachBackend } from "../_backends.ts";
import { withLimit } from "../backend/memory_test.ts";

const SMALL = resolveGanConfig({ nz: 16, ngf: 8, ndf: 8 });

function noiseBatch(n: number, seed: number): Batch {
  return {
    images: new Rng(seed).uniformArray(n * 3 * 32 * 32, -1, 1),
    labels: new Int32Array(n),
    shape: [n, 3, 32, 32],
  };
}

/** Every weight and running statistic of both networks, read to the host. */
function snapshot(b: Backend, task: GanTask): Float32Array[] {
  const out: Float32Array[] = [];
  for (const store of [task.stores.generator, task.stores.discriminator]) {
    for (const name of store.names()) out.push(b.read(store.get(name)) as Float32Array);
  }
  return out;
}

testEachBackend(
  "a DCGAN batch over the memory limit is refused before training, naming the largest that fits",
  (b) => {
    // The limit: what a real step at batch 4 holds at its peak, measured without a limit.
    const limit = (() => {
      using task = createGanTask(b, SMALL, new Rng(0));
      task.step(noiseBatch(4, 1), new Rng(2), 0); // a first step, so the measured one is typical
      return b.peakBytes(() => void task.step(noiseBatch(4, 1), new Rng(2), 0));
    })();
    const limited = withLimit(b, limit);
    using task = createGanTask(limited, SMALL, new Rng(0));
    const before = snapshot(b, task);
    let refused: GanBatchTooLargeError | undefined;
    try {
      task.step(noiseBatch(16, 3), new Rng(4), 0);
    } catch (e) {
      if (!(e instanceof GanBatchTooLargeError)) throw e;
      refused = e;
    }
    assert.ok(refused, "batch 16 must not fit what batch 4 needs");
    const largest = refused.largestBatch;
    assert.ok(largest >= 2 && largest < 16, `largest batch ${largest}`);
    assert.match(refused.message, new RegExp(`largest batch that fits is ${largest}: pass`));
    assert.match(refused.message, new RegExp(`--batch-size ${largest} \\(or less\\)`));
    assert.match(refused.message, /BatchNorm normalises over the whole batch/);
    // Nothing was trained: weights and running statistics are as they were.
    assert.deepEqual(snapshot(b, task), before);
    // One more than the largest is refused too; the largest itself trains within the limit.
    assert.throws(
      () => task.step(noiseBatch(largest + 1, 5), new Rng(6), 0),
      GanBatchTooLargeError,
    );
    const peak = b.peakBytes(() => void task.step(noiseBatch(largest, 7), new Rng(8), 0));
    assert.ok(peak <= limit, `batch ${largest} held ${peak} bytes, over the limit ${limit}`);
    assert.notDeepEqual(snapshot(b, task), before);
  },
  { only: ["tfjs-wasm"] },
);

testEachBackend("a backend without a memory limit trains any DCGAN batch", (b) => {
  using task = createGanTask(withLimit(b, null), SMALL, new Rng(0));
  const metrics = task.step(noiseBatch(16, 3), new Rng(4), 0);
  assert.ok(Number.isFinite(metrics.lossD) && Number.isFinite(metrics.lossG));
}, { only: ["tfjs-wasm", "tfjs-cpu"] });
