/**
 * An exported model (the sampling weights of a run, see src/web/export.ts) opened on any
 * {@link Backend} and sampled with the project's own code: the denoiser or DCGAN generator
 * forward passes, the noise schedule and the DDPM/DDIM sampler. The page runs this in a Web
 * Worker; the tests run it in Deno too.
 *
 * It assembles those pieces the way `createDdpmTask` and `createGanTask` do for `sample` (a GAN
 * runs the task's own loop, `sampleGenerator` of gan/sample.ts), but over a store holding only the
 * sampling weights: the tasks would also allocate the training copy, the optimizer moments (3x the
 * memory) and draw a random initialisation first, and their modules import the trainer's file
 * I/O, which a browser bundle cannot carry. The RNG draws, batch sizes and sampler options are
 * those of `cli.ts sample`, so a seed gives the same images
 * (tests/web/export_test.ts compares them).
 *
 * @module
 */
import type { Backend } from "../../backend/backend.ts";
import { imageNoise } from "../../core/rng.ts";
import { decodeSafetensors, toFloat32 } from "../../io/safetensors.ts";
import { ParamStore } from "../../nn/params.ts";
import { denoiserOverStore, type DenoiserPreset } from "../../models/denoiser.ts";
import type { DcganModelConfig, DcganPreset } from "../../models/dcgan.ts";
import { DiffusionProcess, type VarianceType } from "../../diffusion/process.ts";
import { makeSchedule, type ScheduleKind } from "../../diffusion/schedule.ts";
import { sampleImages } from "../../diffusion/sampler.ts";
import { type DdpmConfig, sampleBatchSize } from "../../diffusion/task.ts";
import { sampleGenerator } from "../../gan/sample.ts";

/** safetensors metadata keys of an exported model (the run's model.safetensors uses the first two). */
export const META_KIND = "deno_diffusion_kind";
export const META_CONFIG = "deno_diffusion_config";
/** JSON array of class names ([] when unconditional or unnamed). */
export const META_CLASSES = "deno_diffusion_classes";

/** What the page shows and asks about before sampling. */
export interface ModelInfo {
  kind: "ddpm" | "gan";
  /** [C, H, W]. */
  imageShape: [number, number, number];
  numClasses: number;
  /** Names of classes 0..numClasses-1 ("0", "1", ... when the run had none). */
  classNames: string[];
  /** Diffusion: T (the most DDIM steps); GAN: 1. */
  timesteps: number;
  /** Number of weights. */
  params: number;
}

/** One sampling request. */
export interface SampleRequest {
  /** Images to draw. */
  count: number;
  /** Seed of the host RNG (same as `cli.ts sample --seed`). */
  seed: number;
  /** Diffusion: DDIM steps (1..T). Ignored for a GAN. */
  steps: number;
  /** Conditional models: the class of every image. */
  classId: number;
}

/** A loaded model. */
export interface ExportedModel {
  readonly info: ModelInfo;
  /**
   * Draws `count` images: float32 [count, C, H, W] in [-1, 1]. `onProgress(done, total)` is
   * called after each network evaluation.
   */
  sample(request: SampleRequest, onProgress?: (done: number, total: number) => void): Float32Array;
  dispose(): void;
}

/**
 * Opens exported safetensors bytes (from `cli.ts export --web`) on `backend`.
 *
 * @example
 * ```ts ignore
 * const model = loadExportedModel(backend, await Deno.readFile("web/model.safetensors"));
 * const images = model.sample({ count: 4, seed: 0, steps: 50, classId: 0 });
 * ```
 */
export function loadExportedModel(backend: Backend, bytes: Uint8Array): ExportedModel {
  const { tensors, metadata } = decodeSafetensors(bytes, "model.safetensors");
  const kind = metadata[META_KIND];
  if (kind !== "ddpm" && kind !== "gan") {
    throw new Error(
      `model.safetensors has no ${META_KIND} "ddpm" or "gan" (got ${kind}): export it with ` +
        "`cli.ts export --ckpt RUN --web OUT_DIR`",
    );
  }
  const config = JSON.parse(metadata[META_CONFIG] ?? "null") as Record<string, unknown> | null;
  if (!config) throw new Error(`model.safetensors has no ${META_CONFIG} metadata`);
  const store = new ParamStore(backend);
  let params = 0;
  for (const [name, t] of tensors) {
    store.add(name, t.shape, toFloat32(t), false);
    params += t.shape.reduce((a, d) => a * d, 1);
  }
  const numClasses = Number(config.numClasses ?? 0);
  const named = JSON.parse(metadata[META_CLASSES] ?? "[]") as string[];
  const classNames = Array.from({ length: numClasses }, (_, i) => named[i] ?? String(i));
  try {
    return kind === "ddpm"
      ? ddpmModel(backend, store, config as unknown as DdpmConfig, classNames, params)
      : ganModel(backend, store, config, classNames, params);
  } catch (e) {
    store.dispose();
    throw e;
  }
}

