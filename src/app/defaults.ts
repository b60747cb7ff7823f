/**
 * The defaults every front end shares, in one place: which preset, batch size and epoch
 * budget a run gets on the device it runs on, and the one shape of preview-sampling options.
 * `cli/train.ts` and the study both read them, so a changed default changes both. (Model
 * configs have one default each: `DEFAULT_DDPM_CONFIG` and `DEFAULT_GAN_CONFIG`, whose network
 * shape is the DCGAN's `DEFAULT_DCGAN`.)
 *
 * @module
 */
import { DEFAULT_DDPM_CONFIG } from "../diffusion/task.ts";
import type { DenoiserPreset } from "../models/denoiser.ts";
import type { DdpmTask } from "../diffusion/task.ts";
import type { GanTask } from "../gan/task.ts";
import type { SampleOptionsOf } from "../task/task.ts";

// The registry builds on these defaults, so this file names the families itself rather than
// importing the registry's types (which would close an import cycle).
type TaskKind = "ddpm" | "gan";
type AnyTask = DdpmTask | GanTask;

/**
 * Batch sizes of the study (and of the CLI on a GPU): 64 for DDPM as in Ho et al.'s CIFAR-10
 * runs' reference code, 128 for the DCGAN as in the tutorial.
 */
export const DEFAULT_BATCH_SIZE: Readonly<Record<TaskKind, number>> = { ddpm: 64, gan: 128 };

/** Epochs of a full diffusion run (the reference implementation's default). */
export const DDPM_EPOCHS = 500;

/** Epochs of a DCGAN run (the tutorial's order of magnitude for 32x32 images). */
export const GAN_EPOCHS = 25;

/** What a new run gets when its flags leave them out. */
export interface RunDefaults {
  /** Denoiser preset (DDPM only). */
  ddpmPreset: DenoiserPreset;
  batchSize: number;
  epochs: number;
  /** Why the defaults differ from the study's, for the user; null when they do not. */
  note: string | null;
}

/**
 * Defaults of a new `kind` run on the backend named `backendName`. A GPU gets the study's
 * configuration; a CPU a DDPM it can train in hours (unet-2xud-half, batch 32, 10 epochs).
 *
 * @example
 * ```ts
 * import { runDefaults } from "./defaults.ts";
 * console.log(runDefaults("ddpm", "torch-cpu").ddpmPreset); // "unet-2xud-half"
 * console.log(runDefaults("gan", "torch-cuda").batchSize); // 128
 * ```
 */
export function runDefaults(kind: TaskKind, backendName: string): RunDefaults {
  const onGpu = backendName === "torch-cuda";
  if (kind === "gan") {
    return {
      ddpmPreset: DEFAULT_DDPM_CONFIG.preset,
      batchSize: DEFAULT_BATCH_SIZE.gan,
      epochs: GAN_EPOCHS,
      note: null,
    };
  }
  if (onGpu) {
    return {
      ddpmPreset: DEFAULT_DDPM_CONFIG.preset,
      batchSize: DEFAULT_BATCH_SIZE.ddpm,
      epochs: DDPM_EPOCHS,
      note: null,
    };
  }
  return {
    ddpmPreset: "unet-2xud-half",
    batchSize: 32,
    epochs: 10,
    note: `no GPU (backend ${backendName}): training the CPU-sized unet-2xud-half at batch 32 ` +
      `instead of the study's ${DEFAULT_DDPM_CONFIG.preset}; pass --preset ` +
      `${DEFAULT_DDPM_CONFIG.preset} to override`,
  };
}

/** DDIM steps of a preview grid (fewer when the model has fewer timesteps). */
export const PREVIEW_DDIM_STEPS = 50;

/**
 * The options preview grids are sampled with, for the CLI and the study alike: a short DDIM
 * run with x_0 clipping for diffusion (fast, and readable early in training), nothing for the
 * GAN.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { DEFAULT_DDPM_CONFIG } from "../diffusion/task.ts";
 * import { previewOptions } from "./defaults.ts";
 * import { createTask } from "./registry.ts";
 * using backend = await createBackend("tfjs-cpu");
 * const config = { ...DEFAULT_DDPM_CONFIG, preset: "convnet" as const, baseWidth: 8, imageSize: 8, timesteps: 20, ema: 0 };
 * using task = createTask(backend, { kind: "ddpm", config }, 0);
 * console.log(previewOptions(task)); // { sampler: "ddim", steps: 20, clipX0: true }: at most T steps
 * // then: train(task, data, { ...options, previewOptions: previewOptions(task) })
 * ```
 */
export function previewOptions(task: AnyTask): SampleOptionsOf<AnyTask> | undefined {
  if (task.kind !== "ddpm") return undefined;
  return {
    sampler: "ddim",
    steps: Math.min(PREVIEW_DDIM_STEPS, task.config.timesteps),
    clipX0: true,
  };
}
