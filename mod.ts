/**
 * deno-diffusion: DDPM diffusion models and DCGANs for small images, with FID that agrees
 * with pytorch-fid. Heavy kernels run in libtorch (CUDA or CPU) through Deno FFI when the
 * native shim is built, else on TensorFlow.js.
 *
 * @example Train a tiny diffusion model for a few steps and sample from it
 * ```ts
 * import { Dataset, createTask, DEFAULT_DDPM_CONFIG, Rng, selectBackend, train } from "./mod.ts";
 *
 * using backend = await selectBackend({ name: "tfjs-cpu" });
 * // 8 images of 16x16: a bright square on a dark background.
 * const images = new Uint8Array(8 * 3 * 16 * 16).map((_, i) => (i % 256 < 128 ? 30 : 220));
 * const data = new Dataset({ images, labels: new Int32Array(8), imageShape: [3, 16, 16], classNames: ["square"] });
 * const config = { ...DEFAULT_DDPM_CONFIG, preset: "convnet" as const, baseWidth: 8, timesteps: 50, imageSize: 16, ema: 0 };
 * using task = createTask(backend, { kind: "ddpm", config }, 0);
 * const runDir = await Deno.makeTempDir();
 * await train(task, data, { runDir, batchSize: 4, epochs: 1, seed: 0, flip: false, previewEvery: 0, backendName: backend.name, report: () => {} });
 * const samples = task.sample(new Int32Array(2), new Rng(1), { sampler: "ddim", steps: 5 }); // [2, 3, 16, 16] in [-1, 1]
 * console.log(samples.length); // 1536
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
  BackendCapabilities,
  BatchNormOptions,
  Conv2dOptions,
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
export {
  type HostTensor,
  type InitialValues,
  ParamStore,
  WeightMismatchError,
} from "./src/nn/params.ts";

// Models
export {
  countParams,
  createDenoiser,
  type Denoiser,
  DENOISER_PRESETS,
  type DenoiserConfig,
  type DenoiserOptions,
  type DenoiserPreset,
} from "./src/models/denoiser.ts";
export {
  DCGAN_PRESETS,
  type DcganModelConfig,
  type DcganParamCounts,
  dcganParamCounts,
  type DcganPreset,
} from "./src/models/dcgan.ts";

export { type ConvNetConfig } from "./src/models/convnet.ts";
export { type UNetConfig } from "./src/models/unet.ts";

// Diffusion
export {
  makeSchedule,
  type Schedule,
  type ScheduleKind,
  type ScheduleOptions,
} from "./src/diffusion/schedule.ts";
export {
  DiffusionProcess,
  type Gaussian,
  type ScheduleConstant,
  type VarianceType,
} from "./src/diffusion/process.ts";
export {
  type BitsPerDim,
  bitsPerDim,
  type BitsPerDimOptions,
  type EpsilonModel,
  simpleLoss,
  vlbLoss,
  type VlbOptions,
} from "./src/diffusion/loss.ts";
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
export {
  type NonfinitePolicy,
  train,
  type TrainOptions,
  type TrainResult,
} from "./src/train/trainer.ts";
export {
  CheckpointError,
  type CheckpointFormat,
  type CheckpointState,
  type DataSourceRecord,
  loadCheckpoint,
  type LoadedCheckpoint,
  saveCheckpoint,
  type TrainRecord,
} from "./src/train/checkpoint.ts";
export { CheckpointSchemaError, validateCheckpointState } from "./src/train/checkpoint_schema.ts";
export {
  type AnyTask,
  completeTaskConfig,
  createTask,
  type DdpmTaskConfig,
  type GanTaskConfig,
  openCheckpoint,
  parseTaskConfig,
  type TaskConfig,
  type TaskConfigInput,
  type TaskKind,
} from "./src/app/registry.ts";
export { Adam, clipGradNorm, type GradientAverager } from "./src/task/optimizer.ts";

// Data parallelism (libtorch c10d: Gloo on CPU, NCCL on CUDA) and its launcher.
export {
  type CollectiveBackend,
  DistributedError,
  type GradientSyncStats,
  ProcessGroup,
  type ProcessGroupOptions,
} from "./src/backend/distributed.ts";
export {
  launch,
  type LaunchOptions,
  type RankExit,
  readTorchrunEnv,
  type TorchrunEnv,
} from "./src/app/launch.ts";
export { type FeatureGatherer, shardedActivations } from "./src/metrics/sharded.ts";

// Data and files
export { type BatchOptions, Dataset } from "./src/data/dataset.ts";
export { type DatasetOptions, loadDataset } from "./src/data/load.ts";
export { type DecodedImage, decodeImageFile, listImageFiles } from "./src/io/image.ts";
export {
  encodePng,
  type GridOptions,
  toUint8Images,
  writeImageFolder,
  writeImageGrid,
} from "./src/io/png.ts";
export { decodeGif, writeGif } from "./src/io/gif.ts";
export { type ApngOptions, encodeApng, writeApng } from "./src/io/apng.ts";
export {
  readSafetensors,
  type SafeDtype,
  type SafeTensor,
  writeSafetensors,
} from "./src/io/safetensors.ts";
export { readTorchStateDict, type TorchTensor } from "./src/io/torch_pickle.ts";
export { type NdArray, readNpz, writeNpz } from "./src/io/npy.ts";

// Metrics: one FID/KID scorer, the common jobs in one call, pytorch-fid's .npz statistics
export {
  FID_WEIGHTS_FILE,
  loadInception,
  type LoadInceptionOptions,
  type ResolveOptions,
} from "./src/metrics/weights.ts";
export type { InceptionNet } from "./src/metrics/inception.ts";
export { BLOCK_INDEX_BY_DIM, type InceptionDims } from "./src/metrics/inception_layers.ts";
export {
  type ActivationOptions,
  computeActivations,
  decodeFiles,
  type FeatureMatrix,
  type ImageLike,
} from "./src/metrics/features.ts";
export {
  checkStatistics,
  fidFromStatistics,
  type FidStatistics,
  frechetDistance,
  type FrechetOptions,
  statisticsOf,
} from "./src/metrics/fid.ts";
export type { EigvalshFn } from "./src/metrics/linalg.ts";
export { kernelInceptionDistance, type KidOptions, type KidResult } from "./src/metrics/kid.ts";
export {
  type FeatureOptions,
  FidScorer,
  type FidScorerOptions,
  type FidSource,
  type FidSourceOptions,
  openFidSource,
  type Score,
} from "./src/metrics/scorer.ts";
export {
  type CompareOptions,
  type CompareResult,
  fidBetweenFolders,
} from "./src/metrics/compare.ts";
export { readStatistics, writeStatistics } from "./src/metrics/stats_io.ts";
export {
  type CheckpointFidOptions,
  type CheckpointFidResult,
  fidOfCheckpoint,
  type ReferenceSpec,
} from "./src/app/evaluate.ts";

// The study
export { runStudy } from "./src/study/runner.ts";
export {
  type EntryResult,
  type GroupScore,
  type StudyOptions,
  type StudyRun,
} from "./src/study/entry.ts";
export { type ReportOptions, writeReport } from "./src/study/report.ts";
export {
  type DdpmEntry,
  type EntryBase,
  type FloorEntry,
  type GanEntry,
  resolvePlan,
  type StudyEntry,
  type StudyPlan,
  validatePlan,
} from "./src/study/plans.ts";
export { type FidStatus } from "./src/study/evaluate.ts";
export { CHECKPOINT_FORMAT } from "./src/train/checkpoint_schema.ts";
export type { ImageNoise } from "./src/core/rng.ts";
export type { WebGpuAdapterInfo } from "./src/backend/webgpu.ts";