function labelsOf(info: ModelInfo, request: SampleRequest): Int32Array {
  if (!Number.isInteger(request.count) || request.count < 1) {
    throw new RangeError(`count must be a positive integer, got ${request.count}`);
  }
  if (info.numClasses === 0) return new Int32Array(request.count);
  if (
    !(Number.isInteger(request.classId) && request.classId >= 0 &&
      request.classId < info.numClasses)
  ) {
    throw new RangeError(`class ${request.classId} is outside 0..${info.numClasses - 1}`);
  }
  return new Int32Array(request.count).fill(request.classId);
}

function ddpmModel(
  backend: Backend,
  store: ParamStore,
  config: DdpmConfig,
  classNames: string[],
  params: number,
): ExportedModel {
  const options = {
    preset: config.preset as DenoiserPreset,
    numClasses: config.numClasses,
    imageSize: config.imageSize,
    channels: config.channels,
    timesteps: config.timesteps,
    baseWidth: config.baseWidth,
  };
  const denoiser = denoiserOverStore(backend, options, store);
  const process = new DiffusionProcess(
    backend,
    makeSchedule({ kind: config.schedule as ScheduleKind, timesteps: config.timesteps }),
  );
  const info: ModelInfo = {
    kind: "ddpm",
    imageShape: [config.channels, config.imageSize, config.imageSize],
    numClasses: config.numClasses,
    classNames,
    timesteps: config.timesteps,
    params,
  };
  return {
    info,
    sample(request, onProgress) {
      const labels = labelsOf(info, request);
      const steps = Math.round(request.steps);
      if (!(steps >= 1 && steps <= config.timesteps)) {
        throw new RangeError(`DDIM steps must be in 1..${config.timesteps}, got ${request.steps}`);
      }
      const batchSize = sampleBatchSize(config, 1);
      const total = steps * Math.ceil(labels.length / batchSize);
      let done = 0;
      // As `cli.ts sample --sampler ddim --steps N`: clipped x0, eta 0, the task's batch size.
      return sampleImages(
        backend,
        process,
        (x, t, y) => {
          const eps = denoiser.forward(x, t, y);
          onProgress?.(++done, total);
          return eps;
        },
        info.imageShape,
        config.numClasses > 0 ? { labels } : { count: labels.length },
        imageNoise(request.seed), // as `cli.ts sample --seed`: one noise stream per image
        {
          varianceType: config.varianceType as VarianceType,
          nullClass: config.numClasses,
          batchSize,
          clipX0: true,
          sampler: "ddim",
          steps,
        },
      );
    },
    dispose() {
      denoiser.dispose();
      process.dispose();
    },
  };
}

function ganModel(
  b: Backend,
  generator: ParamStore,
  config: Record<string, unknown>,
  classNames: string[],
  params: number,
): ExportedModel {
  // The fields of GanConfig that the generator reads (gan/task.ts's modelConfigOf).
  const model: DcganModelConfig = {
    preset: config.preset as DcganPreset,
    nz: Number(config.nz),
    ngf: Number(config.ngf),
    ndf: Number(config.ndf),
    channels: Number(config.channels),
    numClasses: Number(config.numClasses ?? 0),
    embedDim: Number(config.embedDim ?? 0),
  };
  const size = Number(config.imageSize ?? 32);
  const info: ModelInfo = {
    kind: "gan",
    imageShape: [model.channels, size, size],
    numClasses: model.numClasses,
    classNames,
    timesteps: 1,
    params,
  };
  return {
    info,
    sample(request, onProgress) {
      const labels = labelsOf(info, request);
      // As the GAN task (and `cli.ts sample --seed`): each image's z from its own stream.
      return sampleGenerator(b, generator, model, labels, imageNoise(request.seed), {
        onBatch: onProgress,
      });
    },
    dispose() {
      generator.dispose();
    },
  };
}
