/**
 * One process of the data-parallel training tests (parallel_test.ts): trains a tiny DDPM
 * convnet or DCGAN alone, or as one rank when the torchrun variables are set. The job is the
 * JSON first argument; prints one JSON line with this rank's final weights and what its gradient
 * averaging did (ProcessGroup.gradientSyncStats). DENO_DIFFUSION_DDP_OVERLAP=0 in the
 * environment turns the overlap of all-reduce and backward off.
 *
 * @module
 */
import { ProcessGroup } from "../../src/backend/distributed.ts";
import { Rng } from "../../src/core/rng.ts";
import { createBackend } from "../../src/backend/select.ts";
import { readTorchrunEnv } from "../../src/app/launch.ts";
import { Dataset } from "../../src/data/dataset.ts";
import { DEFAULT_DDPM_CONFIG } from "../../src/diffusion/task.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { createTask, type TaskConfig } from "../../src/app/registry.ts";
import { train } from "../../src/train/trainer.ts";

interface Job {
  kind: "ddpm" | "gan";
  runDir: string;
  batchSize: number;
  maxSteps: number;
  resume?: boolean;
  checkpointEvery?: number;
}

const job: Job = JSON.parse(Deno.args[0]);
const env = readTorchrunEnv();
const backend = await createBackend("torch-cpu");

/** 32 seeded random 32x32 images in two classes. */
function randomImages(): Dataset {
  const n = 32;
  const rng = new Rng(3);
  const images = Uint8Array.from({ length: n * 3 * 32 * 32 }, () => rng.int(0, 256));
  const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
  return new Dataset({ images, labels, imageShape: [3, 32, 32], classNames: ["a", "b"] });
}

const spec: TaskConfig = job.kind === "ddpm"
  ? {
    kind: "ddpm",
    config: {
      ...DEFAULT_DDPM_CONFIG,
      preset: "convnet",
      baseWidth: 8,
      timesteps: 50,
      ema: 0.9,
      emaStart: 2,
    },
  }
  : {
    kind: "gan",
    config: { ...DEFAULT_GAN_CONFIG, nz: 8, ngf: 4, ndf: 4, smooth: true, dNoise: 0.2 },
  };
// Ranks start from different initial weights on purpose: the broadcast must make them rank 0's.
const task = createTask(backend, spec, 1 + (env?.rank ?? 0) * 1000);
// Adam's eps raised from 1e-8 to 1e-6 for these comparisons: with 1e-8, a gradient component
// that cancels to ~1e-8 turns float32 summation-order differences (one batch of 16 against two
// of 8 summed) into updates that differ by up to ~10% for that one element (seen after the
// layers merge: 2.6e-5 on 2 of the 9,216 elements of the convnet's mid.weight after 5 steps,
// every other weight within 6e-7). PyTorch's DDP has the same sensitivity; it is not the
// averaging under test.
for (const opt of Object.values(task.optimizers)) opt.options = { ...opt.options, eps: 1e-6 };
const group = env && env.worldSize > 1
  ? await ProcessGroup.init(backend, {
    ...env,
    timeoutMs: 8000,
    configHash: JSON.stringify(job),
    // Small buckets, so even these tiny models' gradients travel in several (overlap test).
    bucketBytes: 2048,
  })
  : undefined;

// DD_DIE_AT_STEP=k: this rank kills itself (as `kill -9`) when it starts its k-th step.
const dieAt = Number(Deno.env.get("DD_DIE_AT_STEP") ?? 0);
if (dieAt > 0) {
  const step = task.step.bind(task);
  let count = 0;
  task.step = (batch, rng, progress) => {
    if (++count === dieAt) Deno.kill(Deno.pid, "SIGKILL");
    return step(batch, rng, progress);
  };
}

await train(task, randomImages(), {
  runDir: job.runDir,
  batchSize: job.batchSize,
  epochs: 100,
  maxSteps: job.maxSteps,
  seed: 7,
  flip: true,
  logEvery: 1,
  checkpointEvery: job.checkpointEvery ?? 0,
  previewEvery: 0,
  resume: job.resume,
  backendName: backend.name,
  report: () => {},
  group,
});
const weights: Record<string, number[]> = {};
for (const [groupName, store] of Object.entries(task.stores)) {
  for (const [name, t] of store.toHost()) weights[`${groupName}.${name}`] = Array.from(t.data);
}
console.log(
  JSON.stringify({ rank: env?.rank ?? 0, weights, sync: group?.gradientSyncStats() ?? null }),
);
group?.dispose();
task.dispose();
backend.dispose();
