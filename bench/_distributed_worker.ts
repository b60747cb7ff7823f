/**
 * One rank of bench/distributed.ts. `allreduce NUMEL WARMUP REPS BUCKET_BYTES`: times
 * all-reduces of a [NUMEL] float32 gradient split like a model's parameters; `train STEPS
 * BATCH [PRESET [BUCKET_BYTES]]`: trains a DDPM preset (default convnet) on random images and
 * reports images/s and (in a group) the gradient-sync totals. `DD_BENCH_BACKEND=torch-cuda` runs on the GPU (NCCL between ranks). Rank 0 (or
 * the lone process) prints one JSON line.
 *
 * @module
 */
import { ProcessGroup } from "../src/backend/distributed.ts";
import { Rng } from "../src/core/rng.ts";
import { createBackend } from "../src/backend/select.ts";
import { readTorchrunEnv } from "../src/app/launch.ts";
import { Dataset } from "../src/data/dataset.ts";
import { type DdpmConfig, DEFAULT_DDPM_CONFIG } from "../src/diffusion/task.ts";
import { createTask } from "../src/app/registry.ts";
import { train } from "../src/train/trainer.ts";

const [mode, ...args] = Deno.args;
const env = readTorchrunEnv();
// DD_BENCH_BACKEND=torch-cuda: one GPU per rank (the launcher-style CUDA_VISIBLE_DEVICES pin).
const backendName = Deno.env.get("DD_BENCH_BACKEND") === "torch-cuda" ? "torch-cuda" : "torch-cpu";
const backend = await createBackend(backendName);
const group = env && env.worldSize > 1
  ? await ProcessGroup.init(backend, {
    ...env,
    configHash: Deno.args.join(" "),
    bucketBytes: Number(args[3] ?? 25 * 2 ** 20),
  })
  : undefined;
const lead = (env?.rank ?? 0) === 0;

if (mode === "allreduce") {
  const [numel, warmup, reps] = args.map(Number);
  // Parameter-like pieces (1M floats each, the rest last), as a model's gradient list.
  const sizes: number[] = [];
  for (let left = numel; left > 0; left -= 2 ** 20) sizes.push(Math.min(2 ** 20, left));
  const grads = sizes.map((n) => backend.tensor(new Float32Array(n).fill(1), [n]));
  const seconds: number[] = [];
  for (let i = 0; i < warmup + reps; i++) {
    group!.barrier();
    const start = performance.now();
    group!.allReduceMean(grads);
    if (i >= warmup) seconds.push((performance.now() - start) / 1000);
  }
  const check = backend.read(grads[0])[0];
  if (check !== 1) throw new Error(`mean of ones is ${check}`);
  if (lead) console.log(JSON.stringify({ seconds, bytes: numel * 4, backend: backendName }));
} else if (mode === "train") {
  const [steps, batchSize] = args.slice(0, 2).map(Number);
  const preset = args[2] ?? "convnet";
  const n = 256;
  const rng = new Rng(3);
  const images = Uint8Array.from({ length: n * 3 * 32 * 32 }, () => rng.int(0, 256));
  const data = new Dataset({
    images,
    labels: new Int32Array(n),
    imageShape: [3, 32, 32],
    classNames: ["x"],
  });
  const task = createTask(backend, {
    kind: "ddpm",
    config: { ...DEFAULT_DDPM_CONFIG, preset: preset as DdpmConfig["preset"] },
  }, 1);
  // DD_BENCH_ALTERNATE=1: the overlap is switched on and off on alternate steps (every rank
  // alike) and each step timed, a paired comparison that drifts in the machine's load hit alike.
  const stepMs: Record<"on" | "off", number[]> = { on: [], off: [] };
  if (group && Deno.env.get("DD_BENCH_ALTERNATE") === "1") {
    const step = task.step.bind(task);
    let count = 0;
    task.step = (batch, stepRng, progress) => {
      const on = count++ % 2 === 0;
      group.overlap = on;
      const start = performance.now();
      const metrics = step(batch, stepRng, progress);
      stepMs[on ? "on" : "off"].push(performance.now() - start);
      return metrics;
    };
  }
  const runDir = await Deno.makeTempDir();
  try {
    const result = await train(task, data, {
      runDir,
      batchSize,
      epochs: 100,
      maxSteps: steps,
      seed: 1,
      flip: true,
      logEvery: 1000,
      checkpointEvery: 0,
      previewEvery: 0,
      backendName: backend.name,
      report: () => {},
      group,
    });
    if (lead) {
      const sync = group?.gradientSyncStats() ?? null;
      console.log(JSON.stringify({ imagesPerSecond: result.imagesPerSecond, sync, stepMs }));
    }
  } finally {
    if (lead) await Deno.remove(runDir, { recursive: true });
    task.dispose();
  }
} else {
  throw new Error(`unknown mode ${mode}: allreduce or train`);
}
group?.dispose();
backend.dispose();
