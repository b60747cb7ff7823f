/**
 * Checkpoints: one safetensors file that holds every tensor (parameter groups and optimizer
 * moments) and, in its `__metadata__`, the JSON state needed to resume exactly (config, step,
 * epoch, RNG state, optimizer steps). One file written atomically means a crash can never
 * leave a checkpoint whose parts disagree. A `model.safetensors` with plain PyTorch names
 * (the task's `exportStore`: EMA weights for DDPM, the generator for the GAN) and a
 * human-readable `checkpoint.json` are written beside it for users.
 *
 * @module
 */
import type { HostTensor } from "../nn/params.ts";
import {
  readSafetensors,
  type SafeTensor,
  toFloat32,
  writeSafetensors,
} from "../io/safetensors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import {
  CHECKPOINT_FORMAT as FORMAT,
  type CheckpointFormat,
  type CheckpointState,
  type DataSourceRecord,
  firstNonFinite,
  type TrainRecord,
  validateCheckpointState,
} from "./checkpoint_schema.ts";
import type { TrainTask } from "../task/task.ts";

/** File names inside a run folder. */
export const CHECKPOINT_FILE = "checkpoint.safetensors";
export const CHECKPOINT_JSON = "checkpoint.json";
export const EXPORT_FILE = "model.safetensors";

export type { CheckpointFormat, CheckpointState, DataSourceRecord, TrainRecord };

