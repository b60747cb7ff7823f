/**
 * Soak test (issue 17; not part of the suite): a long training run through the real trainer
 * (logging, checkpoints every 500 steps) and a long sampling run, with the resident set size
 * and the backend's live-tensor count sampled along the way. Prints the memory slope in MB per
 * 1,000 steps (and per 1,000 images): flat within noise means no leak.
 *
 *     deno run -A bench/soak.ts [--backend torch-cpu] [--steps 5000] [--images 20000]
 *       [--ngf 8] [--batch 32]
 *
 * The model is a small DCGAN (the `dcgan` preset at --ngf/--ndf width, nz 16) on random
 * 32x32 data: a leak per step or per tensor shows the same at any width, and a small model
 * makes 5,000 steps fit in minutes on a CPU.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Rng } from "../src/core/rng.ts";
import { type BackendName, createBackend } from "../src/backend/select.ts";
import { createTask } from "../src/app/registry.ts";
import { DEFAULT_GAN_CONFIG } from "../src/gan/task.ts";
import { Dataset } from "../src/data/dataset.ts";
import { train } from "../src/train/trainer.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    backend: { type: "string", default: "torch-cpu" },
    steps: { type: "string", default: "5000" },
    images: { type: "string", default: "20000" },
    ngf: { type: "string", default: "8" },
    batch: { type: "string", default: "32" },
    every: { type: "string", default: "250" },
  },
  strict: true,
});
const steps = Number(values.steps);
const images = Number(values.images);
const every = Number(values.every);
const MiB = 2 ** 20;

const backend = await createBackend(values.backend as BackendName);
const width = Number(values.ngf);
const task = createTask(backend, {
  kind: "gan",
  config: { ...DEFAULT_GAN_CONFIG, ngf: width, ndf: width, nz: 16 },
}, 0);
const n = 512;
const data = new Dataset({
  images: Uint8Array.from(new Rng(1).intArray(n * 3 * 32 * 32, 0, 256)),
  labels: new Int32Array(n),
  imageShape: [3, 32, 32],
  classNames: ["noise"],
});

/** [x, rss MiB, live tensors] samples. */
type Sample = [number, number, number];
const measure = (x: number): Sample => [x, Deno.memoryUsage().rss / MiB, backend.liveTensors()];

/** Least-squares slope of y over x, for the samples after the first `skip`. */
function slope(samples: Sample[], skip: number): number {
  const s = samples.slice(skip);
  const mx = s.reduce((a, p) => a + p[0], 0) / s.length;
  const my = s.reduce((a, p) => a + p[1], 0) / s.length;
  const num = s.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0);
  const den = s.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  return den > 0 ? num / den : 0;
}

function table(label: string, samples: Sample[]): void {
  console.log(`${label.padStart(8)}  rss MiB  live tensors`);
  for (const [x, rss, live] of samples) {
    console.log(
      `${String(x).padStart(8)}  ${rss.toFixed(1).padStart(7)}  ${String(live).padStart(12)}`,
    );
  }
}

const runDir = await Deno.makeTempDir({ prefix: "soak-" });
const trainSamples: Sample[] = [measure(0)];
let step = 0;
const t0 = performance.now();
await train(task, data, {
  runDir,
  batchSize: Number(values.batch),
  epochs: 1,
  maxSteps: steps,
  seed: 0,
  flip: true,
  logEvery: 10,
  checkpointEvery: 500,
  previewEvery: 0,
  backendName: backend.name,
  report: (_line, final) => {
    if (final) return;
    step++;
    if (step % every === 0) trainSamples.push(measure(step));
  },
});
const trainSeconds = (performance.now() - t0) / 1000;

const sampleSamples: Sample[] = [measure(0)];
const chunk = 1000;
const t1 = performance.now();
for (let done = 0; done < images; done += chunk) {
  task.sample(new Int32Array(Math.min(chunk, images - done)), new Rng(done));
  sampleSamples.push(measure(done + Math.min(chunk, images - done)));
}
const sampleSeconds = (performance.now() - t1) / 1000;
task.dispose();
const liveAfterDispose = backend.liveTensors();
backend.dispose();
await Deno.remove(runDir, { recursive: true });

table("step", trainSamples);
table("images", sampleSamples);
// Skip the first samples: allocator pools and JIT warm up there.
const perStep = slope(trainSamples, Math.min(2, trainSamples.length - 2)) * 1000 * MiB / 1e6;
const perImage = slope(sampleSamples, Math.min(2, sampleSamples.length - 2)) * 1000 * MiB / 1e6;
console.log(
  `\n${backend.name}, dcgan ngf=ndf=${width} nz=16, batch ${values.batch}: ` +
    `${steps} steps in ${trainSeconds.toFixed(0)} s, ${images} images in ${
      sampleSeconds.toFixed(0)
    } s`,
);
console.log(`training: ${perStep.toFixed(3)} MB per 1,000 steps (least squares after warm-up)`);
console.log(`sampling: ${perImage.toFixed(3)} MB per 1,000 images`);
const live = trainSamples.map((s) => s[2]);
console.log(
  `live tensors: ${Math.min(...live)}..${Math.max(...live)} during training, ` +
    `${sampleSamples.at(-1)![2]} after sampling, ${liveAfterDispose} after dispose`,
);
