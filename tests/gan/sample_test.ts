import { deepEqual, ok, throws } from "node:assert/strict";
import { imageNoise, Rng } from "../../src/core/rng.ts";
import {
  type DcganModelConfig,
  defineGenerator,
  generatorForward,
} from "../../src/models/dcgan.ts";
import { ParamStore } from "../../src/nn/params.ts";
import { checkGanLabels, sampleGenerator } from "../../src/gan/sample.ts";
import { testEachBackend } from "../_backends.ts";
import { maxAbsDiff } from "./_dcgan_fixture.ts";

const MODEL: DcganModelConfig = {
  preset: "dcgan",
  nz: 8,
  ngf: 4,
  ndf: 4,
  channels: 3,
  numClasses: 2,
  embedDim: 2,
};
const PER_IMAGE = 3 * 32 * 32;

testEachBackend(
  "sampleGenerator() draws what one eval-mode pass over all the images' own z gives, in any batch size",
  (b) => {
    using generator = new ParamStore(b);
    defineGenerator(generator, new Rng(1), MODEL);
    const labels = Int32Array.from([1, 0, 1, 1, 0]);
    // Reference: image i's z drawn from stream i of the seed, all five images in one pass.
    const z = new Float32Array(5 * MODEL.nz);
    for (let i = 0; i < 5; i++) z.set(imageNoise(4).stream(i).normal(MODEL.nz), i * MODEL.nz);
    let expected: ArrayLike<number> = [];
    b.scope(() =>
      b.noGrad(() => {
        const zt = b.tensor(z, [5, MODEL.nz, 1, 1]);
        const y = b.tensor(labels, [5], "int32");
        const images = generatorForward(b, generator, MODEL, zt, y, { training: false });
        expected = b.read(images); // [5, 3, 32, 32]
      })
    );
    // An untrained G's eval-mode images are small: differences are measured against their size.
    const scale = maxAbsDiff(expected, new Float32Array(expected.length));
    ok(scale > 0);
    const calls: [number, number][] = [];
    const got = sampleGenerator(b, generator, MODEL, labels, imageNoise(4), {
      batchSize: 2,
      onBatch: (done, total) => calls.push([done, total]),
    });
    deepEqual(got.length, 5 * PER_IMAGE);
    const diff = maxAbsDiff(got, expected);
    ok(diff <= 1e-4 * scale, `passes of 2 differ by ${diff} (images up to ${scale})`);
    deepEqual(calls, [[1, 3], [2, 3], [3, 3]]);
    // The default batch (one pass here), and a fraction below 1 falling back to it.
    for (const batchSize of [undefined, 0.5]) {
      const passes: number[] = [];
      const again = sampleGenerator(b, generator, MODEL, labels, imageNoise(4), {
        batchSize,
        onBatch: (done) => passes.push(done),
      });
      ok(maxAbsDiff(again, expected) <= 1e-4 * scale, `batchSize ${batchSize}`);
      deepEqual(passes, [1]);
    }
    // Another seed, other images.
    const other = sampleGenerator(b, generator, MODEL, labels, imageNoise(5));
    ok(maxAbsDiff(other, expected) > 0.1 * scale);
  },
);

testEachBackend(
  "sampleGenerator() refuses a label outside the classes before any pass",
  (b) => {
    using generator = new ParamStore(b);
    defineGenerator(generator, new Rng(1), MODEL);
    let passes = 0;
    throws(
      () =>
        sampleGenerator(b, generator, MODEL, Int32Array.from([0, 1, 2]), new Rng(0), {
          batchSize: 1,
          onBatch: () => passes++,
        }),
      /label 2 is outside the model's 2 classes \(0\.\.1\)/,
    );
    deepEqual(passes, 0);
  },
  { only: ["tfjs-cpu"] },
);

Deno.test("checkGanLabels() accepts the classes 0..n-1, and anything when unconditional", () => {
  checkGanLabels(Int32Array.from([0, 1, 1]), 2);
  checkGanLabels(Int32Array.from([-3, 7]), 0);
  throws(() => checkGanLabels(Int32Array.from([-1]), 2), /label -1 is outside/);
  throws(() => checkGanLabels(Int32Array.from([0, 3]), 3), /label 3 is outside .*\(0\.\.2\)/);
});
