/**
 * Creates the right {@link TrainTask} for a kind and config, and reopens checkpoints, so the
 * CLI, the study and library users never switch on the model family themselves.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { Rng } from "../core/rng.ts";
import {
  createDdpmTask,
  type DdpmConfig,
  type DdpmSampleOptions,
  type DdpmTask,
  DEFAULT_DDPM_CONFIG,
  resolveDdpmConfig,
} from "../diffusion/task.ts";
import {
  createGanTask,
  DEFAULT_GAN_CONFIG,
  type GanConfig,
  type GanSampleOptions,
  type GanTask,
  resolveGanConfig,
} from "../gan/task.ts";
import { runDefaults } from "./defaults.ts";
import {
  CheckpointError,
  loadCheckpoint,
  type LoadedCheckpoint,
  restoreTask,
} from "../train/checkpoint.ts";

/** A DDPM task's family and config. */
export interface DdpmTaskConfig {
  /** Diffusion. */
  kind: "ddpm";
  /** The DDPM run's settings. */
  config: DdpmConfig;
}

/** A GAN task's family and config. */
export interface GanTaskConfig {
  /** DCGAN. */
  kind: "gan";
  /** The GAN run's settings. */
  config: GanConfig;
}

/** Everything that recreates a task: its family and that family's config. */
export type TaskConfig = DdpmTaskConfig | GanTaskConfig;

/** Model families. */
export type TaskKind = TaskConfig["kind"];

/** A task of any family; switch on `kind` to reach the family's own API. */
export type AnyTask = DdpmTask | GanTask;

/** Sampling options of each family. */
export interface SampleOptionsByKind {
  ddpm: DdpmSampleOptions;
  gan: GanSampleOptions;
}

/** A task config as a library user may write it: the family and any fields to override. */
export type TaskConfigInput =
  | { kind: "ddpm"; config?: Partial<DdpmConfig> }
  | { kind: "gan"; config?: Partial<GanConfig> };

/** Fields each family's config accepts (the defaults' keys plus the optional ones). */
const CONFIG_KEYS: Readonly<Record<TaskKind, readonly string[]>> = {
  ddpm: [...Object.keys(DEFAULT_DDPM_CONFIG), "baseWidth"],
  gan: [...Object.keys(DEFAULT_GAN_CONFIG), "embedDim"],
};

/**
 * A full task config from a partial one, with the defaults the CLI uses (`defaults.ts`): the
 * device's DDPM preset (unet-2xud on a GPU, unet-2xud-half on a CPU), no label dropout for an
 * unconditional DDPM, the family defaults for the rest. Unknown fields are an error (a typo
 * would otherwise silently train the default).
 *
 * @example
 * ```ts
 * import { completeTaskConfig } from "./registry.ts";
 * const spec = completeTaskConfig({ kind: "ddpm", config: { timesteps: 100 } }, "torch-cpu");
 * if (spec.kind === "ddpm") console.log(spec.config.preset, spec.config.cfgDrop); // unet-2xud-half 0
 * ```
 */
export function completeTaskConfig(spec: TaskConfigInput, backendName: string): TaskConfig {
  const kind: unknown = spec?.kind;
  if (kind !== "ddpm" && kind !== "gan") {
    throw new TypeError(`unknown model kind ${JSON.stringify(kind)}: expected "ddpm" or "gan"`);
  }
  const given: Record<string, unknown> = { ...(spec.config ?? {}) };
  const unknown = Object.keys(given).filter((k) => !CONFIG_KEYS[kind].includes(k));
  if (unknown.length) {
    throw new TypeError(
      `unknown ${kind} config field${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}; ` +
        `known: ${CONFIG_KEYS[kind].join(", ")}`,
    );
  }
  // An explicit undefined means "the default", as an absent field does.
  for (const k of Object.keys(given)) if (given[k] === undefined) delete given[k];
  if (kind === "gan") return { kind, config: resolveGanConfig(given as Partial<GanConfig>) };
  const partial = given as Partial<DdpmConfig>;
  return {
    kind,
    config: resolveDdpmConfig({
      ...partial,
      preset: partial.preset ?? runDefaults("ddpm", backendName).ddpmPreset,
      cfgDrop: partial.cfgDrop ?? ((partial.numClasses ?? 0) > 0 ? DEFAULT_DDPM_CONFIG.cfgDrop : 0),
    }),
  };
}

/**
 * Builds a fresh task; weights are drawn from `seed`. The config may be partial: missing
 * fields get the CLI's defaults ({@link completeTaskConfig}); unknown fields are an error.
 *
 * @example
 * ```ts
 * import { createTask } from "./registry.ts";
 * import { DEFAULT_GAN_CONFIG } from "../gan/task.ts";
 * import { createBackend } from "../backend/select.ts";
 * using backend = await createBackend("tfjs-cpu");
 * using task = createTask(backend, { kind: "gan", config: { ...DEFAULT_GAN_CONFIG, ngf: 4, ndf: 4 } }, 0);
 * console.log(task.kind, task.exportStore); // gan generator
 * ```
 */
