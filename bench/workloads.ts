/**
 * Our side of the PyTorch comparison (bench/compare.ts): each workload builds the product's own
 * task on a backend and times one unit of work, exactly as a user's run would do it. The peer
 * (bench/reference/peer.py) implements the same workloads in PyTorch under the same names.
 *
 * @module
 */
import type { Backend } from "../src/backend/backend.ts";
import { Rng } from "../src/core/rng.ts";
import {
  createDdpmTask,
  type DdpmSampleOptions,
  DEFAULT_DDPM_CONFIG,
} from "../src/diffusion/task.ts";
import { createGanTask, resolveGanConfig } from "../src/gan/task.ts";
import type { DenoiserPreset } from "../src/models/denoiser.ts";
import { toInceptionInput } from "../src/metrics/features.ts";
import { inceptionFromStateDict } from "../src/metrics/inception.ts";
import { inceptionStateDictShapes } from "../src/metrics/inception_layers.ts";
import type { Batch } from "../src/data/batch.ts";

/** Workload names shared with peer.py, with the letter of issue 7 that each answers. */
export const WORKLOADS = {
  "train-unet-2xud-half": "a",
  "train-unet-3x": "a",
  "sample-unet-2xud-half": "b",
  "dcgan-step": "c",
  "fid-features": "d",
} as const;

/** A workload name. */
export type WorkloadName = keyof typeof WORKLOADS;

/** One workload built on one backend. */
export interface Workload {
  readonly name: WorkloadName;
  /** Images one {@link Workload.run} processes (images/s = images / seconds). */
  readonly images: number;
  /** Parameter counts by group, as PyTorch would count them (the peer asserts equality). */
  readonly params: Record<string, number>;
  /** One timed unit of work; returns only after the result is on the host. */
  run(): void;
  dispose(): void;
}

/** Sizes of issue 7: batch 64 for DDPM, 128 for the DCGAN, 64 images for sampling and FID. */
export const SIZES = { train: 64, sample: 64, sampleSteps: 50, gan: 128, fid: 64 } as const;

/** Expands "a,b" or full names into workload names, in table order. */
export function parseWorkloads(list: string): WorkloadName[] {
  const names = Object.keys(WORKLOADS) as WorkloadName[];
  const picked = new Set<WorkloadName>();
  for (const item of list.split(",").map((s) => s.trim()).filter(Boolean)) {
    const matches = names.filter((n) => n === item || WORKLOADS[n] === item);
    if (matches.length === 0) {
      throw new Error(
        `unknown workload "${item}": use a, b, c, d or one of ${names.join(", ")}`,
      );
    }
    for (const m of matches) picked.add(m);
  }
  return names.filter((n) => picked.has(n));
}

/** A batch of uniform noise in [-1, 1] (the timing does not depend on the pixel values). */
function randomBatch(n: number, rng: Rng): Batch {
  return {
    images: rng.uniformArray(n * 3 * 32 * 32, -1, 1),
    labels: new Int32Array(n),
    shape: [n, 3, 32, 32],
  };
}

/** Changes to a workload's standard sizes (the comparison with PyTorch uses none). */
export interface WorkloadOptions {
  /** Images per run instead of the workload's {@link SIZES} entry (e.g. a slow backend). */
  batch?: number;
}

/**
 * Builds a workload on `backend`.
 *
 * @example
 * ```ts
 * import { createBackend } from "../src/backend/select.ts";
 * import { createWorkload } from "./workloads.ts";
 * const backend = await createBackend("torch-cpu");
 * const w = createWorkload(backend, "dcgan-step");
 * const start = performance.now();
 * w.run();
 * console.log(w.images / ((performance.now() - start) / 1000), "images/s");
 * w.dispose();
 * ```
 */
export function createWorkload(
  backend: Backend,
  name: WorkloadName,
  options: WorkloadOptions = {},
): Workload {
  const rng = new Rng(0);
  const batchOf = (standard: number) => {
    const batch = options.batch ?? standard;
    if (!Number.isInteger(batch) || batch < 1) {
      throw new Error(`the batch must be a whole number >= 1, got ${options.batch}`);
    }
    return batch;
  };
  if (name === "train-unet-2xud-half" || name === "train-unet-3x") {
    const preset = name.slice("train-".length) as DenoiserPreset;
    // The product's DDPM step: q_sample, L_simple, backward, clip 1.0, AdamW, EMA.
    const task = createDdpmTask(backend, { ...DEFAULT_DDPM_CONFIG, preset }, rng.fork());
    const size = batchOf(SIZES.train);
    const batch = randomBatch(size, rng);
    return {
      name,
      images: size,
      params: { model: task.stores.model.count() },
      run: () => void task.step(batch, rng, 0),
      dispose: () => task.dispose(),
    };
  }
  if (name === "sample-unet-2xud-half") {
    const task = createDdpmTask(
      backend,
      { ...DEFAULT_DDPM_CONFIG, preset: "unet-2xud-half" },
      rng.fork(),
    );
    const size = batchOf(SIZES.sample);
    const labels = new Int32Array(size);
    const sampling: DdpmSampleOptions = {
      sampler: "ddim",
      steps: SIZES.sampleSteps,
      eta: 0,
      batchSize: size,
    };
    return {
      name,
      images: size,
      params: { model: task.stores.model.count() },
      run: () => void task.sample(labels, rng, sampling),
      dispose: () => task.dispose(),
    };
  }
  if (name === "dcgan-step") {
    const task = createGanTask(backend, resolveGanConfig({}), rng.fork());
    const size = batchOf(SIZES.gan);
    const batch = randomBatch(size, rng);
    return {
      name,
      images: size,
      params: {
        generator: task.stores.generator.count(),
        discriminator: task.stores.discriminator.count(),
      },
      run: () => void task.step(batch, rng, 0),
      dispose: () => task.dispose(),
    };
  }
  if (name === "fid-features") return fidWorkload(backend, rng, batchOf(SIZES.fid));
  throw new Error(`unknown workload "${name}"`);
}

/**
 * FID Inception features of 32x32 images (resized to 299x299 on the backend) with random
 * weights drawn like PyTorch's defaults: conv weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
 * BatchNorm weight 1, bias 0, running mean 0, running variance 1.
 */
function fidWorkload(backend: Backend, rng: Rng, size: number): Workload {
  const stateDict = new Map<string, { shape: number[]; data: Float32Array }>();
  let params = 0;
  for (const [key, shape] of inceptionStateDictShapes()) {
    const n = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (key.endsWith(".conv.weight")) {
      const bound = 1 / Math.sqrt(shape[1] * shape[2] * shape[3]);
      data = rng.uniformArray(n, -bound, bound);
    } else {
      const one = key.endsWith(".bn.weight") || key.endsWith(".bn.running_var");
      data = new Float32Array(n).fill(one ? 1 : 0);
    }
    if (!key.includes("running_")) params += n;
    stateDict.set(key, { shape, data });
  }
  const net = inceptionFromStateDict(backend, stateDict, 2048, "random weights");
  const images = rng.uniformArray(size * 3 * 32 * 32, 0, 1);
  return {
    name: "fid-features",
    images: size,
    params: { inception: params },
    run: () => {
      backend.scope(() =>
        backend.noGrad(() => {
          const x = backend.tensor(images, [size, 3, 32, 32]); // [N, 3, 32, 32] in [0, 1]
          backend.read(net.features(toInceptionInput(backend, x))); // [N, 2048]
        })
      );
    },
    dispose: () => net.dispose(),
  };
}
