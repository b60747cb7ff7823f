/**
 * deno-diffusion: DDPM diffusion models and DCGANs for small images, with FID that agrees
 * with pytorch-fid. Heavy kernels run in libtorch (CUDA or CPU) through Deno FFI when the
 * native shim is built, else on TensorFlow.js.
 *
 * @example Train a tiny diffusion model for a few steps and sample from it
 * ```ts
 * import { Dataset, createTask, DEFAULT_DDPM_CONFIG, Rng, selectBackend, train } from "./mod.ts";
 *
 * const backend = await selectBackend({ name: "tfjs-cpu" });
 * // 8 images of 16x16: a bright square on a dark background.
 * const images = new Uint8Array(8 * 3 * 16 * 16).map((_, i) => (i % 256 < 128 ? 30 : 220));
 * const data = new Dataset({ images, labels: new Int32Array(8), imageShape: [3, 16, 16], classNames: ["square"] });
 * const config = { ...DEFAULT_DDPM_CONFIG, preset: "convnet" as const, baseWidth: 8, timesteps: 50, imageSize: 16, ema: 0 };
 * const task = createTask(backend, { kind: "ddpm", config }, 0);
 * const runDir = await Deno.makeTempDir();
 * await train(task, data, { runDir, batchSize: 4, epochs: 1, seed: 0, flip: false, previewEvery: 0, backendName: backend.name, report: () => {} });
 * const samples = task.sample(new Int32Array(2), new Rng(1), { sampler: "ddim", steps: 5 }); // [2, 3, 16, 16] in [-1, 1]
 * console.log(samples.length); // 1536
 * task.dispose();
 * backend.dispose();
 * await Deno.remove(runDir, { recursive: true });
 * ```
 *
 * @module
 */

// Tensor layer
export type {
  AdamOptions,
  AdamState,
  Backend,
  BatchNormOptions,
  ConvOptions,
  DType,
  Keepable,
  Tensor,
  ValueAndGrad,
} from "./src/backend/backend.ts";
export { BackendError, BackendUnavailableError } from "./src/backend/backend.ts";
export { deriveSeed, Rng, type RngState } from "./src/core/rng.ts";
export {
  type BackendInfo,
  type BackendName,
  createBackend,
  listBackends,
  selectBackend,
} from "./src/backend/select.ts";

// Layers and parameters
export { type HostTensor, ParamStore, WeightMismatchError } from "./src/nn/params.ts";

// Models
export {
  countParams,
  createDenoiser,
  type Denoiser,
  DENOISER_PRESETS,
  type DenoiserPreset,
} from "./src/models/denoiser.ts";
export {
  DCGAN_PRESETS,
  type DcganModelConfig,
  dcganParamCounts,
  type DcganPreset,
} from "./src/models/dcgan.ts";

// Diffusion
export { makeSchedule, type Schedule, type ScheduleKind } from "./src/diffusion/schedule.ts";
export { DiffusionProcess } from "./src/diffusion/process.ts";
export { bitsPerDim, simpleLoss, vlbLoss } from "./src/diffusion/loss.ts";
export { sampleImages, type SamplerOptions } from "./src/diffusion/sampler.ts";
export {
  createDdpmTask,
  type DdpmConfig,
  type DdpmSampleOptions,
  type DdpmTask,
  DEFAULT_DDPM_CONFIG,
  parseDdpmSampleOptions,
} from "./src/diffusion/task.ts";

// GAN
export {
  createGanTask,
  DEFAULT_GAN_CONFIG,
  type GanConfig,
  type GanSampleOptions,
  type GanTask,
} from "./src/gan/task.ts";

// Training
export { type Batch } from "./src/data/batch.ts";
export { type SampleOptionsOf, type TrainTask } from "./src/task/task.ts";
export { previewLabels } from "./src/task/preview.ts";
export { train, type TrainOptions, type TrainResult } from "./src/train/trainer.ts";
export {
  CheckpointError,
  type CheckpointState,
  type DataSourceRecord,
  loadCheckpoint,
  saveCheckpoint,
  type TrainRecord,
} from "./src/train/checkpoint.ts";
export {
  type AnyTask,
  createTask,
  type DdpmTaskConfig,
  type GanTaskConfig,
  openCheckpoint,
  parseTaskConfig,
  type TaskConfig,
  type TaskKind,
} from "./src/app/registry.ts";
export { Adam, clipGradNorm } from "./src/task/optimizer.ts";

// Data parallelism (libtorch c10d: Gloo on CPU, NCCL on CUDA) and its launcher.
export {
  DistributedError,
  ProcessGroup,
  type ProcessGroupOptions,
} from "./src/backend/distributed.ts";
export { launch, readTorchrunEnv, type TorchrunEnv } from "./src/app/launch.ts";
export { shardedActivations } from "./src/metrics/sharded.ts";

// Data and files
export { Dataset } from "./src/data/dataset.ts";
export { type DatasetOptions, loadDataset } from "./src/data/load.ts";
export { type DecodedImage, decodeImageFile, listImageFiles } from "./src/io/image.ts";
export { encodePng, toUint8Images, writeImageFolder, writeImageGrid } from "./src/io/png.ts";
export { decodeGif, writeGif } from "./src/io/gif.ts";
export { readSafetensors, type SafeTensor, writeSafetensors } from "./src/io/safetensors.ts";
export { readTorchStateDict } from "./src/io/torch_pickle.ts";
export { type NdArray, readNpz, writeNpz } from "./src/io/npy.ts";

// Metrics
export { loadInception } from "./src/metrics/weights.ts";
export { computeActivations, decodeFiles, type ImageLike } from "./src/metrics/features.ts";
export { fidFromStatistics, type FidStatistics, statisticsOf } from "./src/metrics/fid.ts";
export { kernelInceptionDistance } from "./src/metrics/kid.ts";

// The study
export { runStudy } from "./src/study/runner.ts";
export { type StudyOptions, type StudyRun } from "./src/study/entry.ts";
export { writeReport } from "./src/study/report.ts";
export { resolvePlan, type StudyPlan, validatePlan } from "./src/study/plans.ts";