export function createTask(
  backend: Backend,
  spec: { kind: "ddpm"; config?: Partial<DdpmConfig> },
  seed: number,
): DdpmTask;
/** {@link createTask} for a GAN config: the result is typed as a {@link GanTask}. */
export function createTask(
  backend: Backend,
  spec: { kind: "gan"; config?: Partial<GanConfig> },
  seed: number,
): GanTask;
/** {@link createTask} for a config whose kind is known only at run time. */
export function createTask(backend: Backend, spec: TaskConfigInput, seed: number): AnyTask;
export function createTask(backend: Backend, input: TaskConfigInput, seed: number): AnyTask {
  const rng = new Rng(seed);
  const spec = completeTaskConfig(input, backend.name);
  switch (spec.kind) {
    case "ddpm":
      return createDdpmTask(backend, spec.config, rng);
    case "gan":
      return createGanTask(backend, spec.config, rng);
  }
}

/**
 * A task config from untyped JSON (a checkpoint's metadata), filled in with the family's
 * defaults and validated; throws a {@link CheckpointError} naming `where` when it does not fit.
 *
 * @example
 * ```ts
 * import { parseTaskConfig } from "./registry.ts";
 * const spec = parseTaskConfig("gan", { preset: "dcgan", nz: 16 }, "run/checkpoint.safetensors");
 * if (spec.kind === "gan") console.log(spec.config.nz, spec.config.lr); // 16 0.0002
 * ```
 */
export function parseTaskConfig(kind: unknown, config: unknown, where: string): TaskConfig {
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new CheckpointError(`${where}: the model config is not a JSON object`);
  }
  try {
    switch (kind) {
      case "ddpm":
        return { kind, config: resolveDdpmConfig(config as Partial<DdpmConfig>) };
      case "gan":
        return { kind, config: resolveGanConfig(config as Partial<GanConfig>) };
    }
  } catch (e) {
    throw new CheckpointError(`${where}: bad ${kind} config: ${(e as Error).message}`);
  }
  throw new CheckpointError(`${where}: unknown model kind '${kind}': expected ddpm or gan`);
}

/**
 * Opens a run folder or checkpoint file as a ready task with its trained weights.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { Dataset } from "../data/dataset.ts";
 * import { DEFAULT_DDPM_CONFIG } from "../diffusion/task.ts";
 * import { train } from "../train/trainer.ts";
 * import { createTask, openCheckpoint } from "./registry.ts";
 * using backend = await createBackend("tfjs-cpu");
 * const config = { ...DEFAULT_DDPM_CONFIG, preset: "convnet" as const, baseWidth: 8, imageSize: 8, timesteps: 20, ema: 0 };
 * using task = createTask(backend, { kind: "ddpm", config }, 0);
 * const data = new Dataset({
 *   images: new Uint8Array(4 * 3 * 8 * 8), labels: new Int32Array(4), imageShape: [3, 8, 8], classNames: ["a"],
 * });
 * const dir = await Deno.makeTempDir();
 * await train(task, data, {
 *   runDir: dir, batchSize: 2, epochs: 1, seed: 0, flip: false, previewEvery: 0, backendName: backend.name,
 *   report: () => {},
 * });
 * const { task: trained, checkpoint } = await openCheckpoint(backend, dir, "ddpm"); // a DdpmTask
 * using _trained = trained;
 * const images = trained.sample(new Int32Array(2), new Rng(0), { sampler: "ddim", steps: 5 });
 * console.log(checkpoint.state.step, images.length); // 2 384
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function openCheckpoint(
  backend: Backend,
  runOrFile: string,
  expectKind: "ddpm",
): Promise<{ task: DdpmTask; checkpoint: LoadedCheckpoint }>;
/** {@link openCheckpoint} that refuses anything but a GAN checkpoint. */
export function openCheckpoint(
  backend: Backend,
  runOrFile: string,
  expectKind: "gan",
): Promise<{ task: GanTask; checkpoint: LoadedCheckpoint }>;
/** {@link openCheckpoint} of either kind, or of `expectKind` when given. */
export function openCheckpoint(
  backend: Backend,
  runOrFile: string,
  expectKind?: TaskKind,
): Promise<{ task: AnyTask; checkpoint: LoadedCheckpoint }>;
export async function openCheckpoint(
  backend: Backend,
  runOrFile: string,
  expectKind?: TaskKind,
): Promise<{ task: AnyTask; checkpoint: LoadedCheckpoint }> {
  const checkpoint = await loadCheckpoint(runOrFile);
  const spec = parseTaskConfig(checkpoint.state.kind, checkpoint.state.config, checkpoint.path);
  const kind = spec.kind;
  if (expectKind && kind !== expectKind) {
    throw new CheckpointError(
      `${checkpoint.path} holds a ${kind === "gan" ? "GAN" : "diffusion"} model, ` +
        `but this needs a ${expectKind === "gan" ? "GAN" : "diffusion"} checkpoint`,
    );
  }
  const task = createTask(backend, spec, 0);
  try {
    restoreTask(task, checkpoint);
  } catch (e) {
    task.dispose();
    throw e;
  }
  return { task, checkpoint };
}