/** Raised when a checkpoint is missing, corrupt, or does not fit the model or sampler. */
export class CheckpointError extends Error {
  /** `message` says what is wrong and what to do. */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

function toSafe(t: HostTensor): SafeTensor {
  return { dtype: "F32", shape: t.shape, data: t.data };
}

/**
 * Writes `task`'s full state into `runDir`.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { createDdpmTask, resolveDdpmConfig } from "../diffusion/task.ts";
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * using backend = await createBackend("tfjs-cpu");
 * const config = resolveDdpmConfig({ preset: "convnet", baseWidth: 8, imageSize: 8, timesteps: 20, ema: 0 });
 * using task = createDdpmTask(backend, config, new Rng(0));
 * const dir = await Deno.makeTempDir();
 * const train = { batchSize: 2, epochs: 1, maxSteps: null, seed: 0, flip: false, stepsPerEpoch: 2, totalSteps: 2 };
 * await saveCheckpoint(dir, task, { step: 0, epoch: 0, rng: new Rng(0).state(), train, backend: backend.name });
 * console.log((await loadCheckpoint(dir)).state.kind); // ddpm
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveCheckpoint(
  runDir: string,
  task: TrainTask,
  meta: Pick<CheckpointState, "step" | "epoch" | "rng" | "train" | "backend">,
): Promise<void> {
  const tensors = new Map<string, SafeTensor>();
  const groups = Object.entries(task.stores);
  for (const [group, store] of groups) {
    for (const [name, t] of store.toHost()) tensors.set(`${group}/${name}`, toSafe(t));
  }
  const optimizerSteps: Record<string, number> = {};
  for (const [group, opt] of Object.entries(task.optimizers)) {
    const { step, tensors: moments } = opt.toHost();
    optimizerSteps[group] = step;
    for (const [name, t] of moments) tensors.set(`optim.${group}/${name}`, toSafe(t));
  }
  const state: CheckpointState = {
    format: FORMAT,
    kind: task.kind,
    config: task.config,
    optimizerSteps,
    savedAt: new Date().toISOString(),
    ...meta,
  };
  await writeSafetensors(`${runDir}/${CHECKPOINT_FILE}`, tensors, {
    deno_diffusion: JSON.stringify(state),
  });
  if (!(task.exportStore in task.stores)) {
    throw new Error(
      `${task.kind} task exports '${task.exportStore}', which is not one of its stores`,
    );
  }
  await writeCompanionFiles(runDir, task.exportStore, state, tensors);
}

/**
 * Writes the files derived from a checkpoint: `model.safetensors` (the `exportGroup` tensors
 * under plain PyTorch names) and `checkpoint.json`. Both carry the checkpoint's `savedAt`, so a
 * set left inconsistent by a kill between the writes can be recognised (see `run_folder.ts`).
 */
export async function writeCompanionFiles(
  runDir: string,
  exportGroup: string,
  state: CheckpointState,
  tensors: ReadonlyMap<string, SafeTensor | HostTensor>,
): Promise<void> {
  const exported = new Map<string, SafeTensor>();
  for (const [name, t] of tensors) {
    if (name.startsWith(`${exportGroup}/`)) {
      exported.set(name.slice(exportGroup.length + 1), {
        dtype: "F32",
        shape: t.shape,
        data: t.data as Float32Array,
      });
    }
  }
  await writeSafetensors(`${runDir}/${EXPORT_FILE}`, exported, {
    format: "pt",
    deno_diffusion_kind: state.kind,
    deno_diffusion_group: exportGroup,
    deno_diffusion_config: JSON.stringify(state.config),
    deno_diffusion_step: String(state.step),
    deno_diffusion_saved_at: state.savedAt,
  });
  await writeFileAtomic(`${runDir}/${CHECKPOINT_JSON}`, JSON.stringify(state, null, 2) + "\n");
}

/** A checkpoint read from disk. */
export interface LoadedCheckpoint {
  /** Everything besides tensors. */
  state: CheckpointState;
  /** Tensors by full name (`group/param`, `optim.group/param.exp_avg`). */
  tensors: Map<string, HostTensor>;
  /** The checkpoint file read. */
  path: string;
}

/**
 * Resolves a run folder or a checkpoint file to the checkpoint file's path.
 */
export function checkpointPath(runOrFile: string): string {
  try {
    if (Deno.statSync(runOrFile).isDirectory) return `${runOrFile}/${CHECKPOINT_FILE}`;
  } catch {
    throw new CheckpointError(
      `no checkpoint at ${runOrFile}: pass a run folder (with ${CHECKPOINT_FILE}) or the file itself`,
    );
  }
  return runOrFile;
}

/** Reads and validates a checkpoint written by {@link saveCheckpoint}. */
export async function loadCheckpoint(runOrFile: string): Promise<LoadedCheckpoint> {
  const path = checkpointPath(runOrFile);
  let file;
  try {
    file = await readSafetensors(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || (e as Error).cause instanceof Deno.errors.NotFound) {
      throw new CheckpointError(`no checkpoint at ${path}: train first, or pass --ckpt RUN_FOLDER`);
    }
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(e as Error).message}`);
  }
  const raw = file.metadata["deno_diffusion"];
  if (!raw) {
    throw new CheckpointError(
      `${path} is a safetensors file but not a deno-diffusion checkpoint (no deno_diffusion metadata)`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new CheckpointError(`${path}: checkpoint metadata is not valid JSON (file corrupt?)`);
  }
  const tensors = new Map<string, HostTensor>();
  for (const [name, t] of file.tensors) tensors.set(name, { shape: t.shape, data: toFloat32(t) });
  let state: CheckpointState;
  try {
    state = validateCheckpointState(parsed, path, tensors);
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  }
  // NaN or infinite weights would sample black images and train to NaN with exit code 0.
  const bad = firstNonFinite(tensors);
  if (bad) {
    throw new CheckpointError(
      `${path}: tensor ${bad} is not finite; the weights are broken (resume from an earlier ` +
        `checkpoint or retrain)`,
    );
  }
  return { state, tensors, path };
}

/** Copies a checkpoint's tensors into `task` (which must have been created from its config). */
export function restoreTask(task: TrainTask, ckpt: LoadedCheckpoint): void {
  const { state, tensors, path } = ckpt;
  if (state.kind !== task.kind) {
    throw new CheckpointError(
      `${path} holds a ${state.kind} model, but a ${task.kind} model was asked for`,
    );
  }
  try {
    for (const [group, store] of Object.entries(task.stores)) {
      store.load(subset(tensors, `${group}/`));
    }
    for (const [group, opt] of Object.entries(task.optimizers)) {
      const step = state.optimizerSteps[group];
      if (step === undefined) throw new Error(`no optimizer state for ${group}`);
      opt.load(step, subset(tensors, `optim.${group}/`));
    }
  } catch (e) {
    throw new CheckpointError(`${path} does not fit this model: ${(e as Error).message}`);
  }
}

function subset(tensors: Map<string, HostTensor>, prefix: string): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of tensors) {
    if (name.startsWith(prefix)) out.set(name.slice(prefix.length), t);
  }
  return out;
}
