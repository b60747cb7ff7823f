/**
 * Opens anything one can sample from: a run folder or its `checkpoint.safetensors` (the full
 * training state), the run's `model.safetensors` (the sampling weights, whose metadata carries
 * the model config), or a PyTorch `.pth`/`.pt` state_dict (or a plain safetensors file) of the
 * same network, which carries no config, so its preset is named by the caller.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { DENOISER_PRESETS } from "../models/denoiser.ts";
import { DCGAN_PRESETS } from "../models/dcgan.ts";
import { readSafetensors, toFloat32 } from "../io/safetensors.ts";
import { readTorchStateDict } from "../io/torch_pickle.ts";
import type { HostTensor } from "../nn/params.ts";
import {
  CHECKPOINT_FILE,
  CHECKPOINT_JSON,
  CheckpointError,
  type TrainRecord,
} from "../train/checkpoint.ts";
import {
  type AnyTask,
  createTask,
  openCheckpoint,
  parseTaskConfig,
  type TaskConfig,
} from "./registry.ts";

/** A task ready to sample, and what is known about the weights it came from. */
export interface OpenedModel {
  task: AnyTask;
  /** Class names in label order, when known ([] otherwise). */
  classNames: string[];
  /** The file the weights came from. */
  path: string;
  /** "checkpoint", "weights" (model.safetensors) or "state_dict" (.pth / plain safetensors). */
  source: "checkpoint" | "weights" | "state_dict";
}

/** Options of {@link openForSampling}. */
export interface OpenOptions {
  /**
   * The preset of a file that carries no config (a `.pth`): a denoiser preset (unet-2xud, ...)
   * opens a diffusion model, a DCGAN preset (dcgan, dcgan-wide) a GAN.
   */
  preset?: string;
}

/** Names of the classes a run was trained on (its train record's source), or []. */
export function classNamesOf(train: TrainRecord | undefined): string[] {
  const source = train?.source;
  if (source?.classNames) return source.classNames;
  return source?.classes ? source.classes.split(",").map((s) => s.trim()) : [];
}

/** The class names recorded by the run that `weightsPath` sits in, if it sits in one. */
async function siblingClassNames(weightsPath: string): Promise<string[]> {
  const slash = weightsPath.lastIndexOf("/");
  const dir = slash >= 0 ? weightsPath.slice(0, slash) : ".";
  try {
    const state = JSON.parse(await Deno.readTextFile(`${dir}/${CHECKPOINT_JSON}`));
    return classNamesOf(state?.train);
  } catch {
    return [];
  }
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** Loads `tensors` into the task's sampling weights, saying what does not fit. */
function loadSamplingWeights(task: AnyTask, tensors: Map<string, HostTensor>, where: string) {
  try {
    task.stores[task.exportStore].load(tensors);
  } catch (e) {
    throw new CheckpointError(`${where} does not fit this model: ${(e as Error).message}`);
  }
}

/** The config of a bare state_dict: the preset's defaults, classes read off the embedding. */
function stateDictConfig(preset: string, tensors: Map<string, HostTensor>, where: string) {
  const embedding = tensors.get("label_emb.weight")?.shape; // [classes (+1 for DDPM), dim]
  if ((DENOISER_PRESETS as readonly string[]).includes(preset)) {
    // One extra embedding row is the "no label" class of classifier-free guidance.
    const numClasses = embedding ? embedding[0] - 1 : 0;
    return parseTaskConfig("ddpm", { preset, numClasses, ema: 0 }, where);
  }
  if ((DCGAN_PRESETS as readonly string[]).includes(preset)) {
    const config = embedding ? { preset, numClasses: embedding[0], embedDim: embedding[1] } : {
      preset,
    };
    return parseTaskConfig("gan", config, where);
  }
  throw new CheckpointError(
    `--preset ${preset} is not a model preset: use one of ${
      [...DENOISER_PRESETS, ...DCGAN_PRESETS].join(", ")
    }`,
  );
}

function openStateDict(
  backend: Backend,
  tensors: Map<string, HostTensor>,
  path: string,
  preset: string | undefined,
): OpenedModel {
  if (!preset) {
    throw new CheckpointError(
      `${path} holds bare weights without a model config: name the network with --preset ` +
        `(${[...DENOISER_PRESETS, ...DCGAN_PRESETS].join(", ")})`,
    );
  }
  // PyTorch keeps a BatchNorm step counter that sampling never reads.
  for (const name of [...tensors.keys()]) {
    if (name.endsWith(".num_batches_tracked")) tensors.delete(name);
  }
  const spec: TaskConfig = stateDictConfig(preset, tensors, path);
  const task = createTask(backend, spec, 0);
  try {
    loadSamplingWeights(task, tensors, `${path} (as --preset ${preset})`);
  } catch (e) {
    task.dispose();
    throw e;
  }
  return { task, classNames: [], path, source: "state_dict" };
}

/**
 * Opens a run folder, checkpoint, `model.safetensors` or PyTorch state_dict as a task ready to
 * sample.
 *
 * @example
 * ```ts ignore
 * const { task } = await openForSampling(backend, "runs/ddpm-cat/model.safetensors");
 * const torch = await openForSampling(backend, "unet.pth", { preset: "unet-2xud" });
 * ```
 */
export async function openForSampling(
  backend: Backend,
  path: string,
  options: OpenOptions = {},
): Promise<OpenedModel> {
  if (/\.(pth|pt|bin)$/i.test(path) && !isDirectory(path)) {
    let tensors;
    try {
      tensors = await readTorchStateDict(path);
    } catch (e) {
      throw new CheckpointError((e as Error).message);
    }
    return openStateDict(backend, tensors as Map<string, HostTensor>, path, options.preset);
  }
  // A full checkpoint (large: optimizer moments) is read once, by openCheckpoint below.
  if (!isDirectory(path) && !path.endsWith(CHECKPOINT_FILE)) {
    let file;
    try {
      file = await readSafetensors(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new CheckpointError(
          `no checkpoint at ${path}: train first, or pass --ckpt RUN_FOLDER`,
        );
      }
      throw new CheckpointError(`cannot read ${path}: ${(e as Error).message}`);
    }
    const meta = file.metadata;
    if (!meta["deno_diffusion"]) {
      const tensors = new Map<string, HostTensor>();
      for (const [name, t] of file.tensors) {
        tensors.set(name, { shape: t.shape, data: toFloat32(t) });
      }
      if (meta["deno_diffusion_config"] === undefined) {
        return openStateDict(backend, tensors, path, options.preset);
      }
      let config: unknown;
      try {
        config = JSON.parse(meta["deno_diffusion_config"]);
      } catch {
        throw new CheckpointError(`${path}: the model config in its metadata is not valid JSON`);
      }
      const spec = parseTaskConfig(meta["deno_diffusion_kind"], config, path);
      const task = createTask(backend, spec, 0);
      try {
        loadSamplingWeights(task, tensors, path);
      } catch (e) {
        task.dispose();
        throw e;
      }
      return { task, classNames: await siblingClassNames(path), path, source: "weights" };
    }
  }
  if (options.preset) {
    throw new CheckpointError(
      `--preset applies to bare weights (.pth); ${path} is a checkpoint that names its own model`,
    );
  }
  const { task, checkpoint } = await openCheckpoint(backend, path);
  return {
    task,
    classNames: classNamesOf(checkpoint.state.train),
    path: checkpoint.path,
    source: "checkpoint",
  };
}
