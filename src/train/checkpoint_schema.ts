/**
 * The schema of a checkpoint's metadata, checked field by field when a checkpoint is loaded,
 * so that a corrupt or hand-edited file fails at once with the file and field named instead of
 * as a hang (an all-zero RNG state), a `Cannot read properties of undefined` (a missing
 * `train` record) or a tensor error far from the cause (a negative image size). The model
 * config's family-specific fields are checked by the task registry (`parseTaskConfig`); the
 * fields every family shares (image size, channels, classes) are checked here too, since the
 * tensors' shapes depend on them.
 *
 * @module
 */
import { firstNonFiniteIndex } from "../core/finite.ts";
import { type RngState, rngStateProblem } from "../core/rng.ts";
import type { HostTensor } from "../nn/params.ts";

/** A checkpoint field that does not fit the schema: `field` is a JSON path such as `train.seed`. */
export class CheckpointSchemaError extends Error {
  /** `path`: the checkpoint file; `field`: the JSON path; `problem`: what is wrong with it. */
  constructor(readonly path: string, readonly field: string, problem: string) {
    super(`${path}: checkpoint field '${field}' ${problem}; the file is corrupt or was edited`);
    this.name = "CheckpointSchemaError";
  }
}

/** The `format` field of every checkpoint this version writes and reads. */
export const CHECKPOINT_FORMAT = "deno-diffusion-checkpoint/1";
/** The format tag of `checkpoint.json`; a reader refuses any other. */
export type CheckpointFormat = typeof CHECKPOINT_FORMAT;

/** Where a run's training data came from, so commands can reload it. */
export interface DataSourceRecord {
  /** The --data source (folder, file), or null for the default CIFAR-10 download. */
  data: string | null;
  /** The class filter, e.g. "cat" or "cat,frog". */
  classes: string;
  /** Class names in label order, when known. */
  classNames?: string[];
  /** The resolved, absolute location the data was read from (so any working folder works). */
  path?: string;
  /** `datasetFingerprint` of the training split as loaded: tells a moved data set from a changed one. */
  fingerprint?: string;
}

/** The training options a run was started with, as recorded in its checkpoint. */
export interface TrainRecord {
  /** Images per step and process (per rank under data parallelism). */
  batchSize: number;
  /** Ranks of the data-parallel job (absent: 1, runs from before data parallelism). */
  worldSize?: number;
  /** batchSize x worldSize: what a resume on any number of ranks keeps (absent: batchSize). */
  globalBatch?: number;
  /** Budget in epochs. */
  epochs: number;
  /** Budget in steps (the run's total), or null when epochs set it. */
  maxSteps: number | null;
  /** Seed of data order and flips. */
  seed: number;
  /** Random horizontal flips. */
  flip: boolean;
  /** Optimisation steps per epoch. */
  stepsPerEpoch: number;
  /** Steps the whole budget takes. */
  totalSteps: number;
  /** Where the data came from (absent in runs made by library users without a source). */
  source?: DataSourceRecord;
  /** Steps between log lines, kept by a resume unless overridden. */
  logEvery?: number;
  /** Steps between checkpoints, kept by a resume unless overridden. */
  checkpointEvery?: number;
  /** Epochs between preview grids, kept by a resume unless overridden. */
  previewEvery?: number;
}

/**
 * Everything besides tensors that a resume needs. `kind` and `config` are the task's own;
 * read back from disk they are unchecked JSON until the task registry
 * (`app/registry.ts`, `parseTaskConfig`) validates them against the family.
 */
