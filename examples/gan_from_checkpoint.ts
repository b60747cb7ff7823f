/**
 * Trains a DCGAN on CIFAR-10 frogs for a few steps, reopens its checkpoint as a user would
 * later, and writes 64 samples as a folder of PNGs (FID input).
 *
 *   deno run -A examples/gan_from_checkpoint.ts ../shared/data/cifar10-jpg
 *
 * @module
 */
import {
  createTask,
  DEFAULT_GAN_CONFIG,
  loadDataset,
  openCheckpoint,
  Rng,
  selectBackend,
  train,
  writeImageFolder,
} from "../mod.ts";

const data = await loadDataset({ source: Deno.args[0], split: "train", classes: "frog" });
using backend = await selectBackend({ log: console.error });
const runDir = "runs/example-gan";
{
  // A block of its own, so the fresh task's tensors are freed before the checkpoint is opened.
  using fresh = createTask(
    backend,
    { kind: "gan", config: { ...DEFAULT_GAN_CONFIG, smooth: true } },
    0,
  );
  await train(fresh, data, {
    runDir,
    batchSize: 128,
    epochs: 1,
    maxSteps: 10,
    seed: 0,
    flip: true,
    backendName: backend.name,
  });
}
const { task: opened, checkpoint } = await openCheckpoint(backend, runDir, "gan");
using task = opened;
console.log(`reopened a ${checkpoint.state.kind} checkpoint at step ${checkpoint.state.step}`);
const images = task.sample(new Int32Array(64), new Rng(7));
await writeImageFolder(`${runDir}/fid-samples`, images, [64, ...task.imageShape]);
console.log(`wrote 64 PNGs to ${runDir}/fid-samples`);
