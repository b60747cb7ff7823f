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
import type { RngState } from "../core/rng.ts";
import type { HostTensor } from "../nn/params.ts";
import {
  readSafetensors,
  type SafeTensor,
  toFloat32,
  writeSafetensors,
} from "../io/safetensors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { TrainTask } from "../task/task.ts";

/** File names inside a run folder. */
export const CHECKPOINT_FILE = "checkpoint.safetensors";
export const CHECKPOINT_JSON = "checkpoint.json";
export const EXPORT_FILE = "model.safetensors";

const FORMAT = "deno-diffusion-checkpoint/1";

/** Where a run's training data came from, so commands can reload it. */
export interface DataSourceRecord {
  /** The --data source (folder, file), or null for the default CIFAR-10 download. */
  data: string | null;
  /** The class filter, e.g. "cat" or "cat,frog". */
  classes: string;
  /** Class names in label order, when known. */
  classNames?: string[];
}

/** The training options a run was started with, as recorded in its checkpoint. */
export interface TrainRecord {
  /** Images per step and process (per rank under data parallelism). */
  batchSize: number;
  /** Ranks of the data-parallel job (absent: 1, runs from before data parallelism). */
  worldSize?: number;
  /** batchSize x worldSize: what a resume on any number of ranks keeps (absent: batchSize). */
  globalBatch?: number;
  epochs: number;
  maxSteps: number | null;
  seed: number;
  flip: boolean;
  stepsPerEpoch: number;
  totalSteps: number;
  /** Where the data came from (absent in runs made by library users without a source). */
  source?: DataSourceRecord;
}

/**
 * Everything besides tensors that a resume needs. `kind` and `config` are the task's own;
 * read back from disk they are unchecked JSON until the task registry
 * (`app/registry.ts`, `parseTaskConfig`) validates them against the family.
 */
export interface CheckpointState {
  format: typeof FORMAT;
  kind: string;
  config: unknown;
  /** Optimisation steps done. */
  step: number;
  /** Epoch the next step belongs to. */
  epoch: number;
  /** The task's RNG (timesteps, noise) after `step` steps. */
  rng: RngState;
  /** Adam step counts per optimizer group. */
  optimizerSteps: Record<string, number>;
  /** Training options the run was started with (batch size, seed, budget, ...). */
  train: TrainRecord;
  /** Backend that wrote it (informational; any backend can resume). */
  backend: string;
  savedAt: string;
}

/** Raised when a checkpoint is missing, corrupt, or does not fit the model or sampler. */
export class CheckpointError extends Error {
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
 * ```ts ignore
 * await saveCheckpoint("runs/cats", task, { step, epoch, rng: rng.state(), train: opts, backend: b.name });
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
  const exportGroup = task.exportStore;
  if (!(exportGroup in task.stores)) {
    throw new Error(`${task.kind} task exports '${exportGroup}', which is not one of its stores`);
  }
  const exported = new Map<string, SafeTensor>();
  for (const [name, t] of tensors) {
    if (name.startsWith(`${exportGroup}/`)) exported.set(name.slice(exportGroup.length + 1), t);
  }
  await writeSafetensors(`${runDir}/${EXPORT_FILE}`, exported, {
    format: "pt",
    deno_diffusion_kind: task.kind,
    deno_diffusion_group: exportGroup,
    deno_diffusion_config: JSON.stringify(task.config),
  });
  await writeFileAtomic(`${runDir}/${CHECKPOINT_JSON}`, JSON.stringify(state, null, 2) + "\n");
}

/** A checkpoint read from disk. */
export interface LoadedCheckpoint {
  state: CheckpointState;
  /** Tensors by full name (`group/param`, `optim.group/param.exp_avg`). */
  tensors: Map<string, HostTensor>;
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
    if (e instanceof Deno.errors.NotFound) {
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
  let state: CheckpointState;
  try {
    state = JSON.parse(raw);
  } catch {
    throw new CheckpointError(`${path}: checkpoint metadata is not valid JSON (file corrupt?)`);
  }
  if (state.format !== FORMAT) {
    throw new CheckpointError(
      `${path}: unsupported checkpoint format ${state.format}, expected ${FORMAT}`,
    );
  }
  const tensors = new Map<string, HostTensor>();
  for (const [name, t] of file.tensors) tensors.set(name, { shape: t.shape, data: toFloat32(t) });
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