export interface CheckpointState {
  /** Always {@link CHECKPOINT_FORMAT}. */
  format: CheckpointFormat;
  /** The task's kind (`TrainTask.kind`). */
  kind: string;
  /** The task's config; validated by the task registry when read back. */
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
  /** ISO time of the save. */
  savedAt: string;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return "missing";
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Field checks that throw {@link CheckpointSchemaError} for one file. */
function checker(path: string) {
  const fail = (field: string, problem: string): never => {
    throw new CheckpointSchemaError(path, field, problem);
  };
  const int = (
    obj: Json,
    key: string,
    field: string,
    min: number,
    max = Number.MAX_SAFE_INTEGER,
  ) => {
    const v = obj[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      fail(field, `must be an integer in ${min}..${max}, got ${describe(v)}`);
    }
    return v as number;
  };
  const str = (obj: Json, key: string, field: string) => {
    const v = obj[key];
    if (typeof v !== "string") fail(field, `must be a string, got ${describe(v)}`);
    return v as string;
  };
  const obj = (parent: Json, key: string, field: string) => {
    const v = parent[key];
    if (!isObject(v)) fail(field, `must be a JSON object, got ${describe(v)}`);
    return v as Json;
  };
  return { fail, int, str, obj };
}

/**
 * Checks untrusted checkpoint metadata against the schema and against the checkpoint's own
 * tensors, and returns it typed. Throws a {@link CheckpointSchemaError} naming `path` and the
 * first field that does not fit.
 *
 * @example
 * ```ts
 * import { validateCheckpointState } from "./checkpoint_schema.ts";
 * try {
 *   validateCheckpointState({ format: "deno-diffusion-checkpoint/1" }, "run/checkpoint.safetensors", new Map());
 * } catch (e) {
 *   console.log((e as Error).message); // run/checkpoint.safetensors: checkpoint field 'kind' must be ...
 * }
 * ```
 */
export function validateCheckpointState(
  raw: unknown,
  path: string,
  tensors: ReadonlyMap<string, HostTensor>,
): CheckpointState {
  const { fail, int, str, obj } = checker(path);
  if (!isObject(raw)) fail("(metadata)", `must be a JSON object, got ${describe(raw)}`);
  const state = raw as Json;
  const format = str(state, "format", "format");
  if (format !== CHECKPOINT_FORMAT) {
    fail("format", `is ${describe(format)}, expected "${CHECKPOINT_FORMAT}"`);
  }
  if (!/^[a-z][a-z0-9_-]*$/.test(str(state, "kind", "kind"))) {
    fail("kind", `must name a model family such as "ddpm", got ${describe(state.kind)}`);
  }
  const config = obj(state, "config", "config");
  // Shared by every family; a family's own fields are checked by its resolve*Config.
  if (config.imageSize !== undefined) int(config, "imageSize", "config.imageSize", 1, 4096);
  if (config.channels !== undefined) int(config, "channels", "config.channels", 1, 4);
  if (config.numClasses !== undefined) int(config, "numClasses", "config.numClasses", 0, 100_000);

  const step = int(state, "step", "step", 0);
  const epoch = int(state, "epoch", "epoch", 0);
  const rngProblem = rngStateProblem(state.rng);
  if (rngProblem) fail("rng", `is not a usable RNG state: ${rngProblem}`);

  const train = obj(state, "train", "train");
  const batchSize = int(train, "batchSize", "train.batchSize", 1);
  const worldSize = train.worldSize === undefined
    ? 1
    : int(train, "worldSize", "train.worldSize", 1, 65_536);
  if (train.globalBatch !== undefined) {
    const globalBatch = int(train, "globalBatch", "train.globalBatch", 1);
    if (globalBatch !== batchSize * worldSize) {
      fail(
        "train.globalBatch",
        `is ${globalBatch}, but train.batchSize ${batchSize} x train.worldSize ${worldSize} = ${
          batchSize * worldSize
        }`,
      );
    }
  }
  int(train, "epochs", "train.epochs", 0);
  if (train.maxSteps !== null) int(train, "maxSteps", "train.maxSteps", 1);
  int(train, "seed", "train.seed", 0, 2 ** 32 - 1);
  if (typeof train.flip !== "boolean") {
    fail("train.flip", `must be true or false, got ${describe(train.flip)}`);
  }
  const stepsPerEpoch = int(train, "stepsPerEpoch", "train.stepsPerEpoch", 1);
  const totalSteps = int(train, "totalSteps", "train.totalSteps", 0);
  if (step > totalSteps) {
    fail("step", `is ${step}, past the run's budget train.totalSteps = ${totalSteps}`);
  }
  if (epoch !== Math.floor(step / stepsPerEpoch)) {
    fail(
      "epoch",
      `is ${epoch}, but step ${step} at ${stepsPerEpoch} steps per epoch is in epoch ${
        Math.floor(step / stepsPerEpoch)
      }`,
    );
  }
  if (train.source !== undefined) {
    const source = obj(train, "source", "train.source");
    if (source.data !== null) str(source, "data", "train.source.data");
    str(source, "classes", "train.source.classes");
    const names = source.classNames;
    if (
      names !== undefined && (!Array.isArray(names) || names.some((n) => typeof n !== "string"))
    ) {
      fail("train.source.classNames", `must be an array of strings, got ${describe(names)}`);
    }
    if (source.path !== undefined) str(source, "path", "train.source.path");
    if (source.fingerprint !== undefined) str(source, "fingerprint", "train.source.fingerprint");
  }
  for (const key of ["logEvery", "checkpointEvery", "previewEvery"]) {
    if (train[key] !== undefined) int(train, key, `train.${key}`, 0);
  }
  str(state, "backend", "backend");
  if (Number.isNaN(Date.parse(str(state, "savedAt", "savedAt")))) {
    fail("savedAt", `must be an ISO date, got ${describe(state.savedAt)}`);
  }

  // Consistency with the tensors: each optimizer updates a group that is present, with moments.
  const optimizerSteps = obj(state, "optimizerSteps", "optimizerSteps");
  const groups = new Set([...tensors.keys()].map((n) => n.slice(0, n.indexOf("/"))));
  if (Object.keys(optimizerSteps).length === 0) {
    fail("optimizerSteps", "is empty: a checkpoint has at least one optimizer");
  }
  for (const group of Object.keys(optimizerSteps)) {
    const field = `optimizerSteps.${group}`;
    // A skipped non-finite step counts as a step but not as an optimizer step.
    int(optimizerSteps, group, field, 0, step);
    if (!groups.has(group)) fail(field, `names group '${group}', which has no tensors in the file`);
    if (!groups.has(`optim.${group}`)) {
      fail(
        field,
        `names group '${group}', whose optimizer moments (optim.${group}/...) are missing`,
      );
    }
  }
  return state as unknown as CheckpointState;
}

/**
 * The first tensor in `tensors` holding a NaN or an infinity, as "name[index] = value", or
 * null when all are finite.
 *
 * @example
 * ```ts
 * import { firstNonFinite } from "./checkpoint_schema.ts";
 * const t = new Map([["w", { shape: [2], data: new Float32Array([1, NaN]) }]]);
 * console.log(firstNonFinite(t)); // w[1] = NaN
 * ```
 */
export function firstNonFinite(tensors: ReadonlyMap<string, HostTensor>): string | null {
  for (const [name, t] of tensors) {
    const i = firstNonFiniteIndex(t.data);
    if (i >= 0) return `${name}[${i}] = ${t.data[i]}`;
  }
  return null;
}
