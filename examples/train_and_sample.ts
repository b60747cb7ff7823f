/**
 * Trains a small DDPM on CIFAR-10 cats for a few steps, then samples a grid.
 *
 *   deno run -A examples/train_and_sample.ts ../shared/data/cifar10-jpg
 *
 * @module
 */
import {
  createTask,
  DEFAULT_DDPM_CONFIG,
  loadDataset,
  Rng,
  selectBackend,
  train,
  writeImageGrid,
} from "../mod.ts";

const data = await loadDataset({ source: Deno.args[0], split: "train", classes: "cat" });
using backend = await selectBackend({ log: console.error });
// The convnet preset at a quarter width: minutes on a CPU, not days (use "unet-2xud" on a GPU).
const config = { ...DEFAULT_DDPM_CONFIG, preset: "convnet" as const, baseWidth: 16 };
using task = createTask(backend, { kind: "ddpm", config }, 0);
const result = await train(task, data, {
  runDir: "runs/example-ddpm",
  batchSize: 32,
  epochs: 1,
  maxSteps: 20,
  seed: 0,
  flip: true,
  backendName: backend.name,
});
console.log(`trained ${result.step} steps at ${result.imagesPerSecond.toFixed(1)} images/s`);
const images = task.sample(new Int32Array(16), new Rng(1), { sampler: "ddim", steps: 20 });
await writeImageGrid("runs/example-ddpm/grid.png", images, [16, ...task.imageShape], { nrow: 4 });
console.log("wrote runs/example-ddpm/grid.png");
