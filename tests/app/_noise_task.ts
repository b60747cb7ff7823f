/**
 * A model-free TrainTask for the sampling tests: image i is its noise stream's first normals
 * (squashed into [-1, 1]) plus its label, as a real sampler uses its noise.
 *
 * @module
 */
import { type ImageNoise, type Rng, toImageNoise } from "../../src/core/rng.ts";
import type { ParamStore } from "../../src/nn/params.ts";
import type { TrainTask } from "../../src/task/task.ts";

/**
 * A [3, 4, 4] image task whose exported weights are `weights` (they only fingerprint the run);
 * `hook` gets each sample call's image count first.
 */
export function noiseTaskOn(
  weights: ParamStore,
  hook: (count: number) => void = () => {},
): TrainTask {
  const per = 48;
  return {
    kind: "gan",
    config: {},
    stores: { generator: weights },
    exportStore: "generator",
    modelStores: ["generator"],
    optimizers: {},
    step: () => ({}),
    sample: (labels: Int32Array, noise: Rng | ImageNoise) => {
      hook(labels.length);
      const streams = toImageNoise(noise);
      const out = new Float32Array(labels.length * per); // [n, 3, 4, 4]
      labels.forEach((y, i) => {
        const z = streams.stream(i).normal(per);
        for (let k = 0; k < per; k++) out[i * per + k] = Math.tanh(z[k]) * 0.9 + 0.01 * y;
      });
      return out;
    },
    imageShape: [3, 4, 4],
    numClasses: 0,
    dispose: () => {},
    [Symbol.dispose]: () => {},
  };
}
